package ledger

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// History reads events from the stream, oldest first, with their stream
// sequences: those of one consent when q.Purpose is set, else those of one
// person across all purposes. It returns at most q.Limit records (default
// DefaultHistoryLimit, at most MaxHistoryLimit) after q.AfterSeq; a page
// shorter than the limit is the last one.
//
// Reads use batched direct get. On a replicated stream a direct get may be
// served by a follower that is a few milliseconds behind the leader, so an
// event appended a moment ago can be missing from the page.
//
// A message that fails the integrity rule (events.CheckMessage, the
// prev_hash link, a quarantine that does not resume the last good state;
// docs/audit.md) is a record with a Violation and no Event, in its place;
// as in the projector it does not advance its consent's chain, and a
// consent.quarantined is an event like any other. Links on a page after
// q.AfterSeq are judged as from the start (the messages before it are
// read again).
//
// Errors: a *events.FieldError for an invalid query; an error matching
// wire.ErrUnreadableEvent for a stored message a newer ledger wrote; context and
// JetStream errors as they come.
func (l *Ledger) History(ctx context.Context, q wire.HistoryQuery) (wire.History, error) {
	h, _, err := l.history(ctx, q)
	return h, err
}

// history is History that also returns, for each record, when the stream
// stored its message (StatusAt places a violation by it).
func (l *Ledger) history(ctx context.Context, q wire.HistoryQuery) (wire.History, []time.Time, error) {
	if err := q.Validate(); err != nil {
		return wire.History{}, nil, err
	}
	tenant := events.OrDefaultTenant(q.Tenant)
	token, err := l.personToken(ctx, tenant, q.SubjectID)
	if err != nil {
		return wire.History{}, nil, err
	}
	filter := "consent.events." + tenant + ".*." + token
	if q.Purpose != "" {
		filter = events.Key{Tenant: tenant, SubjectID: q.SubjectID, Purpose: q.Purpose, SubjectKey: token}.NATSSubject()
	}
	limit := q.Limit
	if limit == 0 {
		limit = wire.DefaultHistoryLimit
	}
	folds := map[string]*storedFold{}
	if err := l.foldBefore(ctx, filter, q.AfterSeq, folds); err != nil {
		return wire.History{}, nil, err
	}
	msgs, err := l.readMsgs(ctx, filter, q.AfterSeq, limit)
	if err != nil {
		return wire.History{}, nil, fmt.Errorf("read history: %w", err)
	}
	h := wire.History{Events: make([]wire.Record, 0, len(msgs))}
	stored := make([]time.Time, 0, len(msgs))
	for _, m := range msgs {
		r, err := historyStep(folds, m)
		if err != nil {
			return wire.History{}, nil, err
		}
		if r.Event != nil {
			if err := l.open(ctx, r.Event); err != nil {
				return wire.History{}, nil, fmt.Errorf("history seq %d: %w", r.Seq, err)
			}
		}
		h.Events = append(h.Events, r)
		stored = append(stored, m.Time)
	}
	return h, stored, nil
}

// historyStep folds m into the fold of its subject (storedFold.step) and
// returns its record: the event, or the violation.
func historyStep(folds map[string]*storedFold, m *jetstream.RawStreamMsg) (wire.Record, error) {
	f := folds[m.Subject]
	if f == nil {
		f = &storedFold{}
		folds[m.Subject] = f
	}
	ev, v, err := f.step(m)
	if err != nil {
		return wire.Record{}, err
	}
	return wire.Record{Seq: m.Sequence, Event: ev, Violation: v}, nil
}

// foldBefore folds the messages on filter up to seq afterSeq into folds,
// so that the page after it judges links as a read from the start would.
func (l *Ledger) foldBefore(ctx context.Context, filter string, afterSeq uint64, folds map[string]*storedFold) error {
	for from := uint64(0); from < afterSeq; {
		msgs, err := l.readMsgs(ctx, filter, from, wire.MaxHistoryLimit)
		if err != nil {
			return fmt.Errorf("read history: %w", err)
		}
		for _, m := range msgs {
			if m.Sequence > afterSeq {
				return nil
			}
			if _, err := historyStep(folds, m); err != nil {
				return err
			}
		}
		if len(msgs) < wire.MaxHistoryLimit {
			return nil
		}
		from = msgs[len(msgs)-1].Sequence
	}
	return nil
}

// batchBytes caps the bytes of one batched direct get. The server streams a
// whole batch at once; kept well under its slow-consumer limit (max_pending,
// 64 MiB by default but often lowered) a large page cannot get the
// connection cut. A page larger than this takes several requests.
const batchBytes = 1 << 20

// readMsgs returns up to limit messages on filter (a subject, wildcards
// allowed) with sequences above afterSeq, oldest first.
//
// It uses batched direct get: one request, and the server streams the
// matching messages back. For a consent's short history this is the fast
// way: on a 10-event history it measured about 2.5 times a single direct
// get, against 5 times for orbit.go's GetBatch and 10 times for an ordered
// consumer with HeadersOnly, which creates a consumer per read
// (BenchmarkIdempotencyScan). When the server stops at the byte cap, the
// count of messages still pending says to ask again from there.
func (l *Ledger) readMsgs(ctx context.Context, filter string, afterSeq uint64, limit int) ([]*jetstream.RawStreamMsg, error) {
	var out []*jetstream.RawStreamMsg
	for len(out) < limit && afterSeq < math.MaxUint64 {
		var msgs []*jetstream.RawStreamMsg
		var pending uint64
		err := attempt(ctx, l.readTimeout, func(ctx context.Context) (err error) {
			msgs, pending, err = l.directGetBatch(ctx, filter, afterSeq+1, limit-len(out), l.batchBytes)
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
		if len(msgs) == 0 || pending == 0 {
			break
		}
		afterSeq = msgs[len(msgs)-1].Sequence
	}
	return out, nil
}

// decodeStored decodes a message of the stream into an event, with an
// error matching wire.ErrUnreadableEvent (and not the decoder's *FieldError,
// which would read as the caller's fault) when it cannot.
func decodeStored(m *jetstream.RawStreamMsg) (*events.Event, error) {
	ev, err := events.Decode(m.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: seq %d on %s: %v", wire.ErrUnreadableEvent, m.Sequence, m.Subject, err)
	}
	return ev, nil
}
