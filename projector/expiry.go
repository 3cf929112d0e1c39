package projector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/consentledger/consent/events"
)

// The expiry index: one key per stored grant that has an expires_at,
// ordered by that time,
//
//	kindExpiry uint64(unix seconds, sign bit flipped) uint32(nanoseconds) consent key -> (empty)
//
// kept in the same batch as the consent state it mirrors, so a scan of the
// keys up to now finds exactly the grants that have expired and have no
// consent.expired (or later) event yet. consentd's expirer scans it to
// append those events (see ledger.Expirer).
const kindExpiry byte = 0x11

// metaExpiries is present once the expiry keys cover every stored grant.
// An index built before the expiry index existed gets them on Open.
const metaExpiries = "expiries"

// MaxDueGrants caps the grants one DueGrants call returns.
const MaxDueGrants = 10000

func appendExpiryKey(dst []byte, at time.Time, consentKey []byte) []byte {
	dst = append(dst, kindExpiry)
	dst = binary.BigEndian.AppendUint64(dst, uint64(at.Unix())^(1<<63))
	dst = binary.BigEndian.AppendUint32(dst, uint32(at.Nanosecond()))
	return append(dst, consentKey...)
}

// decodeExpiryKey returns the time and the consent key of an expiry key.
func decodeExpiryKey(b []byte) (time.Time, []byte, error) {
	if len(b) < 13 || b[0] != kindExpiry {
		return time.Time{}, nil, errBadKey
	}
	sec := int64(binary.BigEndian.Uint64(b[1:9]) ^ (1 << 63))
	nsec := binary.BigEndian.Uint32(b[9:13])
	if nsec >= uint32(time.Second) {
		return time.Time{}, nil, errBadKey
	}
	return time.Unix(sec, int64(nsec)).UTC(), b[13:], nil
}

// expiryOf returns when a stored consent lapses, if it is a grant that does.
func expiryOf(c *events.Consent) (time.Time, bool) {
	if c.State != events.StateGranted || c.ExpiresAt == nil {
		return time.Time{}, false
	}
	return *c.ExpiresAt, true
}

// indexExpiry moves the consent's expiry key from its state cur to next,
// in the batch.
func (f *folder) indexExpiry(key []byte, cur, next *events.Consent) error {
	old, hadOld := expiryOf(cur)
	now, hasNew := expiryOf(next)
	if hadOld && hasNew && old.Equal(now) {
		return nil
	}
	if hadOld {
		if err := f.batch.Delete(appendExpiryKey(nil, old, key), nil); err != nil {
			return err
		}
	}
	if hasNew {
		return f.batch.Set(appendExpiryKey(nil, now, key), nil, nil)
	}
	return nil
}

// DueGrants returns up to limit stored grants (at most MaxDueGrants) whose
// expires_at is at or before now, oldest expiry first, as the index holds
// them; and the expires_at of the next grant to lapse after those, or the
// zero time when there is none. It answers only when the index is ready
// (see Wait), else with an error matching events.ErrNotReady.
//
// A grant leaves the list once an event after it (consent.expired, a
// renewal, a revocation) has been applied. The grants carry their
// SubjectKey and no SubjectID, as ScanConsents gives them.
func (i *Index) DueGrants(ctx context.Context, now time.Time, limit int) ([]events.Consent, time.Time, error) {
	if _, err := i.Wait(ctx, 0); err != nil {
		return nil, time.Time{}, err
	}
	limit = min(max(limit, 1), MaxDueGrants)
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.db == nil {
		return nil, time.Time{}, notReady("closed")
	}
	lower := []byte{kindExpiry}
	it, err := i.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("projector: scan expiries: %w", err)
	}
	var due []events.Consent
	var next time.Time
	for ok := it.First(); ok; ok = it.Next() {
		at, consentKey, err := decodeExpiryKey(it.Key())
		if err != nil {
			_ = it.Close()
			return nil, time.Time{}, fmt.Errorf("projector: expiry key %q: %w", it.Key(), err)
		}
		if at.After(now) || len(due) == limit {
			next = at
			break
		}
		k, err := decodeConsentKey(consentKey)
		if err != nil {
			_ = it.Close()
			return nil, time.Time{}, fmt.Errorf("projector: expiry key %q: %w", it.Key(), err)
		}
		c, found, err := i.get(consentKey, k)
		if err != nil {
			_ = it.Close()
			return nil, time.Time{}, err
		}
		if exp, ok := expiryOf(&c); found && ok && exp.Equal(at) {
			due = append(due, c)
		}
	}
	return due, next, it.Close()
}

// buildExpiryIndex writes the expiry keys of every stored grant into an
// index that has none yet (one built before the expiry index existed),
// and marks the index as having them.
func (i *Index) buildExpiryIndex() error {
	if _, ok, err := i.getMeta(metaExpiries); err != nil || ok {
		return err
	}
	b := i.db.NewBatch()
	defer b.Close()
	lower := []byte{kindConsent}
	it, err := i.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k, err := decodeConsentKey(it.Key())
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("%w: consent key %q: %v", ErrFormat, it.Key(), err)
		}
		c, err := decodeConsent(it.Value(), k)
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("%w: consent %s/%s: %v", ErrFormat, k.Tenant, k.Purpose, err)
		}
		if at, ok := expiryOf(&c); ok {
			if err := b.Set(appendExpiryKey(nil, at, it.Key()), nil, nil); err != nil {
				_ = it.Close()
				return err
			}
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	if err := b.Set(metaKey(metaExpiries), []byte{1}, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("projector: build the expiry index: %w", err)
	}
	return nil
}

// openSecondary prepares what the index keeps beside the consent states:
// the expiry keys (built when missing) and the purpose registry in memory.
// Open calls it after load.
func (i *Index) openSecondary() error {
	return errors.Join(i.buildExpiryIndex(), i.loadPurposes())
}
