package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/consentledger/consent/events"
)

// The purpose registry in the index: every purpose.set event is checked
// like a consent event (decodes, header, subject, hash, prev_hash link to
// the purpose's last applied event) and folded with events.EvolvePurpose
// into
//
//	kindPurpose escaped(tenant) escaped(purpose) -> JSON events.Purpose
//
// Purposes are few, so the index also keeps them all in memory for the
// lookups: every status and check asks for its purpose's current version.

// kindPurpose keys hold purpose states. The kind bytes of this file and of
// expiry.go are far from the core ones so that other additions do not
// collide with them.
const kindPurpose byte = 0x10

func appendPurposeKey(dst []byte, k events.PurposeKey) []byte {
	dst = append(dst, kindPurpose)
	dst = appendEscaped(dst, k.Tenant)
	return appendEscaped(dst, k.Purpose)
}

// purposeRegistry is the in-memory copy of the purposes in the index.
type purposeRegistry struct {
	mu       sync.RWMutex
	purposes map[events.PurposeKey]events.Purpose
}

func (r *purposeRegistry) get(k events.PurposeKey) (events.Purpose, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.purposes[k]
	return p, ok
}

func (r *purposeRegistry) put(p events.Purpose) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.purposes == nil {
		r.purposes = make(map[events.PurposeKey]events.Purpose)
	}
	r.purposes[p.Key()] = p
}

// Purpose returns the registry entry of one purpose (Registered false when
// it was never set) and the index sequence it was read at. k must have its
// tenant defaulted. minSeq and the errors are as for Consent. It implements
// ledger.PurposeReader.
func (i *Index) Purpose(ctx context.Context, k events.PurposeKey, minSeq uint64) (events.Purpose, uint64, error) {
	seq, err := i.Wait(ctx, minSeq)
	if err != nil {
		return events.Purpose{}, seq, err
	}
	if p, ok := i.registry.get(k); ok {
		return p, seq, nil
	}
	return events.NewPurpose(k), seq, nil
}

// Purposes returns every registered purpose of a tenant, ordered by name,
// and the index sequence they were read at. minSeq and the errors are as
// for Consent.
func (i *Index) Purposes(ctx context.Context, tenant string, minSeq uint64) ([]events.Purpose, uint64, error) {
	seq, err := i.Wait(ctx, minSeq)
	if err != nil {
		return nil, seq, err
	}
	i.registry.mu.RLock()
	out := []events.Purpose{}
	for k, p := range i.registry.purposes {
		if k.Tenant == tenant {
			out = append(out, p)
		}
	}
	i.registry.mu.RUnlock()
	slices.SortFunc(out, func(a, b events.Purpose) int { return strings.Compare(a.Purpose, b.Purpose) })
	return out, seq, nil
}

// loadPurposes reads the stored purposes into memory; Open calls it.
func (i *Index) loadPurposes() error {
	lower := []byte{kindPurpose}
	it, err := i.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		var p events.Purpose
		if err := json.Unmarshal(it.Value(), &p); err != nil {
			_ = it.Close()
			return fmt.Errorf("%w: purpose %q: %v", ErrFormat, it.Key(), err)
		}
		i.registry.put(p)
	}
	return it.Close()
}

// storedPurpose reads the committed state of a purpose for linking.
func (i *Index) storedPurpose(k events.PurposeKey) (events.Purpose, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.db == nil {
		return events.Purpose{}, ErrClosed
	}
	v, closer, err := i.db.Get(appendPurposeKey(nil, k))
	if errors.Is(err, pebble.ErrNotFound) {
		return events.NewPurpose(k), nil
	}
	if err != nil {
		return events.Purpose{}, fmt.Errorf("projector: read purpose: %w", err)
	}
	defer closer.Close()
	var p events.Purpose
	if err := json.Unmarshal(v, &p); err != nil {
		return events.Purpose{}, fmt.Errorf("%w: purpose %s/%s: %v", ErrFormat, k.Tenant, k.Purpose, err)
	}
	return p, nil
}

// inspectPurpose runs the stateless checks on a message on a purpose
// subject, as inspect does for consent events.
func inspectPurpose(d delivery, typeHeader string, payload []byte) delivery {
	violation := func(check string, err error, id string) delivery {
		d.bad = &Violation{Seq: d.seq, Subject: d.subj, Check: check, Reason: err.Error(), EventID: id, Timestamp: d.stamp}
		return d
	}
	ev, err := events.DecodePurposeEvent(payload)
	if err != nil {
		// A newer schema or an unknown purpose.* type whose hash matches
		// its content is a newer writer's: stop. Anything else (a consent
		// type here, garbage, {"v":2} with no hash) is a violation.
		newer := purposeFromTheFuture(payload)
		if newer == nil && errors.Is(err, events.ErrNewerSchema) {
			newer = err
		}
		if newer != nil && selfHashed(payload) {
			d.stop = newer
			return d
		}
		return violation(CheckDecode, err, "")
	}
	if typeHeader != string(ev.Type) {
		return violation(CheckHeader, fmt.Errorf("header %s is %q, the event's type is %q", events.HeaderEventType, typeHeader, ev.Type), ev.ID)
	}
	if want := ev.Key().NATSSubject(); d.subj != want {
		return violation(CheckSubject, fmt.Errorf("the event belongs on %s", want), ev.ID)
	}
	sum, err := events.HashOf(payload)
	if err == nil && sum != ev.Hash {
		err = fmt.Errorf("%w: recorded %q, computed %q", events.ErrBadHash, ev.Hash, sum)
	}
	if err != nil {
		return violation(CheckHash, err, ev.ID)
	}
	d.purpose = ev
	return d
}

// selfHashed reports whether payload is a JSON object whose "hash" member
// is events.HashOf(payload): a record its writer sealed.
func selfHashed(payload []byte) bool {
	var head struct {
		Hash string `json:"hash"`
	}
	if json.Unmarshal(payload, &head) != nil || head.Hash == "" {
		return false
	}
	sum, err := events.HashOf(payload)
	return err == nil && sum == head.Hash
}

// purposeFromTheFuture is for purpose subjects what events.CheckMessage's
// test for a newer writer is for consent subjects: a payload
// that failed to decode and says it is of a newer schema, or of a purpose
// event type this code does not know, comes from a newer writer.
func purposeFromTheFuture(payload []byte) error {
	var head struct {
		V    json.RawMessage `json:"v"`
		Type json.RawMessage `json:"type"`
	}
	if json.Unmarshal(payload, &head) != nil {
		return nil
	}
	var v int64
	if json.Unmarshal(head.V, &v) == nil && v > events.SchemaVersion {
		return fmt.Errorf("%w: v=%d, this reader knows up to %d", events.ErrNewerSchema, v, events.SchemaVersion)
	}
	var t string
	if json.Unmarshal(head.Type, &t) == nil && strings.HasPrefix(t, "purpose.") && events.Type(t) != events.TypePurposeSet {
		return fmt.Errorf("%w: %q", events.ErrUnknownType, t)
	}
	return nil
}

// foldPurpose links a checked purpose event to the purpose's last applied
// event and folds it into the batch, or marks the delivery bad when the
// link is broken.
func (f *folder) foldPurpose(d *delivery) error {
	k := d.purpose.Key()
	cur, ok := f.purposes[k]
	if !ok {
		var err error
		if cur, err = f.idx.storedPurpose(k); err != nil {
			return err
		}
	}
	if d.purpose.PrevHash != cur.Hash {
		reason := fmt.Sprintf("prev_hash is %q but the purpose has no applied event (want \"\")", d.purpose.PrevHash)
		if cur.Seq > 0 {
			reason = fmt.Sprintf("prev_hash is %q but the purpose's last applied event (seq %d) has hash %q", d.purpose.PrevHash, cur.Seq, cur.Hash)
		}
		d.bad = &Violation{Seq: d.seq, Subject: d.subj, Check: CheckLink, EventID: d.purpose.ID, Timestamp: d.stamp, Reason: reason}
		return nil
	}
	next := events.EvolvePurpose(cur, d.purpose, d.seq)
	val, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if err := f.batch.Set(appendPurposeKey(nil, k), val, nil); err != nil {
		return err
	}
	if f.purposes == nil {
		f.purposes = make(map[events.PurposeKey]events.Purpose)
	}
	f.purposes[k] = next
	// Readers may see the new purpose a batch before the checkpoint that
	// covers it: never older than the index_seq they are told. The link
	// check reads the committed state, never this copy.
	f.idx.registry.put(next)
	return nil
}

// isPurposeSubject reports whether a NATS subject is a purpose registry
// subject.
func isPurposeSubject(natsSubject string) bool {
	return strings.HasPrefix(natsSubject, events.PurposeSubjectPrefix)
}
