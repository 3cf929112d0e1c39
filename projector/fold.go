package projector

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/consentledger/consent/events"
)

// folder applies checked deliveries to one uncommitted batch: the link
// check against the consent's last applied event, the fold, and the
// violation records. It is the projector's single-goroutine state.
type folder struct {
	idx        *Index
	log        *slog.Logger
	batch      *pebble.Batch
	states     map[string]events.Consent // states changed in the batch, by consent key
	committed  map[string]events.Consent // states of earlier batches, as committed (see flush)
	next       uint64                    // the sequence the stream must deliver next
	count      int                       // deliveries in the batch
	violations uint64                    // total, including the batch
	buf        []byte
	purposes   map[events.PurposeKey]events.Purpose // purposes applied by this folder (purpose.go)
	taints     map[taintRef]bool                    // taints the batch adds (true) and removes (false) (taint.go)
	// written, during a rebuild from an empty index, holds every consent
	// key the folder has written: a key it has not is known to have no
	// state. Nil otherwise.
	written *newKeys
}

// The stream sizes, in events, for which a rebuild keeps the written
// filter (10 to 20 bits per event): below, the index reads are few;
// above, the filter would hold more memory than it is worth (16 MiB at the
// top).
const (
	rebuildFilterMin = 1 << 12
	rebuildFilterMax = 10_000_000
)

func newFolder(idx *Index, log *slog.Logger) (*folder, error) {
	b, err := idx.newBatch()
	if err != nil {
		return nil, err
	}
	return &folder{
		idx:        idx,
		log:        log,
		batch:      b,
		states:     make(map[string]events.Consent),
		committed:  make(map[string]events.Consent),
		taints:     make(map[taintRef]bool),
		next:       idx.Checkpoint() + 1,
		violations: idx.ViolationCount(),
	}, nil
}

// apply folds one delivery into the batch, or returns the *StopError that
// keeps it out: a gap in sequences, or an event that cannot be applied.
func (f *folder) apply(d *delivery) error {
	if d.seq != f.next {
		if d.seq == 0 {
			return &StopError{Seq: f.next, Err: d.stop}
		}
		return &StopError{Seq: d.seq, Subject: d.subj, Err: fmt.Errorf("%w: expected seq %d, the stream delivered %d", ErrGap, f.next, d.seq)}
	}
	if d.stop != nil {
		return &StopError{Seq: d.seq, Subject: d.subj, Err: d.stop}
	}
	if d.bad == nil && d.purpose != nil {
		if err := f.foldPurpose(d); err != nil {
			return err
		}
	}
	if d.bad == nil && d.ev != nil { // no event (a checkpoint): nothing to fold
		cur, err := f.current(d.key, d.ev.Key())
		if err != nil {
			return err
		}
		if d.ev.PrevHash != cur.NextPrevHash() {
			d.bad = &Violation{Seq: d.seq, Subject: d.subj, Check: CheckLink, EventID: d.ev.ID, Timestamp: d.stamp,
				Reason: linkProblem(d.ev.PrevHash, &cur)}
		} else if d.ev.Type == events.TypeQuarantined && !d.ev.Resumes(cur) {
			d.bad = &Violation{Seq: d.seq, Subject: d.subj, Check: CheckQuarantine, EventID: d.ev.ID, Timestamp: d.stamp,
				Reason: fmt.Sprintf("it resumes state %s at policy version %d, but the consent's last good state (seq %d) is %s at policy version %d",
					d.ev.State, d.ev.PolicyVersion, cur.Seq, cur.State, cur.PolicyVersion)}
		} else {
			next := events.Evolve(cur, d.ev, d.seq)
			f.states[string(d.key)] = next
			f.buf = appendConsent(f.buf[:0], &next)
			if err := f.batch.Set(d.key, f.buf, nil); err != nil {
				return err
			}
			if f.written != nil {
				f.written.add(d.key)
			}
			if err := f.indexExpiry(d.key, &cur, &next); err != nil {
				return err
			}
			if d.ev.Type == events.TypeQuarantined {
				if err := f.clearTaint(d.subj, d.ev, d.seq); err != nil {
					return err
				}
			}
		}
	}
	if d.bad != nil {
		if err := f.record(d.bad); err != nil {
			return err
		}
	}
	f.next++
	f.count++
	return nil
}

// current returns the consent's state as of the batch.
func (f *folder) current(key []byte, k events.Key) (events.Consent, error) {
	if c, ok := f.states[string(key)]; ok {
		return c, nil
	}
	if c, ok := f.committed[string(key)]; ok {
		return c, nil
	}
	if f.written != nil && !f.written.mayContain(key) {
		return events.NewConsent(k), nil
	}
	return f.idx.lookup(key, k)
}

func linkProblem(prevHash string, cur *events.Consent) string {
	if cur.Seq == 0 {
		return fmt.Sprintf("prev_hash is %q but the consent has no applied event (want \"\")", prevHash)
	}
	return fmt.Sprintf("prev_hash is %q but the consent's last applied event (seq %d) has hash %q", prevHash, cur.Seq, cur.Hash)
}

// record stores a violation in the batch and logs it.
func (f *folder) record(v *Violation) error {
	val, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := f.batch.Set(appendViolationKey(nil, v.Seq), val, nil); err != nil {
		return err
	}
	if err := f.taint(v); err != nil {
		return err
	}
	f.violations++
	f.log.Error("projector: integrity violation; event not applied, its consent is not allowed until the message is quarantined",
		"seq", v.Seq, "subject", v.Subject, "check", v.Check, "reason", v.Reason, "event_id", v.EventID)
	return nil
}

// flush commits the batch with the checkpoint.
func (f *folder) flush() error {
	if f.count == 0 {
		return nil
	}
	if err := f.idx.commit(f.batch, f.states, f.taints, f.next-1, f.violations); err != nil {
		return err
	}
	clear(f.taints)
	f.remember()
	f.count = 0
	return nil
}

func (f *folder) close() { _ = f.batch.Close() }

// committedLimit bounds the states the folder keeps from committed batches
// (a few MiB), so that a consent folded again soon after is not read back
// from Pebble.
const committedLimit = 1 << 14

// remember moves the states of the batch just committed into committed
// and empties states. The folder is the index's only writer of consent
// states, so what it committed is what a read would return. When the
// cache would pass committedLimit it starts again empty.
func (f *folder) remember() {
	if len(f.committed)+len(f.states) > committedLimit {
		clear(f.committed)
	}
	if len(f.states) > committedLimit {
		clear(f.states)
		return
	}
	for k, c := range f.states {
		f.committed[k] = c
	}
	clear(f.states)
}
