package projector

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/consentledger/consent/events"
)

// The projector's side of the index: claiming it, reading states to link
// against, and committing batches. Only the projector that claimed the
// index calls these.

// claim makes the caller the index's only writer.
func (i *Index) claim() error {
	if i.closed.Load() {
		return ErrClosed
	}
	if !i.running.CompareAndSwap(false, true) {
		return ErrBusy
	}
	i.failed.Store(false)
	i.notify()
	return nil
}

// release gives the index up, failed when the projector stopped on an
// error. The index stops answering unless it was opened ReadyOnOpen:
// nothing keeps it current any more.
func (i *Index) release(failed bool) {
	i.failed.Store(failed)
	i.ready.Store(i.opts.ReadyOnOpen)
	i.running.Store(false)
	i.notify()
}

// setReady makes the index answer reads.
func (i *Index) setReady() {
	if !i.ready.Swap(true) {
		i.notify()
	}
}

// lookup reads the stored state of k for linking; key is its consent key.
//
// It reads through one iterator that consults the bloom filters of every
// level, which DB.Get skips on the last level where most states live: a
// consent's first event looks for a state that is not there, and without
// the filter each such miss reads index and data blocks. The iterator sees
// the index as of the last commit (commit drops it); only the writer uses
// it, and Close closes it.
func (i *Index) lookup(key []byte, k events.Key) (events.Consent, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.db == nil {
		return events.Consent{}, ErrClosed
	}
	if i.states == nil {
		it, err := i.db.NewIter(&pebble.IterOptions{UseL6Filters: true})
		if err != nil {
			return events.Consent{}, fmt.Errorf("projector: read consent: %w", err)
		}
		i.states = it
	}
	if !i.states.SeekPrefixGE(key) || !bytes.Equal(i.states.Key(), key) {
		if err := i.states.Error(); err != nil {
			return events.Consent{}, fmt.Errorf("projector: read consent: %w", err)
		}
		return events.NewConsent(k), nil
	}
	return readConsent(i.states.Value(), k)
}

// dropStates closes the writer's state iterator, so that the next lookup
// sees what was committed since. The caller holds mu.
func (i *Index) dropStates() error {
	if i.states == nil {
		return nil
	}
	err := i.states.Close()
	i.states = nil
	return err
}

// newBatch returns an empty batch for commit.
func (i *Index) newBatch() (*pebble.Batch, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.db == nil {
		return nil, ErrClosed
	}
	return i.db.NewBatch(), nil
}

// commit writes b (the new states, violation and taint records) together
// with the checkpoint and the violation count, then wakes the waiters.
// changed holds the consent states b writes, by consent key, and taints
// the taints it adds (true) and removes (false). b is reset for reuse.
func (i *Index) commit(b *pebble.Batch, changed map[string]events.Consent, taints map[taintRef]bool, checkpoint, violations uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], checkpoint)
	if err := b.Set(metaKey(metaCheckpoint), buf[:], nil); err != nil {
		return err
	}
	if violations != i.violations.Load() {
		binary.BigEndian.PutUint64(buf[:], violations)
		if err := b.Set(metaKey(metaViolations), buf[:], nil); err != nil {
			return err
		}
	}
	opts := pebble.NoSync
	now := time.Now()
	if i.opts.SyncInterval < 0 || now.Sub(i.lastSync) >= i.opts.SyncInterval {
		opts = pebble.Sync
	}
	i.hot.begin()
	if err := i.apply(b, opts); err != nil {
		i.hot.committed(nil, nil, i.checkpoint.Load())
		return err
	}
	if opts == pebble.Sync {
		i.lastSync = now
	}
	b.Reset()
	i.tainted.Store(int64(i.hot.committed(changed, taints, checkpoint)))
	i.violations.Store(violations)
	i.checkpoint.Store(checkpoint)
	i.notify()
	return nil
}

// sync makes every commit so far durable.
func (i *Index) sync() error {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.db == nil {
		return ErrClosed
	}
	if err := i.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("projector: sync index: %w", err)
	}
	i.lastSync = time.Now()
	return nil
}

func (i *Index) apply(b *pebble.Batch, opts *pebble.WriteOptions) error {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.db == nil {
		return ErrClosed
	}
	if err := b.Commit(opts); err != nil {
		return fmt.Errorf("projector: commit index: %w", err)
	}
	return i.dropStates()
}

// streamIdentity names the stream an index was built from: a stream of the
// same name created anew is another stream, whose sequences mean other
// events.
type streamIdentity struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

func (s streamIdentity) MarshalText() ([]byte, error) {
	type plain streamIdentity
	return json.Marshal(plain(s))
}

func (s *streamIdentity) UnmarshalText(b []byte) error {
	type plain streamIdentity
	if err := json.Unmarshal(b, (*plain)(s)); err != nil {
		return fmt.Errorf("%w: stream identity: %v", ErrFormat, err)
	}
	return nil
}

func (s streamIdentity) same(o streamIdentity) bool {
	return s.Name == o.Name && s.Created.Equal(o.Created)
}

// bindStream records the stream the index folds, or checks it against the
// one recorded.
func (i *Index) bindStream(s streamIdentity) error {
	if i.stream.Name != "" {
		if !i.stream.same(s) {
			return fmt.Errorf("%w: index holds %s created %s, stream is %s created %s", ErrStreamMismatch,
				i.stream.Name, i.stream.Created.Format(time.RFC3339Nano), s.Name, s.Created.Format(time.RFC3339Nano))
		}
		return nil
	}
	v, err := s.MarshalText()
	if err != nil {
		return err
	}
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.db == nil {
		return ErrClosed
	}
	if err := i.db.Set(metaKey(metaStream), v, pebble.Sync); err != nil {
		return fmt.Errorf("projector: record stream: %w", err)
	}
	i.stream = s
	return nil
}
