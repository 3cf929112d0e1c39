package projector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/consentledger/consent/events"
)

// ScanConsents calls fn with every consent in the index, in key order
// (tenant, subject key, purpose), read from one consistent snapshot, and
// returns the checkpoint of that snapshot: the states are exactly those
// after applying the stream up to it. Every c has its SubjectKey (the token
// it is stored under) and no SubjectID: the index holds no ids. fn must not
// keep c past the call.
// The audit uses it to digest the live index and compare it with a fresh
// fold of the stream.
//
// It returns an error matching events.ErrNotReady when the index does not
// answer reads (as Consent does), ctx's error when ctx ends, and fn's
// error when fn fails.
func (i *Index) ScanConsents(ctx context.Context, fn func(c *events.Consent) error) (uint64, error) {
	if _, err := i.Wait(ctx, 0); err != nil {
		return 0, err
	}
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.db == nil {
		return 0, notReady("closed")
	}
	snap := i.db.NewSnapshot()
	defer snap.Close()

	var checkpoint uint64
	v, closer, err := snap.Get(metaKey(metaCheckpoint))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return 0, fmt.Errorf("projector: read checkpoint: %w", err)
	default:
		if len(v) == 8 {
			checkpoint = binary.BigEndian.Uint64(v)
		}
		_ = closer.Close()
	}

	lower := []byte{kindConsent}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return 0, fmt.Errorf("projector: scan: %w", err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			_ = it.Close()
			return 0, ctx.Err()
		}
		k, err := decodeConsentKey(it.Key())
		var c events.Consent
		if err == nil {
			c, err = decodeConsent(it.Value(), k)
		}
		if err != nil {
			_ = it.Close()
			return 0, fmt.Errorf("projector: scan %q: %w", it.Key(), err)
		}
		if err := fn(&c); err != nil {
			_ = it.Close()
			return 0, err
		}
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("projector: scan: %w", err)
	}
	return checkpoint, nil
}
