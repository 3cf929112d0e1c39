package ledger

import (
	"context"
	"fmt"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/changefeed"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// PurposeReader answers purpose registry questions from an index of the
// stream; the projector's index implements it. When the StateReader given
// to NewService also implements PurposeReader, the service answers the
// purpose endpoints and judges every status against the purpose's current
// policy version.
type PurposeReader interface {
	// Purpose returns one purpose (Registered false when it was never set)
	// and the index sequence it was read at, waiting for minSeq as
	// StateReader.Consent does.
	Purpose(ctx context.Context, k events.PurposeKey, minSeq uint64) (events.Purpose, uint64, error)
	// Purposes returns the registered purposes of a tenant, ordered by
	// name, waiting for minSeq.
	Purposes(ctx context.Context, tenant string, minSeq uint64) ([]events.Purpose, uint64, error)
}

// SetPurpose records a change of the purpose registry: a purpose.set event
// on consent.purposes.<tenant>.<purpose>, chained to the purpose's previous
// event by prev_hash and appended with the expected last sequence of that
// subject, as Append does for consents (same retries on conflict, same
// idempotency: a repeated idempotency_key appends nothing and returns the
// first event with Duplicate set; cmd.ExpectedSeq, when set, must be the
// purpose's last sequence, 0 for a purpose never set).
//
// Errors: a *events.FieldError for invalid input; a *WritesRefusedError
// (503) while Options.Guard finds the stream unsafe; a
// *events.PolicyDowngradeError (409) for a lower policy version than the
// current one; a *SeqMismatchError (409) for a stale expected_seq; an
// error matching ErrContention (409) after MaxRetries conflicts; an error
// matching wire.ErrUnreadableEvent when the purpose's stored history does not
// decode; context and JetStream errors as they come.
func (l *Ledger) SetPurpose(ctx context.Context, cmd events.PurposeCommand) (wire.PurposeReply, error) {
	if err := cmd.Validate(); err != nil {
		return wire.PurposeReply{}, err
	}
	if err := l.guard.Err(); err != nil {
		return wire.PurposeReply{}, err
	}
	key := cmd.Key()
	natsSubject := key.NATSSubject()
	unlock, err := l.locks.lock(ctx, natsSubject)
	if err != nil {
		return wire.PurposeReply{}, err
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		cur, original, err := l.readPurpose(ctx, key, cmd.IdempotencyKey)
		if err != nil {
			return wire.PurposeReply{}, err
		}
		if original != nil {
			return purposeDuplicate(original)
		}
		if exp := cmd.ExpectedSeq; exp != nil && *exp != cur.Seq {
			if !l.replicated || cur.Seq > *exp || attempt >= l.maxRetries {
				return wire.PurposeReply{}, &SeqMismatchError{Expected: *exp, Actual: cur.Seq}
			}
		} else {
			reply, err := l.publishPurpose(ctx, cmd, cur)
			if !isConflict(err) {
				return reply, err
			}
		}
		if attempt >= l.maxRetries {
			return wire.PurposeReply{}, fmt.Errorf("%w: the purpose changed under %d attempts in a row; retry", ErrContention, attempt+1)
		}
		if err := backoff(ctx, attempt); err != nil {
			return wire.PurposeReply{}, err
		}
	}
}

// readPurpose folds the purpose's history from the stream; when an event
// of it was stored under idempotencyKey, it returns that message instead.
// Purpose histories are short (one event per change of a policy).
func (l *Ledger) readPurpose(ctx context.Context, key events.PurposeKey, idempotencyKey string) (events.Purpose, *jetstream.RawStreamMsg, error) {
	cur := events.NewPurpose(key)
	natsSubject := key.NATSSubject()
	for afterSeq := uint64(0); ; {
		msgs, err := l.readMsgs(ctx, natsSubject, afterSeq, wire.MaxHistoryLimit)
		if err != nil {
			return cur, nil, fmt.Errorf("read purpose history of %s: %w", natsSubject, err)
		}
		for _, m := range msgs {
			if events.StoredUnderKey(natsSubject, m.Header.Get(events.HeaderMsgID), idempotencyKey) {
				return cur, m, nil
			}
			ev, err := changefeed.DecodeStoredPurpose(m)
			if err != nil {
				return cur, nil, err
			}
			cur = events.EvolvePurpose(cur, ev, m.Sequence)
		}
		if len(msgs) < wire.MaxHistoryLimit {
			return cur, nil, nil
		}
		afterSeq = msgs[len(msgs)-1].Sequence
	}
}

func (l *Ledger) publishPurpose(ctx context.Context, cmd events.PurposeCommand, cur events.Purpose) (wire.PurposeReply, error) {
	ev, err := events.DecidePurpose(cur, cmd, l.now())
	if err != nil {
		return wire.PurposeReply{}, err
	}
	if ev.ID, err = newEventID(); err != nil {
		return wire.PurposeReply{}, err
	}
	payload, err := ev.Seal()
	if err != nil {
		return wire.PurposeReply{}, err
	}
	subject := cur.Key().NATSSubject()
	msg := l.eventMsg(subject, string(ev.Type), payload, eventMsgID(subject, cmd.IdempotencyKey, ev.ID), cur.Seq)
	ack, err := l.js.PublishMsg(ctx, msg)
	if err != nil {
		return wire.PurposeReply{}, err
	}
	if ack.Duplicate {
		original, err := l.loadDuplicate(ctx, ack.Sequence, subject)
		if err != nil {
			return wire.PurposeReply{}, err
		}
		return purposeDuplicate(original)
	}
	return wire.PurposeReply{Seq: ack.Sequence, Event: &ev, Purpose: events.EvolvePurpose(cur, &ev, ack.Sequence)}, nil
}

func purposeDuplicate(m *jetstream.RawStreamMsg) (wire.PurposeReply, error) {
	ev, err := changefeed.DecodeStoredPurpose(m)
	if err != nil {
		return wire.PurposeReply{}, err
	}
	// The state after the original event follows from it alone.
	p := events.EvolvePurpose(events.NewPurpose(ev.Key()), ev, m.Sequence)
	return wire.PurposeReply{Seq: m.Sequence, Duplicate: true, Event: ev, Purpose: p}, nil
}
