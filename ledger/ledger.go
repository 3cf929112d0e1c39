package ledger

import (
	"cmp"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultMaxRetries is how many times Append re-reads and re-decides after
// a concurrent writer got in first, when the command has no expected_seq.
const DefaultMaxRetries = 5

// Options configures a Ledger.
type Options struct {
	// MaxRetries bounds the re-reads after a conflict with a writer in
	// another process; default DefaultMaxRetries. An append can lose only
	// to an append that landed, so when at most N processes append to one
	// consent at once, each once, MaxRetries >= N-1 lets every one land.
	MaxRetries int
	// Now is the clock for recorded_at, the default occurred_at and expiry;
	// default time.Now.
	Now func() time.Time
	// GroupCommit, when set, gathers concurrent appends into atomic batch
	// publishes (see GroupCommit). It is ignored for a stream that does
	// not allow atomic publish. Nil publishes each event alone.
	GroupCommit *GroupCommit
	// PublishAttemptTimeout bounds one attempt to publish an event; default
	// DefaultPublishAttemptTimeout. A publish sent to a stream leader that
	// dies is never answered: after this long the same message (same
	// Nats-Msg-Id, same expected sequence) is sent again, to whichever
	// leader there is, until the append's context ends. It is sent again
	// only on a stream whose duplicate window is more than twice as long,
	// so that a first attempt that was stored comes back as a duplicate.
	PublishAttemptTimeout time.Duration
	// ReadAttemptTimeout bounds one attempt of each read an append makes
	// (the consent's tip, its history, the stream leader's last
	// sequence); default DefaultReadAttemptTimeout. A read that goes
	// unanswered (sent to a replica or a stream leader that died, or while
	// the stream has no leader) is sent again after this long, until the
	// append's context ends, so that it holds the consent's lock for one
	// attempt and not for the whole command.
	ReadAttemptTimeout time.Duration
	// Tips, when set, gives an append the consent's last state without a
	// read of the stream (consentd passes its projector index); the
	// stream's sequence check catches a stale answer, after which the
	// append reads the stream as without Tips. Appends with an idempotency
	// key always read the stream (they look for the key in the history).
	Tips Tips
	// Guard, when set, refuses every write while it finds the stream
	// unsafe (see StreamGuard): Append, SetPurpose and Expire then fail at
	// once with its *WritesRefusedError. Nil checks the stream at start
	// only (EnsureStream).
	Guard *StreamGuard
	// Keys, when set, seals the personal fields of every consent event
	// appended (schema version 2) under the person's data key, opens them
	// in History, and destroys the key when Erase erases the person. Nil:
	// events of schema version 1, personal fields in the clear. On a
	// stream of keyed subject keys (events.SubjectKeyHMAC) it is required
	// and must give the tenants' secrets too (TenantSecrets, as
	// internal/keystore's Store does).
	Keys Keys
	// Holds, when set, keeps the legal holds (OpenHolds): Erase refuses a
	// person on hold, the Retainer skips them, and SetHold, ReleaseHold
	// and ListHolds work. Nil: no holds (those three answer 503).
	Holds *Holds
	// Observer, when set, is told of every consent.expired and
	// consent.erased append and of every group commit (consentd's
	// metrics; the commands are observed by the Service).
	Observer Observer
}

// DefaultPublishAttemptTimeout is the default Options.PublishAttemptTimeout:
// a healthy cluster stores an event in milliseconds (tens under load with
// an fsync per write), so an attempt unanswered for a second was lost.
const DefaultPublishAttemptTimeout = time.Second

// Ledger appends events to the CONSENT stream and reads histories back.
// It is safe for concurrent use; concurrent appends to one consent are
// ordered by the stream (optimistic concurrency on the consent's subject).
type Ledger struct {
	js         jetstream.JetStream
	stream     jetstream.Stream
	streamName string
	// replicated: direct gets may be answered by a follower that is a few
	// milliseconds behind the leader, so a read can be stale.
	replicated bool
	maxRetries int
	now        func() time.Time
	locks      keyLocks   // one append at a time per consent in this process
	batchBytes int        // byte cap of one batched read; batchBytes, lowered by tests
	group      *committer // nil without group commit
	// attemptTimeout bounds one publish attempt when a timed-out publish
	// may be sent again (retryPublish); see Options.PublishAttemptTimeout.
	attemptTimeout time.Duration
	retryPublish   bool
	readTimeout    time.Duration // bounds one attempt of a read; see attempt
	tips           Tips          // nil: every append reads the stream first
	own            *ownTips      // the states this Ledger's appends left, with tips
	guard          *StreamGuard
	keys           Keys   // nil: events of schema version 1
	holds          *Holds // nil: no legal holds
	observer       Observer
	// subjectKeys compute subject keys by the stream's scheme; nil, with
	// subjectKeysErr, when this ledger cannot (see SubjectKeys).
	subjectKeys    *SubjectKeys
	subjectKeysErr error
}

// New returns a Ledger over an existing stream (see EnsureStream). The
// stream's cached info must be current (as EnsureStream returns it): it
// tells whether reads go through direct get, whether it is replicated and
// how it keys its subjects (StreamSubjectKeyScheme). A ledger that cannot
// compute the stream's subject keys (keyed subject keys without
// Options.Keys) fails every method that takes a person's id with the
// error SubjectKeys returns: check it after New.
func New(js jetstream.JetStream, stream jetstream.Stream, opts Options) *Ledger {
	l := &Ledger{
		js:          js,
		stream:      stream,
		maxRetries:  opts.MaxRetries,
		now:         opts.Now,
		batchBytes:  batchBytes,
		tips:        opts.Tips,
		readTimeout: cmp.Or(opts.ReadAttemptTimeout, DefaultReadAttemptTimeout),
		guard:       opts.Guard,
		keys:        opts.Keys,
		holds:       opts.Holds,
		observer:    opts.Observer,
	}
	if l.tips != nil {
		l.own = new(ownTips)
	}
	l.subjectKeys, l.subjectKeysErr = subjectKeysOf(stream, opts.Keys)
	if info := stream.CachedInfo(); info != nil {
		l.streamName = info.Config.Name
		l.replicated = info.Config.Replicas > 1
		l.attemptTimeout = cmp.Or(opts.PublishAttemptTimeout, DefaultPublishAttemptTimeout)
		l.retryPublish = info.Config.Duplicates > 2*l.attemptTimeout
		if opts.GroupCommit != nil && info.Config.AllowAtomicPublish {
			l.group = newCommitter(js, l.streamName, *opts.GroupCommit, l.attemptTimeout)
			l.group.observer = opts.Observer
		}
	}
	if l.maxRetries <= 0 {
		l.maxRetries = DefaultMaxRetries
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// StreamName returns the name of the stream the ledger appends to.
func (l *Ledger) StreamName() string { return l.streamName }

// GroupCommitStats returns what group commit has done so far, and false
// when the ledger publishes each event alone.
func (l *Ledger) GroupCommitStats() (GroupCommitStats, bool) {
	if l.group == nil {
		return GroupCommitStats{}, false
	}
	return l.group.Stats(), true
}
