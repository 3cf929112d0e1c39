package ledger

import (
	"context"
	"errors"
	"fmt"
	"github.com/consentledger/consent/wire"
	"log/slog"
	"sync"
	"time"

	"github.com/consentledger/consent/events"
)

// Retention: a purpose may carry a retention period (events.Purpose
// Retention): how long the records of a consent to it are kept after the
// consent ended. A Retainer erases a person (Erase, with a reason naming
// the retention) once
//
//   - every consent of the person in the tenant has ended: denied,
//     revoked, expired, or requested and never answered (a request grants
//     nothing, so it ends when it is made); erased consents do not count;
//   - for each of them, the retention period of its purpose has passed
//     since it ended (its last event's occurred_at); a purpose without a
//     retention period keeps the person's records, so it blocks;
//   - no consent of the person is live (granted, also a grant past its
//     expires_at the Expirer has not expired yet) or has an integrity
//     violation;
//   - the person is not on legal hold (Options.Holds).
//
// Data keys are per person, so a person is erased whole or not at all.
//
// Where the Retainer learns who is due: a scan of every consent state in
// the index (RetentionSource, ordered by tenant and person), with each
// purpose's retention as the registry holds it now. Nothing is derived
// and stored, so what is due stays exact across crashes, rebuilds and
// changes of a purpose's retention. The scan may lag the stream, so
// before erasing anyone the Retainer folds each of the person's consents
// from the stream and checks that it is the state the scan saw; each
// consent.erased is then appended expecting that state's last sequence.
//
// Exactly once with several instances: every instance sweeps, and
// instances racing on one person each append consent.erased expecting the
// consent's last sequence, so exactly one lands per consent; the loser
// stops (ErrContention) and the next sweep no longer sees the person.
// Destroying the keys is idempotent.
//
// An erasure cut short after its last consent.erased but before the
// person's keys were destroyed leaves a person whose consents are all
// erased, whom no sweep finds due. So a sweep also finishes the erasure
// of every person whose consents are all erased and whose last event
// came after the previous complete scan (all of them, at the first sweep
// of a process): it destroys the keys their events name, which costs a
// read of the key bucket per key when they are gone already.

// ErrRetentionChanged is matched by the error a Retainer gets when a
// consent of a person it was about to erase is not as its scan saw it
// any more (a new consent, a new event, a violation): the person is not
// erased, and the next sweep decides again.
var ErrRetentionChanged = errors.New("the person's consents changed since the retention sweep decided")

// RetentionSource is what a Retainer reads; the projector's index
// implements it.
type RetentionSource interface {
	// ScanConsents calls fn with every stored consent, ordered by
	// tenant, subject key and purpose, with SubjectKey set (see
	// projector.Index.ScanConsents).
	ScanConsents(ctx context.Context, fn func(c *events.Consent) error) (uint64, error)
	// Purpose returns the registry entry of a purpose.
	Purpose(ctx context.Context, k events.PurposeKey, minSeq uint64) (events.Purpose, uint64, error)
	// Wait returns once the index has applied minSeq.
	Wait(ctx context.Context, minSeq uint64) (uint64, error)
}

// Defaults of RetainerOptions.
const (
	DefaultRetentionInterval = 5 * time.Minute
	DefaultRetentionBatch    = 100
)

// RetainerOptions configures a Retainer. The zero value is ready to use.
type RetainerOptions struct {
	// Interval is how often the index is scanned (and also at the next
	// time a person becomes due that the last scan saw). Default
	// DefaultRetentionInterval.
	Interval time.Duration
	// Batch caps the persons erased per sweep; default
	// DefaultRetentionBatch. A sweep that found more resumes, at the next,
	// after the last person it took, so persons it could not erase (on
	// hold, changed) do not hold back the others.
	Batch int
	// Now is the clock deciding what is due; default time.Now. The
	// ledger's own clock stamps the events.
	Now func() time.Time
	// Logger gets failures; default slog.Default().
	Logger *slog.Logger
}

// RetentionStats counts what a Retainer did since it was made.
type RetentionStats struct {
	Sweeps  uint64 // scans of the index
	Erased  uint64 // persons whose erasure this instance ran to its end (another may have run parts of it)
	Held    uint64 // due persons skipped for a legal hold (again at each sweep that finds them)
	Lost    uint64 // due persons another instance (or a new event) got to first
	Failed  uint64 // erasures that failed otherwise; retried at the next sweep
	Appends uint64 // consent.erased events this instance appended
	// Finished counts persons whose consents were all erased already and
	// whose keys a sweep destroyed: an erasure cut short, finished.
	Finished uint64
}

// Retainer erases the persons whose consents all ended longer ago than
// their purposes' retention periods. Run it in every consentd instance.
type Retainer struct {
	ledger *Ledger
	source RetentionSource
	opts   RetainerOptions

	sweeping sync.Mutex // one sweep at a time
	after    personRef  // a sweep that filled its batch stopped here; zero: from the start
	// finishedTo is the index's sequence at the last complete scan after
	// which no erasure was left to finish: the persons whose consents are
	// all erased with a later last event are checked (zero: all of them).
	finishedTo uint64

	mu    sync.Mutex
	stats RetentionStats
}

// personRef names a person in the index's order: tenant, then subject key.
type personRef struct{ tenant, token string }

func (p personRef) after(q personRef) bool {
	return p.tenant > q.tenant || (p.tenant == q.tenant && p.token > q.token)
}

// NewRetainer returns a Retainer erasing through l whom src shows due. It
// does nothing until Run or Sweep.
func NewRetainer(l *Ledger, src RetentionSource, opts RetainerOptions) *Retainer {
	if opts.Interval <= 0 {
		opts.Interval = DefaultRetentionInterval
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultRetentionBatch
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Retainer{ledger: l, source: src, opts: opts}
}

// Stats returns the counters so far.
func (r *Retainer) Stats() RetentionStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// duePerson is a person the scan found due: their consents as the index
// holds them, and the reason of the erasure.
type duePerson struct {
	tenant, token string
	consents      []events.Consent
	reason        string
}

// retentionVerdict decides for one person's consents (all of one tenant
// and subject key) whether they are due at now. It returns the reason to
// record when they are, else the time they become due (zero when the
// passing of time alone will not make them due: a live grant, a purpose
// without retention, nothing left to erase).
func retentionVerdict(ctx context.Context, src RetentionSource, consents []events.Consent, now time.Time) (reason string, dueAt time.Time, err error) {
	var last events.Consent
	var lastRetention string
	for _, c := range consents {
		switch c.State {
		case events.StateErased, events.StateNone, "":
			continue
		case events.StateRequested, events.StateDenied, events.StateRevoked, events.StateExpired:
		default: // granted: live; or a state this sweeper does not know
			return "", time.Time{}, nil
		}
		p, _, err := src.Purpose(ctx, events.PurposeKey{Tenant: c.Tenant, Purpose: c.Purpose}, 0)
		if err != nil {
			return "", time.Time{}, err
		}
		retention, ok := p.RetentionPeriod()
		if !ok {
			return "", time.Time{}, nil // kept until an operator erases the person
		}
		if at := c.UpdatedAt.Add(retention); at.After(dueAt) {
			dueAt, last, lastRetention = at, c, p.Retention
		}
	}
	if dueAt.IsZero() || dueAt.After(now) {
		return "", dueAt, nil
	}
	return fmt.Sprintf("retention: every consent of the person ended; the last to pass its retention: %s %s %s, retention %s, due %s",
		last.Purpose, last.State, last.UpdatedAt.UTC().Format(time.RFC3339), lastRetention, dueAt.UTC().Format(time.RFC3339)), dueAt, nil
}

// errBatchFull stops the scan once a sweep has its batch.
var errBatchFull = errors.New("batch full")

// allErasedSince reports whether every one of consents is erased and the
// last event of one of them is after seq.
func allErasedSince(consents []events.Consent, seq uint64) bool {
	after := false
	for _, c := range consents {
		if c.State != events.StateErased {
			return false
		}
		after = after || c.Seq > seq
	}
	return after
}

// scan is what one scan of the index found.
type scan struct {
	due      []duePerson // due at now, up to Batch
	next     time.Time   // when a person the scan saw becomes due (zero: none; now: batch full)
	erased   []personRef // persons whose consents are all erased, the last after r.finishedTo
	complete bool        // the scan read every person
	seq      uint64      // the index's sequence it read at
}

// due scans the index for the persons due at now, up to Batch of them,
// starting after r.after.
func (r *Retainer) due(ctx context.Context, now time.Time) (scan, error) {
	var out []duePerson
	var next time.Time
	var cur duePerson
	var erased []personRef
	flush := func() error {
		if len(cur.consents) == 0 {
			return nil
		}
		if allErasedSince(cur.consents, r.finishedTo) {
			erased = append(erased, personRef{cur.tenant, cur.token})
			return nil
		}
		reason, at, err := retentionVerdict(ctx, r.source, cur.consents, now)
		switch {
		case err != nil:
			return err
		case reason != "":
			cur.reason = reason
			out = append(out, cur)
			if len(out) == r.opts.Batch {
				next, r.after = now, personRef{cur.tenant, cur.token}
				return errBatchFull
			}
		case !at.IsZero() && (next.IsZero() || at.Before(next)):
			next = at
		}
		return nil
	}
	start := r.after
	r.after = personRef{}
	seq, err := r.source.ScanConsents(ctx, func(c *events.Consent) error {
		if !(personRef{c.Tenant, c.SubjectKey}).after(start) {
			return nil
		}
		if c.Tenant != cur.tenant || c.SubjectKey != cur.token {
			if err := flush(); err != nil {
				return err
			}
			cur = duePerson{tenant: c.Tenant, token: c.SubjectKey}
		}
		cur.consents = append(cur.consents, *c)
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil && !errors.Is(err, errBatchFull) {
		return scan{}, err
	}
	return scan{due: out, next: next, erased: erased, complete: err == nil && start == personRef{}, seq: seq}, nil
}

// countFailure counts err, the failure to erase or finish erasing the
// person token of tenant (what), in s: held, lost to a change or another
// writer, or failed (logged; retried at the next sweep). It reports true,
// counting nothing, when ctx ended: the sweep stops.
func (r *Retainer) countFailure(ctx context.Context, s *RetentionStats, err error, what, tenant, token string) (stop bool) {
	switch {
	case errors.Is(err, ErrHeld):
		s.Held++
	case errors.Is(err, ErrRetentionChanged), errors.Is(err, ErrContention):
		s.Lost++
	case ctx.Err() != nil:
		return true
	default:
		s.Failed++
		r.opts.Logger.Warn("retainer: could not "+what+"; retrying at the next sweep",
			"tenant", tenant, "subject_key", token, "error", err)
	}
	return false
}

// Sweep erases every person due now (up to Batch of them) and returns
// when the next person the index shows becomes due (zero when none is
// known, now when more were due than one sweep takes), having waited
// until the index applied the events it appended. It returns an error
// matching events.ErrNotReady while the index cannot answer, the ledger's
// *WritesRefusedError while its guard refuses writes, and ctx's error
// when it ends. Failures to erase one person are logged, counted and
// retried at the next sweep.
func (r *Retainer) Sweep(ctx context.Context) (time.Time, error) {
	r.sweeping.Lock()
	defer r.sweeping.Unlock()
	if err := r.ledger.guard.Err(); err != nil {
		return time.Time{}, err
	}
	now := r.opts.Now()
	sc, err := r.due(ctx, now)
	if err != nil {
		return time.Time{}, err
	}
	s := RetentionStats{Sweeps: 1}
	finished := true
	for _, p := range sc.erased {
		reply, err := r.ledger.finishErasure(ctx, p.tenant, p.token)
		if err == nil {
			if reply.KeyDestroyed {
				s.Finished++
			}
			continue
		}
		if r.countFailure(ctx, &s, err, "finish the erasure of a person (destroy their keys)", p.tenant, p.token) {
			r.add(s)
			return time.Time{}, ctx.Err()
		}
		finished = false
	}
	if finished && sc.complete {
		r.finishedTo = sc.seq
	}
	next := sc.next
	var lastSeq uint64
	for _, p := range sc.due {
		reply, err := r.ledger.eraseRetained(ctx, p)
		s.Appends += uint64(len(reply.Erased)) // also those before an error
		for _, e := range reply.Erased {
			lastSeq = max(lastSeq, e.Seq)
		}
		if err == nil {
			s.Erased++
		} else if r.countFailure(ctx, &s, err, "erase a person whose retention passed", p.tenant, p.token) {
			r.add(s)
			return time.Time{}, ctx.Err()
		}
	}
	r.add(s)
	if err := awaitOwnAppends(ctx, "retainer", r.source, lastSeq, r.opts.Interval, r.opts.Logger); err != nil {
		return time.Time{}, err
	}
	return next, nil
}

func (r *Retainer) add(s RetentionStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Sweeps += s.Sweeps
	r.stats.Erased += s.Erased
	r.stats.Held += s.Held
	r.stats.Lost += s.Lost
	r.stats.Failed += s.Failed
	r.stats.Appends += s.Appends
	r.stats.Finished += s.Finished
}

// Run sweeps until ctx ends, then returns nil: once per Interval, sooner
// when the last sweep knows a person becomes due earlier.
func (r *Retainer) Run(ctx context.Context) error {
	return runSweeps(ctx, "retainer", r.opts.Interval, r.opts.Now, r.opts.Logger, r.Sweep)
}

// eraseRetained erases p, a person the scan found due, once the stream
// confirms the scan: the person's consents in the stream are exactly
// those scanned, each at the scanned last sequence and with no integrity
// violation, checked for all of them before the first is erased and
// again for each under its lock right before its consent.erased.
// Otherwise it returns an error matching ErrRetentionChanged, and a
// *HeldError for a person on legal hold.
func (l *Ledger) eraseRetained(ctx context.Context, p duePerson) (wire.EraseReply, error) {
	seen := make(map[string]uint64, len(p.consents))
	for _, c := range p.consents {
		seen[events.Key{Tenant: c.Tenant, SubjectKey: c.SubjectKey, Purpose: c.Purpose}.NATSSubject()] = c.Seq
	}
	subjects, err := l.personSubjects(ctx, p.tenant, p.token)
	if err != nil {
		return wire.EraseReply{}, err
	}
	same := func(subject string, f storedFold) error {
		seq, ok := seen[subject]
		switch {
		case !ok:
			return fmt.Errorf("%w: %s is not in the scan", ErrRetentionChanged, subject)
		case len(f.taints) > 0:
			return fmt.Errorf("%w: %s has an integrity violation", ErrRetentionChanged, subject)
		case f.last != seq:
			return fmt.Errorf("%w: %s is at seq %d, the scan saw %d", ErrRetentionChanged, subject, f.last, seq)
		}
		return nil
	}
	for _, subject := range subjects {
		f, unlock, err := l.lockAndFold(ctx, subject)
		if err != nil {
			return wire.EraseReply{}, err
		}
		unlock()
		if err := same(subject, f); err != nil {
			return wire.EraseReply{}, err
		}
	}
	return l.eraseSubjects(ctx, p.tenant, p.token, subjects, events.Erase{Reason: p.reason}, same)
}

// finishErasure finishes the erasure of a person whose consents are all
// erased: it destroys the keys their events name (eraseSubjects, which
// appends nothing here). It returns an error matching ErrRetentionChanged
// if a consent of the person is not erased any more, a *HeldError for a
// person on legal hold.
func (l *Ledger) finishErasure(ctx context.Context, tenant, token string) (wire.EraseReply, error) {
	if l.keys == nil {
		return wire.EraseReply{}, nil // nothing to destroy
	}
	subjects, err := l.personSubjects(ctx, tenant, token)
	if err != nil {
		return wire.EraseReply{}, err
	}
	return l.eraseSubjects(ctx, tenant, token, subjects, events.Erase{Reason: "retention: finish an erasure"}, func(subject string, _ storedFold) error {
		return fmt.Errorf("%w: %s is not erased", ErrRetentionChanged, subject)
	})
}
