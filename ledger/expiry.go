package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
)

// Expiry is an event: when a grant's expires_at passes, an Expirer appends
// consent.expired for it, so that subscribers of the stream learn of it.
//
// Where expirers learn what is due: from the index (ExpirySource, the
// projector's secondary key by expires_at), which every consentd instance
// has, scanned once per interval and again at the next known expiry. So
// nothing is held in memory per grant, and a restarted instance knows
// everything at once from its index.
//
// Exactly once with several instances: every instance tries every due
// grant, but an expiry is published with the grant's stream sequence as
// the expected last sequence of the consent's subject and a Nats-Msg-Id
// derived from the grant's event id. Only one publish can land; the others
// get a conflict (or a duplicate ack) and drop it. A grant that was renewed
// or revoked in the meantime conflicts too: it is not expired.

// ErrExpiryLost is matched by the error Expire returns when the consent is
// no longer at the grant it was asked to expire: another instance expired
// it first, or it was renewed or revoked. Nothing was appended.
var ErrExpiryLost = errors.New("consent changed since the grant: expiry not appended")

// Expire appends consent.expired for c, a grant as the index holds it (its
// Seq is the grant's stream sequence), if its expires_at is at or before
// the ledger's clock. When c names the person by SubjectKey only (as
// projector.Index.DueGrants gives it), the grant's event at c.Seq is read
// for the person: the subject id of a v1 grant. A grant of v2 events (no
// subject id in its stored event) is refused by ev.Seal, as a v1 event
// with a subject key, until the ledger writes v2 events. The reply says
// what was appended; Duplicate is set when the very same expiry had been
// appended by another instance within the stream's duplicate window.
//
// Errors: a *events.TransitionError when c is not a grant that has expired
// by now; a *WritesRefusedError while Options.Guard finds the stream
// unsafe; an error matching ErrExpiryLost when the consent's last event is
// not the grant any more; an error when the event at c.Seq is not c's
// grant; context and JetStream errors as they come.
func (l *Ledger) Expire(ctx context.Context, c events.Consent) (reply wire.Reply, err error) {
	defer func(start time.Time) { l.observeAppend(events.TypeExpired, start, &reply, err) }(time.Now())
	now := l.now().UTC()
	if c.SubjectID == "" {
		// The index names the person by subject key only; the grant's
		// own event names them as the expiry must.
		if c, err = l.personOf(ctx, c); err != nil {
			return wire.Reply{}, err
		}
	}
	ev, err := events.DecideExpiry(c, now)
	if err != nil {
		return wire.Reply{}, err
	}
	if err := l.guard.Err(); err != nil {
		return wire.Reply{}, err
	}
	key := c.Key()
	unlock, err := l.locks.lock(ctx, key.NATSSubject())
	if err != nil {
		return wire.Reply{}, err
	}
	defer unlock()
	if ev.ID, err = newEventID(); err != nil {
		return wire.Reply{}, err
	}
	payload, err := l.seal(ctx, &ev)
	if err != nil {
		return wire.Reply{}, err
	}
	// The same message id and expected sequence from every instance: a
	// second publish is refused, as a duplicate or as a conflict, whichever
	// the server checks first.
	msg := l.eventMsg(key.NATSSubject(), string(ev.Type), payload, "expire:"+c.EventID, c.Seq)
	ack, err := l.js.PublishMsg(ctx, msg)
	switch {
	case isConflict(err):
		return wire.Reply{}, fmt.Errorf("%w: %s/%s: the grant at seq %d is not its last event", ErrExpiryLost, key.Tenant, key.Purpose, c.Seq)
	case err != nil:
		return wire.Reply{}, err
	case ack.Duplicate:
		original, err := l.loadMsg(ctx, ack.Sequence)
		if err != nil {
			return wire.Reply{}, err
		}
		return l.duplicateReply(ctx, original, key)
	}
	next := events.Evolve(c, &ev, ack.Sequence)
	l.remember(msg.Subject, next)
	return wire.Reply{Seq: ack.Sequence, Event: &ev, Status: next.View(now, 0)}, nil
}

// personOf returns c, a consent whose state names no person's id (as the
// index holds it, or folded from sealed events), with the person as its
// event at c.Seq names them: the subject id and no subject key for an
// event of schema v1; for v2 the subject key, and the id once the event
// is opened with its data key. It fails when that event is not c's last
// event, or when it is sealed and cannot be opened.
func (l *Ledger) personOf(ctx context.Context, c events.Consent) (events.Consent, error) {
	msg, err := l.loadMsg(ctx, c.Seq)
	if err != nil {
		return c, err
	}
	ev, err := decodeStored(msg)
	if err != nil {
		return c, err
	}
	if err := l.open(ctx, ev); err != nil {
		return c, err
	}
	if ev.ID != c.EventID || ev.Key().Token() != c.SubjectKey {
		return c, fmt.Errorf("ledger: %s/%s: the event at seq %d is not the consent's last event %s", c.Tenant, c.Purpose, c.Seq, c.EventID)
	}
	c.SubjectID, c.SubjectKey = ev.SubjectID, ev.SubjectKey
	if c.SubjectID == "" {
		return c, fmt.Errorf("ledger: %s/%s: the event at seq %d is sealed and its data key is gone", c.Tenant, c.Purpose, c.Seq)
	}
	return c, nil
}

// ExpirySource tells an Expirer which grants are due; the projector's
// index implements it.
type ExpirySource interface {
	// DueGrants returns up to limit stored grants whose expires_at is at
	// or before now, and the expires_at of the next grant to lapse after
	// those (zero when none). It fails with an error matching
	// events.ErrNotReady while the index cannot answer.
	DueGrants(ctx context.Context, now time.Time, limit int) ([]events.Consent, time.Time, error)
	// Wait returns once the index has applied minSeq (or ctx ends, with an
	// error matching events.ErrStale).
	Wait(ctx context.Context, minSeq uint64) (uint64, error)
}

// Defaults of ExpirerOptions.
const (
	DefaultExpiryInterval = time.Second
	DefaultExpiryBatch    = 1000
)

// ExpirerOptions configures an Expirer. The zero value is ready to use.
type ExpirerOptions struct {
	// Interval bounds the delay between a grant's expires_at and its
	// consent.expired event: the index is scanned at least this often, and
	// also at the next expiry it knows of. Default DefaultExpiryInterval.
	Interval time.Duration
	// Batch caps the grants expired per scan; default DefaultExpiryBatch.
	Batch int
	// Now is the clock deciding what is due; default time.Now. The
	// ledger's own clock stamps the events.
	Now func() time.Time
	// Logger gets failures to append; default slog.Default().
	Logger *slog.Logger
}

// Expirer appends consent.expired for every grant whose expires_at has
// passed, as its ExpirySource reports them. Run it in every consentd
// instance: the appends are exactly once across instances (see Expire).
type Expirer struct {
	ledger *Ledger
	source ExpirySource
	opts   ExpirerOptions

	mu    sync.Mutex
	stats ExpiryStats
}

// ExpiryStats counts what an Expirer did since it was made.
type ExpiryStats struct {
	Sweeps   uint64 // scans of the index
	Appended uint64 // consent.expired events this instance appended
	Lost     uint64 // due grants another instance (or a renewal, a revocation) got to first
	Failed   uint64 // appends that failed otherwise; retried at the next sweep
}

// NewExpirer returns an Expirer appending through l what src reports due.
// It does nothing until Run or Sweep.
func NewExpirer(l *Ledger, src ExpirySource, opts ExpirerOptions) *Expirer {
	if opts.Interval <= 0 {
		opts.Interval = DefaultExpiryInterval
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultExpiryBatch
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Expirer{ledger: l, source: src, opts: opts}
}

// Stats returns the counters so far.
func (e *Expirer) Stats() ExpiryStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Sweep expires every grant that is due now (up to Batch of them) and
// returns when the next known grant lapses (zero when none is known, or
// now when more were due than one sweep takes), having waited until the
// index applied the events it appended, so that the next sweep does not
// see those grants again. It returns an error matching events.ErrNotReady
// while the index cannot answer, the ledger's *WritesRefusedError while its
// guard refuses writes, and ctx's error when it ends.
func (e *Expirer) Sweep(ctx context.Context) (next time.Time, err error) {
	if err := e.ledger.guard.Err(); err != nil {
		return time.Time{}, err // the guard has logged it
	}
	now := e.opts.Now()
	due, next, err := e.source.DueGrants(ctx, now, e.opts.Batch)
	if err != nil {
		return time.Time{}, err
	}
	var s ExpiryStats
	s.Sweeps = 1
	var lastSeq uint64
	for _, c := range due {
		reply, err := e.ledger.Expire(ctx, c)
		switch {
		case err == nil && !reply.Duplicate:
			s.Appended++
			lastSeq = max(lastSeq, reply.Seq)
		case err == nil, errors.Is(err, ErrExpiryLost), errors.Is(err, events.ErrForbidden):
			s.Lost++
		case ctx.Err() != nil:
			e.add(s)
			return time.Time{}, ctx.Err()
		default:
			s.Failed++
			e.opts.Logger.Warn("expirer: could not append consent.expired; retrying at the next sweep",
				"tenant", c.Tenant, "purpose", c.Purpose, "seq", c.Seq, "error", err)
		}
	}
	e.add(s)
	if err := awaitOwnAppends(ctx, "expirer", e.source, lastSeq, e.opts.Interval, e.opts.Logger); err != nil {
		return time.Time{}, err
	}
	return next, nil
}

func (e *Expirer) add(s ExpiryStats) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats.Sweeps += s.Sweeps
	e.stats.Appended += s.Appended
	e.stats.Lost += s.Lost
	e.stats.Failed += s.Failed
}

// Run sweeps until ctx ends, then returns nil: at the next known expiry,
// and at least once per Interval (which bounds the delay for grants made
// after a sweep). While the index is not ready it waits an Interval and
// tries again.
func (e *Expirer) Run(ctx context.Context) error {
	return runSweeps(ctx, "expirer", e.opts.Interval, e.opts.Now, e.opts.Logger, e.Sweep)
}
