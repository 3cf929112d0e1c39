package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// StatusAt folds the consent's history, read from the stream, into its
// status at q.At (see audit.PointInTime): by recorded time it reads until
// the first event recorded after q.At; by occurred time it reads the whole
// history. Expiry is judged at q.At.
//
// A message that fails the integrity rule (History's violation records)
// counts from the time the stream stored it: from then on, until a
// quarantine counted names it, the status is integrity_violation with its
// seq, as the index says.
//
// Errors: a *events.FieldError for an invalid query, an error matching
// wire.ErrUnreadableEvent for a stored message a newer ledger wrote, context
// and JetStream errors as they come.
func (l *Ledger) StatusAt(ctx context.Context, q wire.StatusAtQuery) (wire.StatusAt, error) {
	if err := q.Validate(); err != nil {
		return wire.StatusAt{}, err
	}
	k, err := l.resolve(ctx, q.Key())
	if err != nil {
		return wire.StatusAt{}, err
	}
	p := audit.NewPointInTime(k, q.At, q.By)
	err = l.eachEvent(ctx, k, func(r wire.Record, stored time.Time) bool {
		if r.Violation != nil {
			return p.AddViolation(r.Seq, stored)
		}
		return p.Add(r.Seq, r.Event)
	})
	if err != nil {
		return wire.StatusAt{}, err
	}
	return p.Status(), nil
}

// Receipt builds the receipt of one consent from its whole history and the
// stream's latest checkpoint (kept when it verifies with the signer's key
// and covers the last event), signed by signer.
//
// A receipt vouches for a consent's state, so a consent whose history holds
// a message that fails the integrity rule and is not quarantined gets
// none: the error is an *IntegrityError (matching ErrIntegrity, 409)
// naming the first such message's seq.
//
// Errors: as StatusAt's, and that *IntegrityError.
func (l *Ledger) Receipt(ctx context.Context, q wire.ReceiptQuery, signer *audit.Signer) (*wire.SignedReceipt, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	k, err := l.resolve(ctx, q.Key())
	if err != nil {
		return nil, err
	}
	var history []audit.ReceiptEvent
	violations := map[uint64]string{} // unquarantined: seq -> check
	err = l.eachEvent(ctx, k, func(r wire.Record, _ time.Time) bool {
		switch {
		case r.Violation != nil:
			violations[r.Seq] = r.Violation.Check
		case r.Event.Type == events.TypeQuarantined:
			delete(violations, r.Event.QuarantinedSeq)
			fallthrough
		default:
			history = append(history, audit.ReceiptEvent{Seq: r.Seq, Event: r.Event})
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(violations) > 0 {
		first := slices.Min(slices.Collect(maps.Keys(violations)))
		return nil, &IntegrityError{Seq: first, Subject: k.NATSSubject(), Check: violations[first]}
	}
	cp, err := l.lastCheckpoint(ctx, signer)
	if err != nil {
		return nil, err
	}
	return signer.SignReceipt(audit.NewReceipt(l.streamName, k, history, cp, l.now()))
}

// eachEvent calls fn with the consent's history records (events and
// violations, see History) and when the stream stored each, oldest first,
// until fn returns false.
func (l *Ledger) eachEvent(ctx context.Context, k events.Key, fn func(wire.Record, time.Time) bool) error {
	q := wire.HistoryQuery{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose, Limit: wire.MaxHistoryLimit}
	for {
		h, stored, err := l.history(ctx, q)
		if err != nil {
			return err
		}
		for i, r := range h.Events {
			if !fn(r, stored[i]) {
				return nil
			}
		}
		if len(h.Events) < q.Limit {
			return nil
		}
		q.AfterSeq = h.Events[len(h.Events)-1].Seq
	}
}

// lastCheckpoint returns the stream's latest checkpoint when it verifies
// with the signer's key, else nil.
func (l *Ledger) lastCheckpoint(ctx context.Context, signer *audit.Signer) (*audit.CheckpointRef, error) {
	msg, err := l.stream.GetLastMsgForSubject(ctx, events.CheckpointSubject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the last checkpoint: %w", err)
	}
	cp, err := audit.VerifyCheckpoint(msg.Data, audit.NewKeyring(signer.Public()))
	if err != nil {
		return nil, nil // not ours to vouch for
	}
	return &audit.CheckpointRef{Seq: msg.Sequence, UpToSeq: cp.UpToSeq, Chain: cp.Chain, Time: cp.Time, KeyID: cp.KeyID}, nil
}
