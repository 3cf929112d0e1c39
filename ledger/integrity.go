package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// The write path applies the projector's integrity rule (events.CheckMessage
// and the prev_hash link): a consent whose history holds a message that
// fails it, and that no consent.quarantined explains, takes no write.

// ErrIntegrity is matched by the error an append returns for a consent
// whose history holds a message that failed the integrity checks (an
// *IntegrityError). It is a 409 on the wire.
var ErrIntegrity = errors.New("consent has an integrity violation")

// IntegrityError is returned by Append (and Expire's callers see it the
// same way) for a consent whose history holds a message that failed the
// integrity checks at stream sequence Seq. Nothing was written. An
// operator gets the consent past it with Ledger.Quarantine (consentctl
// admin quarantine).
type IntegrityError struct {
	Seq     uint64 // the stream sequence of the first such message
	Subject string // the consent's NATS subject
	Check   string // the check it failed (events.Check*), when known here
}

func (e *IntegrityError) Error() string {
	check := ""
	if e.Check != "" {
		check = " (" + e.Check + " check)"
	}
	return fmt.Sprintf("consent has an integrity violation at seq %d%s; an operator must quarantine it (consentctl admin quarantine %d --reason TEXT)", e.Seq, check, e.Seq)
}

// Is makes errors.Is(err, ErrIntegrity) true.
func (e *IntegrityError) Is(target error) bool { return target == ErrIntegrity }

// checkStored runs events.CheckMessage on a consent's stored message: the
// decoded event when it passes; an *IntegrityError when it fails; an error
// matching wire.ErrUnreadableEvent when a newer ledger wrote it.
func checkStored(m *jetstream.RawStreamMsg) (*events.Event, error) {
	ev, check, err := events.CheckMessage(m.Subject, m.Header.Get(events.HeaderEventType), m.Data, false)
	switch check {
	case "":
		return ev, nil
	case events.CheckNewer:
		return nil, fmt.Errorf("%w: seq %d on %s: %v", wire.ErrUnreadableEvent, m.Sequence, m.Subject, err)
	}
	return nil, &IntegrityError{Seq: m.Sequence, Subject: m.Subject, Check: check}
}

// taintWait bounds how long checkTaint waits for the index to fold the
// consent's last message before trusting a mark it holds.
const taintWait = 2 * time.Second

// checkTaint returns an *IntegrityError when the Ledger's Tips (the index)
// mark the consent, whose last message, just read from the stream, is at
// tipSeq: a message of its history failed a check the last message alone
// does not show (its link). A mark from an index that has not folded
// tipSeq yet (a quarantine just appended, say) is asked again once it has,
// waiting up to taintWait. Without Tips, or when they cannot answer, it
// returns nil: the checks of the stream read stand.
func (l *Ledger) checkTaint(ctx context.Context, key events.Key, tipSeq uint64) error {
	if l.tips == nil {
		return nil
	}
	c, at, err := l.tips.Consent(ctx, key, 0)
	if err == nil && c.ViolationSeq != 0 && at < tipSeq {
		wait, cancel := context.WithTimeout(ctx, taintWait)
		c, _, err = l.tips.Consent(wait, key, tipSeq)
		cancel()
	}
	if err != nil || c.ViolationSeq == 0 {
		return nil
	}
	return &IntegrityError{Seq: c.ViolationSeq, Subject: key.NATSSubject()}
}

// storedFold is a consent's history read from the stream and folded by
// the projector's rule.
type storedFold struct {
	cur    events.Consent // the last good state (Tenant "" when no event of it applied)
	taints []uint64       // messages that failed a check, not quarantined, ascending
	last   uint64         // the sequence of the last message on the subject
	keyIDs []string       // the data keys the messages name (key_id), in order of first use
}

// foldStored folds one consent subject's messages, oldest first, as the
// projector does (storedFold.step). It returns an error matching
// wire.ErrUnreadableEvent for a message a newer ledger wrote.
func foldStored(msgs []*jetstream.RawStreamMsg) (storedFold, error) {
	var f storedFold
	for _, m := range msgs {
		if _, _, err := f.step(m); err != nil {
			return storedFold{}, err
		}
	}
	return f, nil
}

// step folds the consent's next message m as the projector does: a
// message that fails events.CheckMessage, its link to the last applied
// event, or (a quarantine) does not resume the last good state is not
// applied and taints the consent, and step returns the failed check with
// why; a quarantine that is applied clears the taint it names. Otherwise
// it returns the applied event. It returns an error matching
// wire.ErrUnreadableEvent for a message a newer ledger wrote (f is then
// unchanged but for last).
func (f *storedFold) step(m *jetstream.RawStreamMsg) (*events.Event, *wire.RecordViolation, error) {
	f.last = m.Sequence
	ev, check, err := events.CheckMessage(m.Subject, m.Header.Get(events.HeaderEventType), m.Data, false)
	// The keys of the consent's events, also of those that fail a check
	// but belong on its subject: erasing the person destroys them.
	if ev != nil && check != events.CheckSubject && ev.KeyID != "" && !slices.Contains(f.keyIDs, ev.KeyID) {
		f.keyIDs = append(f.keyIDs, ev.KeyID)
	}
	var v *wire.RecordViolation
	switch {
	case check == events.CheckNewer:
		return nil, nil, fmt.Errorf("%w: seq %d on %s: %v", wire.ErrUnreadableEvent, m.Sequence, m.Subject, err)
	case check != "":
		v = &wire.RecordViolation{Check: check, Reason: err.Error()}
	case ev.PrevHash != f.cur.NextPrevHash():
		reason := fmt.Sprintf("prev_hash is %q but the consent has no applied event (want \"\")", ev.PrevHash)
		if f.cur.Seq != 0 {
			reason = fmt.Sprintf("prev_hash is %q but the consent's last applied event (seq %d) has hash %q", ev.PrevHash, f.cur.Seq, f.cur.Hash)
		}
		v = &wire.RecordViolation{Check: events.CheckLink, Reason: reason}
	case ev.Type == events.TypeQuarantined && !ev.Resumes(f.cur):
		v = &wire.RecordViolation{Check: events.CheckQuarantine, Reason: fmt.Sprintf(
			"it resumes state %s at policy version %d, but the consent's last good state (seq %d) is %s at policy version %d",
			ev.State, ev.PolicyVersion, f.cur.Seq, f.cur.State, f.cur.PolicyVersion)}
	}
	if v != nil {
		f.taints = append(f.taints, m.Sequence)
		return nil, v, nil
	}
	if ev.Type == events.TypeQuarantined {
		if i, found := slices.BinarySearch(f.taints, ev.QuarantinedSeq); found {
			f.taints = slices.Delete(f.taints, i, i+1)
		}
	}
	f.cur = events.Evolve(f.cur, ev, m.Sequence)
	return ev, nil, nil
}

// lockAndFold takes the lock of one consent subject and folds its history
// from the stream (foldStored); the caller calls unlock when done (it is
// nil on error, when nothing is held).
func (l *Ledger) lockAndFold(ctx context.Context, subject string) (storedFold, func(), error) {
	unlock, err := l.locks.lock(ctx, subject)
	if err != nil {
		return storedFold{}, nil, err
	}
	msgs, err := l.readSubject(ctx, subject)
	if err == nil {
		var f storedFold
		if f, err = foldStored(msgs); err == nil {
			return f, unlock, nil
		}
	}
	unlock()
	return storedFold{}, nil, err
}

// readSubject reads every message of one consent subject, oldest first.
func (l *Ledger) readSubject(ctx context.Context, subject string) ([]*jetstream.RawStreamMsg, error) {
	var all []*jetstream.RawStreamMsg
	for afterSeq := uint64(0); ; {
		msgs, err := l.readMsgs(ctx, subject, afterSeq, wire.MaxHistoryLimit)
		if err != nil {
			return nil, fmt.Errorf("read history of %s: %w", subject, err)
		}
		all = append(all, msgs...)
		if len(msgs) < wire.MaxHistoryLimit {
			return all, nil
		}
		afterSeq = msgs[len(msgs)-1].Sequence
	}
}

// Quarantine appends consent.quarantined (events.DecideQuarantine) for
// the message at stream sequence q.Seq, which must have failed the
// integrity checks of the consent on whose subject it is stored and not
// be quarantined yet: the consent then resumes its last good state, and
// the next write links to the quarantine. The event records q.Reason,
// q.Actor and q.RecordedBy and is part of the consent's hash chain, so the
// audit trail keeps who set what aside and why (consentctl audit verify
// reports it as an explained violation).
//
// The consent's tenant, subject id and purpose are learnt from its
// readable events; when it has none, q must name them (q.SubjectID,
// q.Purpose).
//
// Errors: a *events.FieldError (400) for an invalid request, a q.Seq that
// holds no message, a message on no consent's subject, in another tenant
// than q.Tenant, or one that is not an unquarantined violation; an error
// matching ErrContention (409) when the consent changed while the
// quarantine was decided; context and JetStream errors as they come.
func (l *Ledger) Quarantine(ctx context.Context, q events.Quarantine) (wire.Reply, error) {
	if err := q.Validate(); err != nil {
		return wire.Reply{}, err
	}
	bad, err := l.stream.GetMsg(ctx, q.Seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return wire.Reply{}, &events.FieldError{Field: "seq", Problem: fmt.Sprintf("the stream holds no message at seq %d", q.Seq)}
	}
	if err != nil {
		return wire.Reply{}, fmt.Errorf("read seq %d: %w", q.Seq, err)
	}
	subject := bad.Subject
	tenant, _, _, ok := events.ParseConsentSubject(subject)
	if !ok {
		return wire.Reply{}, &events.FieldError{Field: "seq", Problem: fmt.Sprintf("seq %d is on %s, which names no consent: it is recorded as a violation only, and there is nothing to quarantine", q.Seq, subject)}
	}
	if q.Tenant != "" && q.Tenant != tenant {
		return wire.Reply{}, &events.FieldError{Field: "tenant", Problem: fmt.Sprintf("seq %d belongs to tenant %s", q.Seq, tenant)}
	}
	f, unlock, err := l.lockAndFold(ctx, subject)
	if err != nil {
		return wire.Reply{}, err
	}
	defer unlock()
	at, found := slices.BinarySearch(f.taints, q.Seq)
	if !found {
		return wire.Reply{}, &events.FieldError{Field: "seq", Problem: fmt.Sprintf("the message at seq %d is not an integrity violation of its consent that awaits quarantine (it passed every check, or is quarantined already)", q.Seq)}
	}
	cur := f.cur
	if q.SubjectID != "" {
		k, err := l.resolve(ctx, events.Key{Tenant: tenant, SubjectID: q.SubjectID, Purpose: q.Purpose})
		if err != nil {
			return wire.Reply{}, err
		}
		if !k.IsNATSSubject(subject) {
			return wire.Reply{}, &events.FieldError{Field: "subject", Problem: fmt.Sprintf("subject and purpose do not name the consent of seq %d (%s)", q.Seq, subject)}
		}
		if cur.Tenant == "" {
			cur = events.NewConsent(k)
		}
		cur.SubjectID = q.SubjectID
	}
	if cur.Tenant != "" && cur.SubjectID == "" {
		// Folded from sealed events: the last one names the person.
		if cur, err = l.personOf(ctx, cur); err != nil {
			return wire.Reply{}, err
		}
	}
	if cur.Tenant == "" {
		return wire.Reply{}, &events.FieldError{Field: "subject", Problem: fmt.Sprintf("the stream holds no readable event of the consent of seq %d: name it with subject and purpose", q.Seq)}
	}
	now := l.now().UTC()
	ev := events.DecideQuarantine(cur, q, now)
	seq, err := l.appendDecided(ctx, subject, &ev, f.last, "quarantine")
	if err != nil {
		return wire.Reply{}, err
	}
	next := events.Evolve(cur, &ev, seq)
	if rest := slices.Delete(f.taints, at, at+1); len(rest) > 0 {
		next.ViolationSeq = rest[0] // another violation awaits its own quarantine
	}
	l.remember(subject, next)
	return wire.Reply{Seq: seq, Event: &ev, Status: next.View(now, 0)}, nil
}

// appendDecided appends ev, an operator's event decided under subject's
// lock (a quarantine, an erasure), on subject, expecting last to be the
// subject's last sequence, and returns its sequence. A conflict (the
// consent changed meanwhile) is ErrContention, naming what (the kind of
// event) to retry.
func (l *Ledger) appendDecided(ctx context.Context, subject string, ev *events.Event, last uint64, what string) (uint64, error) {
	var err error
	if ev.ID, err = newEventID(); err != nil {
		return 0, err
	}
	payload, err := l.seal(ctx, ev)
	if err != nil {
		return 0, err
	}
	msg := l.eventMsg(subject, string(ev.Type), payload, ev.ID, last)
	ack, err := l.publishMsg(ctx, msg, ev.ID)
	if isConflict(err) {
		return 0, fmt.Errorf("%w: the consent changed while the %s was decided; retry", ErrContention, what)
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}
