package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Append validates a command of the given kind, decides its event against
// the consent's current state and appends it to the consent's subject,
// chained to the previous event by prev_hash.
//
// Concurrency: appends to one consent through one Ledger run one at a time,
// in arrival order. The event is published with the expected last sequence
// of the consent's subject, so it lands only if nothing was appended to the
// consent since it was read (by another process). Without cmd.ExpectedSeq,
// a writer that got in first makes Append re-read and re-decide, up to
// Options.MaxRetries times with a short jittered backoff, then fail with an
// error matching ErrContention (409). With cmd.ExpectedSeq, a consent whose
// last event is at another sequence gives a *SeqMismatchError (matching
// ErrSeqMismatch, 409) naming both sequences. With Options.Tips the
// consent's state may come from a hint instead of a read; the stream's
// sequence check makes a stale hint cost a refused publish and a read,
// never a different outcome.
//
// A publish that goes unanswered for Options.PublishAttemptTimeout is
// sent again, the same message, until ctx ends (see PublishAttemptTimeout).
//
// Idempotency: the message carries Nats-Msg-Id = cmd.IdempotencyKey (or the
// event id when there is none). Inside the stream's duplicate window the
// server drops a repeated key stream-wide. Beyond the window, Append looks
// through this consent's history for an event stored under the key before
// deciding, so idempotency keys beyond the window are scoped to one consent:
// a key reused for another consent after the window appends a new event.
// Either way a repeated key appends nothing and returns the first event and
// its seq with Duplicate set, also when the repeat would now be forbidden or
// its expected_seq is stale.
//
// Errors: a *events.FieldError (400) for invalid input, before anything is
// read or written; a *WritesRefusedError (503) while Options.Guard finds
// the stream unsafe, also before anything is read; an *IntegrityError
// (matching ErrIntegrity, 409) naming the sequence when the consent's
// history holds a message that fails the integrity checks (see
// IntegrityError); a *events.TransitionError (matching events.ErrForbidden,
// 409) when the table forbids the command (on a replicated stream, whose
// tip reads any replica may answer, only once the stream leader confirms
// the tip it was decided on); context and JetStream errors as
// they come. An error never leaves a partly written event: an event is one
// message, stored whole or not at all.
func (l *Ledger) Append(ctx context.Context, kind events.Kind, cmd events.Command) (wire.Reply, error) {
	if err := cmd.Validate(kind); err != nil {
		return wire.Reply{}, err
	}
	if err := l.guard.Err(); err != nil {
		return wire.Reply{}, err
	}
	key, err := l.resolve(ctx, cmd.Key())
	if err != nil {
		return wire.Reply{}, err
	}
	unlock, err := l.locks.lock(ctx, key.NATSSubject())
	if err != nil {
		return wire.Reply{}, err
	}
	defer unlock()
	// With Options.Tips a hint of the consent's state stands in for the
	// first read; anything but a stored event decided on it (a conflict, a
	// transition its state forbids, an expected_seq it misses) is decided
	// again on a read of the stream.
	if cmd.IdempotencyKey == "" {
		cur, ok, err := l.hint(ctx, key, key.NATSSubject())
		if err != nil {
			return wire.Reply{}, err
		}
		if ok && (cmd.ExpectedSeq == nil || *cmd.ExpectedSeq == cur.Seq) {
			reply, err := l.publish(ctx, kind, cmd, cur)
			if err == nil || !(isConflict(err) || errors.Is(err, events.ErrForbidden)) {
				return reply, err
			}
		}
	}
	// leaderSeq is the consent's last sequence as the stream leader gave
	// it during this append (known). A tip read at that sequence is the
	// consent's state at a moment inside this append, so a transition it
	// forbids is answered without asking the leader again.
	var leaderSeq uint64
	known := false
	for attempt := 0; ; attempt++ {
		t, err := l.readTip(ctx, key, cmd.IdempotencyKey)
		if err != nil {
			return wire.Reply{}, err
		}
		if t.original != nil {
			return l.duplicateReply(ctx, t.original, key)
		}
		if exp := cmd.ExpectedSeq; exp != nil && *exp != t.cur.Seq {
			// On a replicated stream a read behind the caller's
			// expectation may come from a lagging follower: read again.
			if !l.replicated || t.cur.Seq > *exp || attempt >= l.maxRetries {
				return wire.Reply{}, &SeqMismatchError{Expected: *exp, Actual: t.cur.Seq}
			}
		} else {
			reply, err := l.publish(ctx, kind, cmd, t.cur)
			if errors.Is(err, events.ErrForbidden) {
				// On a replicated stream the tip may come from a follower
				// that has not applied the consent's latest event yet:
				// unless the leader confirms the tip, read again and
				// decide again.
				if !l.replicated || (known && leaderSeq == t.cur.Seq) {
					return reply, err
				}
				last, lerr := l.leaderLastSeq(ctx, key.NATSSubject())
				if lerr != nil {
					return wire.Reply{}, lerr
				}
				if last == t.cur.Seq {
					return reply, err
				}
				leaderSeq, known = last, true
			} else if !isConflict(err) {
				return reply, err
			}
		}
		// Another writer got in between our read and our publish (or the
		// read was stale): read again and decide again.
		if attempt >= l.maxRetries {
			return wire.Reply{}, fmt.Errorf("%w: the consent changed under %d attempts in a row; retry", ErrContention, attempt+1)
		}
		if err := backoff(ctx, attempt); err != nil {
			return wire.Reply{}, err
		}
	}
}

// tip is what Append knows of a consent before deciding.
type tip struct {
	cur events.Consent // folded from the consent's last event
	// original is the consent's event stored under the command's
	// idempotency key, if there is one.
	original *jetstream.RawStreamMsg
}

// readTip reads the consent's last event, checks it as the projector does
// (events.CheckMessage) and folds it. With an idempotency key it reads the
// whole history instead (one batched direct get that also yields the last
// event), looks for an event stored under the key, and folds the history
// by the projector's rule, links included (foldStored). It returns an
// *IntegrityError when a message fails a check, or when the Ledger's Tips
// mark the consent (a broken link further back).
func (l *Ledger) readTip(ctx context.Context, key events.Key, idempotencyKey string) (tip, error) {
	t := tip{cur: events.NewConsent(key)}
	natsSubject := key.NATSSubject()
	var last *jetstream.RawStreamMsg
	if idempotencyKey == "" {
		var msg *jetstream.RawStreamMsg
		err := attempt(ctx, l.readTimeout, func(ctx context.Context) (err error) {
			msg, err = l.stream.GetLastMsgForSubject(ctx, natsSubject)
			return err
		})
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return t, nil
		case err != nil:
			return tip{}, fmt.Errorf("read last event of %s: %w", natsSubject, err)
		}
		last = msg
	} else {
		var all []*jetstream.RawStreamMsg
		for afterSeq := uint64(0); ; {
			msgs, err := l.readMsgs(ctx, natsSubject, afterSeq, wire.MaxHistoryLimit)
			if err != nil {
				return tip{}, fmt.Errorf("read history of %s: %w", natsSubject, err)
			}
			for _, m := range msgs {
				if events.StoredUnderKey(natsSubject, m.Header.Get(events.HeaderMsgID), idempotencyKey) {
					t.original = m
					return t, nil
				}
			}
			all = append(all, msgs...)
			if len(msgs) == 0 {
				break
			}
			last = msgs[len(msgs)-1]
			afterSeq = last.Sequence
			if len(msgs) < wire.MaxHistoryLimit {
				break
			}
		}
		if last == nil {
			return t, nil
		}
		// The whole history is at hand: fold it by the projector's rule,
		// links included.
		f, err := foldStored(all)
		if err != nil {
			return tip{}, err
		}
		if len(f.taints) > 0 {
			return tip{}, &IntegrityError{Seq: f.taints[0], Subject: natsSubject}
		}
		t.cur = f.cur
		return t, l.checkTaint(ctx, key, f.last)
	}
	ev, err := checkStored(last)
	if err != nil {
		return tip{}, err
	}
	if !sameConsent(ev.Key(), key) {
		return tip{}, fmt.Errorf("%w: event at seq %d on %s belongs to another consent", wire.ErrUnreadableEvent, last.Sequence, natsSubject)
	}
	t.cur = events.Evolve(t.cur, ev, last.Sequence)
	return t, l.checkTaint(ctx, key, last.Sequence)
}

// publish decides the command's event in state cur and publishes it,
// expecting cur.Seq to be the consent's last sequence.
func (l *Ledger) publish(ctx context.Context, kind events.Kind, cmd events.Command, cur events.Consent) (wire.Reply, error) {
	now := l.now().UTC()
	ev, err := events.Decide(cur, kind, cmd, now)
	if err != nil {
		return wire.Reply{}, err
	}
	if ev.ID, err = newEventID(); err != nil {
		return wire.Reply{}, err
	}
	payload, err := l.seal(ctx, &ev)
	if err != nil {
		return wire.Reply{}, err
	}
	subject := cur.Key().NATSSubject()
	msgID := eventMsgID(subject, cmd.IdempotencyKey, ev.ID)
	msg := l.eventMsg(subject, string(ev.Type), payload, msgID, cur.Seq)
	ack, err := l.publishMsg(ctx, msg, msgID)
	if err != nil {
		return wire.Reply{}, err
	}
	if ack.Duplicate {
		// The key was used inside the duplicate window: the server kept
		// the first message and stored nothing.
		original, err := l.loadDuplicate(ctx, ack.Sequence, subject)
		if err != nil {
			return wire.Reply{}, err
		}
		reply, err := l.duplicateReply(ctx, original, cur.Key())
		if err != nil {
			return wire.Reply{}, err
		}
		// Unless it is this very event, stored by an attempt whose ack was
		// lost (publishMsg sends an unanswered publish again).
		reply.Duplicate = reply.Event.ID != ev.ID
		return reply, nil
	}
	next := events.Evolve(cur, &ev, ack.Sequence)
	l.remember(msg.Subject, next)
	return wire.Reply{Seq: ack.Sequence, Event: &ev, Status: next.View(now, 0)}, nil
}

// eventMsgID is the Nats-Msg-Id of an event on subject: derived from the
// caller's idempotency key when there is one (see events.IdempotencyMsgID),
// else the event's own id.
func eventMsgID(subject, idempotencyKey, eventID string) string {
	if idempotencyKey == "" {
		return eventID
	}
	return events.IdempotencyMsgID(subject, idempotencyKey)
}

// loadDuplicate reads the message the server named as the original of a
// publish it dropped as a duplicate, and makes sure it is on subject: a
// reply never carries another consent's event.
func (l *Ledger) loadDuplicate(ctx context.Context, seq uint64, subject string) (*jetstream.RawStreamMsg, error) {
	original, err := l.loadMsg(ctx, seq)
	if err != nil {
		return nil, err
	}
	if original.Subject != subject {
		return nil, fmt.Errorf("%w: the server answered a publish on %s as a duplicate of seq %d on %s", wire.ErrUnreadableEvent, subject, seq, original.Subject)
	}
	return original, nil
}

// newEventID returns a fresh event id: a UUIDv7, so ids sort by creation.
func newEventID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("event id: %w", err)
	}
	return id.String(), nil
}

// eventMsg is the message that appends one sealed event to subject: its
// type, its Nats-Msg-Id, the subject's expected last sequence and (when
// the Ledger knows it) the stream's name, so that the server stores it
// only where and after what it was decided.
func (l *Ledger) eventMsg(subject, eventType string, payload []byte, msgID string, expectedSeq uint64) *nats.Msg {
	msg := &nats.Msg{
		Subject: subject,
		Data:    payload,
		Header: nats.Header{
			events.HeaderEventType:              []string{eventType},
			jetstream.MsgIDHeader:               []string{msgID},
			jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(expectedSeq, 10)},
		},
	}
	if l.streamName != "" {
		msg.Header.Set(jetstream.ExpectedStreamHeader, l.streamName)
	}
	return msg
}

// duplicateReply answers a repeated idempotency key of the consent key
// with the event first stored under it, opened as the first reply's was;
// its status names the person as the caller did (a sealed event whose key
// is gone names them by subject key only).
func (l *Ledger) duplicateReply(ctx context.Context, msg *jetstream.RawStreamMsg, key events.Key) (wire.Reply, error) {
	ev, err := decodeStored(msg)
	if err != nil {
		return wire.Reply{}, err
	}
	if err := l.open(ctx, ev); err != nil {
		return wire.Reply{}, err
	}
	cur := events.Evolve(events.NewConsent(ev.Key()), ev, msg.Sequence)
	if cur.SubjectID == "" {
		cur.SubjectID = key.SubjectID
	}
	return wire.Reply{
		Seq:       msg.Sequence,
		Duplicate: true,
		Event:     ev,
		Status:    cur.View(l.now().UTC(), 0),
	}, nil
}

// loadMsg reads the message at seq. On a replicated stream the direct get
// may be served by a follower that has not stored it yet, so a miss is
// retried briefly; an unanswered read is sent again (see attempt).
func (l *Ledger) loadMsg(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	for n := 0; ; n++ {
		var msg *jetstream.RawStreamMsg
		err := attempt(ctx, l.readTimeout, func(ctx context.Context) (err error) {
			msg, err = l.stream.GetMsg(ctx, seq)
			return err
		})
		if err == nil || !errors.Is(err, jetstream.ErrMsgNotFound) || !l.replicated || n >= l.maxRetries {
			if err != nil {
				return nil, fmt.Errorf("read event at seq %d: %w", seq, err)
			}
			return msg, nil
		}
		if err := backoff(ctx, n); err != nil {
			return nil, err
		}
	}
}

// isConflict reports whether a publish was refused because the subject's
// last sequence was not the expected one: error code 10071 on a one-replica
// stream, 10164 on a replicated one (jetstream.ErrKeyExists matches only
// the first).
func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// backoff waits before retry number attempt+1: about 1ms, doubling up to
// about 32ms, jittered by ±50% so that writers that collided spread out.
func backoff(ctx context.Context, attempt int) error {
	d := time.Millisecond << min(attempt, 5)
	d = d/2 + rand.N(d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sameConsent reports whether a and b name one consent: one tenant, one
// purpose, one subject key, and, where both name the person's id (events
// of schema version 1 do, sealed and erasure events do not), one id.
func sameConsent(a, b events.Key) bool {
	return a.Tenant == b.Tenant && a.Purpose == b.Purpose && a.Token() == b.Token() &&
		(a.SubjectID == "" || b.SubjectID == "" || a.SubjectID == b.SubjectID)
}
