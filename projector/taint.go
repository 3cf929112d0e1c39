package projector

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
	"github.com/consentledger/consent/events"
)

// Taints: a consent whose history holds a message that failed the
// integrity checks (a Violation on the consent's own NATS subject) is
// marked, so that no lookup says it is allowed and no write lands on it
// until an operator quarantines the message (events.TypeQuarantined).
//
// A message that does not decode names no tenant, subject id or purpose,
// only its NATS subject, consent.events.<tenant>.<purpose>.<subject key>,
// while consent states are keyed by tenant, subject id and purpose. So a
// taint is a record of its own, keyed by the NATS subject and the
// violation's sequence:
//
//	kindTaint escaped(NATS subject) uint64(seq) -> (empty)
//
// written in the batch that records the violation and deleted in the batch
// that applies the quarantine naming it. The index keeps every taint in
// memory as well (they are rare), and a lookup consults them only when
// there is one: with none, a lookup does no extra work.
const kindTaint byte = 0x04

// metaTaints marks an index whose taint records are complete: an index
// written before taints existed gets them from its violation records when
// it is opened (see loadTaints).
const metaTaints = "taints"

// taintRef is one taint: a consent's NATS subject and the sequence of the
// message on it that failed a check.
type taintRef struct {
	subject string
	seq     uint64
}

func appendTaintKey(dst []byte, r taintRef) []byte {
	dst = append(dst, kindTaint)
	dst = appendEscaped(dst, r.subject)
	return binary.BigEndian.AppendUint64(dst, r.seq)
}

func decodeTaintKey(b []byte) (taintRef, error) {
	if len(b) < 1+escBytes+8 || b[0] != kindTaint {
		return taintRef{}, errBadKey
	}
	subject, rest, err := decodeEscaped(b[1:])
	if err != nil || len(rest) != 8 {
		return taintRef{}, errBadKey
	}
	return taintRef{subject: subject, seq: binary.BigEndian.Uint64(rest)}, nil
}

// taintable reports whether a violation on subj marks a consent: subj must
// name one (events.ParseConsentSubject). A message on consent.events.x.y.z
// is a violation only.
func taintable(subj string) bool {
	_, _, _, ok := events.ParseConsentSubject(subj)
	return ok
}

// loadTaints reads the taint records into memory, first deriving them from
// the violation records when the index has none yet (an index written
// before taints existed, whose violations no quarantine can have
// explained).
func (i *Index) loadTaints() error {
	if _, ok, err := i.getMeta(metaTaints); err != nil {
		return err
	} else if !ok {
		b := i.db.NewBatch()
		defer b.Close()
		vs, err := i.Violations()
		if err != nil {
			return err
		}
		for _, v := range vs {
			if taintable(v.Subject) {
				if err := b.Set(appendTaintKey(nil, taintRef{v.Subject, v.Seq}), nil, nil); err != nil {
					return err
				}
			}
		}
		if err := b.Set(metaKey(metaTaints), []byte{1}, nil); err != nil {
			return err
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("projector: record taints: %w", err)
		}
	}
	lower := []byte{kindTaint}
	it, err := i.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return err
	}
	changes := map[taintRef]bool{}
	for ok := it.First(); ok; ok = it.Next() {
		r, err := decodeTaintKey(it.Key())
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("projector: taint %q: %w", it.Key(), err)
		}
		changes[r] = true
	}
	if err := it.Close(); err != nil {
		return err
	}
	i.hot.mu.Lock()
	i.hot.applyTaintsLocked(changes)
	i.tainted.Store(int64(len(i.hot.taints)))
	i.hot.mu.Unlock()
	return nil
}

// applyTaintsLocked adds (true) and removes (false) taints; the caller
// holds h.mu.
func (h *hotStates) applyTaintsLocked(changes map[taintRef]bool) {
	for r, add := range changes {
		seqs := h.taints[r.subject]
		at, found := slices.BinarySearch(seqs, r.seq)
		switch {
		case add && !found:
			if h.taints == nil {
				h.taints = make(map[string][]uint64)
			}
			h.taints[r.subject] = slices.Insert(seqs, at, r.seq)
		case !add && found:
			if seqs = slices.Delete(seqs, at, at+1); len(seqs) == 0 {
				delete(h.taints, r.subject)
			} else {
				h.taints[r.subject] = seqs
			}
		}
	}
}

// taintLocked returns the first unquarantined violation of the consent on
// subj, 0 for none ("" asks for none); the caller holds h.mu.
func (h *hotStates) taintLocked(subj string) uint64 {
	if subj == "" {
		return 0
	}
	if seqs := h.taints[subj]; len(seqs) > 0 {
		return seqs[0]
	}
	return 0
}

// hasTaint reports whether r is a committed taint.
func (i *Index) hasTaint(r taintRef) bool {
	i.hot.mu.RLock()
	defer i.hot.mu.RUnlock()
	_, found := slices.BinarySearch(i.hot.taints[r.subject], r.seq)
	return found
}

// taintSubject returns the NATS subject a lookup of k consults the taints
// under, written into buf: "" when the index holds no taint at all, so
// that a lookup then builds no subject. The string shares buf.
func (i *Index) taintSubject(buf []byte, k events.Key) string {
	if i.tainted.Load() == 0 {
		return ""
	}
	b := k.AppendNATSSubject(buf)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Taints returns the unquarantined violations of the consent on the NATS
// subject subj, ordered by sequence (nil for none).
func (i *Index) Taints(subj string) []uint64 {
	i.hot.mu.RLock()
	defer i.hot.mu.RUnlock()
	return slices.Clone(i.hot.taints[subj])
}

// Violation returns the violation recorded at seq, and false when there is
// none. It returns ErrClosed after Close.
func (i *Index) Violation(seq uint64) (Violation, bool, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.db == nil {
		return Violation{}, false, ErrClosed
	}
	v, closer, err := i.db.Get(appendViolationKey(nil, seq))
	if err == pebble.ErrNotFound {
		return Violation{}, false, nil
	}
	if err != nil {
		return Violation{}, false, fmt.Errorf("projector: read violation: %w", err)
	}
	defer closer.Close()
	var out Violation
	if err := json.Unmarshal(v, &out); err != nil {
		return Violation{}, false, fmt.Errorf("projector: violation at seq %d: %w", seq, err)
	}
	return out, true, nil
}

// taint records, in the folder's batch, that the violation v marks the
// consent of its subject, when its subject names one.
func (f *folder) taint(v *Violation) error {
	if !taintable(v.Subject) {
		return nil
	}
	r := taintRef{v.Subject, v.Seq}
	if err := f.batch.Set(appendTaintKey(nil, r), nil, nil); err != nil {
		return err
	}
	f.taints[r] = true
	return nil
}

// clearTaint removes, in the folder's batch, the taint a quarantine event
// at seq names; it logs a quarantine that names no taint of its consent.
func (f *folder) clearTaint(subj string, ev *events.Event, seq uint64) error {
	r := taintRef{subj, ev.QuarantinedSeq}
	tainted, pending := f.taints[r]
	if !pending {
		tainted = f.idx.hasTaint(r)
	}
	if !tainted {
		f.log.Warn("projector: quarantine names no integrity violation of its consent", "seq", seq, "subject", subj, "quarantined_seq", ev.QuarantinedSeq)
		return nil
	}
	if err := f.batch.Delete(appendTaintKey(nil, r), nil); err != nil {
		return err
	}
	f.taints[r] = false
	f.log.Warn("projector: integrity violation quarantined; the consent resumes its last good state",
		"seq", seq, "subject", subj, "quarantined_seq", ev.QuarantinedSeq, "actor", ev.Actor, "reason", ev.Reason)
	return nil
}
