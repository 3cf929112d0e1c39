package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultStreamCheckInterval is the default StreamGuardOptions.Interval.
const DefaultStreamCheckInterval = 10 * time.Second

// Subjects of the JetStream advisories a StreamGuard listens to, followed
// by the stream's name. The server publishes them in the account of the
// stream when its configuration is updated, it is deleted, or it is
// created (or restored) again (nats-server's JSAdvisoryStreamUpdatedPre,
// JSAdvisoryStreamDeletedPre and JSAdvisoryStreamCreatedPre).
const (
	AdvisoryStreamUpdated = "$JS.EVENT.ADVISORY.STREAM.UPDATED."
	AdvisoryStreamDeleted = "$JS.EVENT.ADVISORY.STREAM.DELETED."
	AdvisoryStreamCreated = "$JS.EVENT.ADVISORY.STREAM.CREATED."
)

// StreamGuardOptions configures a StreamGuard. The zero value is ready to
// use.
type StreamGuardOptions struct {
	Stream string // default DefaultStream
	// Interval is how often Run reads the stream's configuration, whatever
	// the advisories say (an advisory can be missed: a reconnect, an
	// account that does not see them); default (0 or less)
	// DefaultStreamCheckInterval.
	Interval time.Duration
	// Logger gets one line per change of verdict (error level when the
	// stream becomes unsafe) and the failures to check; default
	// slog.Default().
	Logger *slog.Logger
}

// StreamGuard watches the stream while the ledger runs: the configuration
// EnsureStream accepted at start can be changed, the stream sealed or
// deleted, through the JetStream API. Run reads the stream's configuration
// every Interval and whenever JetStream advises that the stream was
// updated, deleted or created, and judges it with CheckStreamConfig, the
// check EnsureStream makes at start. It also refuses a stream that was
// replaced (created again under its name: another creation time) or whose
// last sequence went back (restored from an older backup).
//
// While the stream is unsafe (an unsafe setting, sealed, deleted,
// replaced), Err
// returns a *WritesRefusedError, and every write of a Ledger given the
// guard (Options.Guard) fails with it at once: commands, purpose changes,
// expiries. Once the configuration is safe again, writes resume. Reads go
// on either way.
//
// The guard refuses writes only on a definite answer: a stream whose
// configuration it read and found unsafe, or a stream JetStream says does
// not exist. When it cannot read the stream (a timeout, no responders, a
// lost connection) it keeps its last verdict: JetStream itself refuses to
// store what it cannot store, and refusing writes on every network blip
// would make the ledger fail on what JetStream survives.
//
// A StreamGuard is safe for concurrent use. Before its first check it
// allows writes (EnsureStream has just checked the stream).
type StreamGuard struct {
	js       jetstream.JetStream
	name     string
	interval time.Duration
	log      *slog.Logger
	// advisories: Run listens to the stream's advisories; tests turn it
	// off to show that the periodic check alone catches a change.
	advisories bool

	refused atomic.Pointer[WritesRefusedError] // nil while writes are allowed

	checking sync.Mutex // one check at a time

	mu        sync.Mutex // guards the fields below
	problems  []string   // the last verdict: nil when safe
	checkedAt time.Time  // of the last check that read the stream
	checkErr  string     // the last check's failure, "" when it read the stream
	created   time.Time  // creation time of the stream first read: its identity
	lastSeq   uint64     // the highest last sequence read from it
}

// NewStreamGuard returns a guard of the stream opts.Stream, read through js.
// It checks nothing until Check or Run.
func NewStreamGuard(js jetstream.JetStream, opts StreamGuardOptions) *StreamGuard {
	if opts.Interval <= 0 {
		opts.Interval = DefaultStreamCheckInterval
	}
	return &StreamGuard{
		js:         js,
		name:       cmp.Or(opts.Stream, wire.DefaultStream),
		interval:   opts.Interval,
		log:        cmp.Or(opts.Logger, slog.Default()),
		advisories: true,
	}
}

// WritesRefusedError is the error writes get while a StreamGuard finds the
// stream unsafe. It matches ErrUnsafeStream and is a 503 on the wire, with
// Error() as the description.
type WritesRefusedError struct {
	Stream string
	// Problems are CheckStreamConfig's lines for the stream's current
	// configuration, or one line saying that the stream does not exist.
	Problems []string
}

func (e *WritesRefusedError) Error() string {
	return fmt.Sprintf("stream %s is unsafe for the audit trail: %s; writes are refused until an operator restores it",
		e.Stream, strings.Join(e.Problems, "; "))
}

// Is makes errors.Is(err, ErrUnsafeStream) true.
func (e *WritesRefusedError) Is(target error) bool { return target == ErrUnsafeStream }

// streamMissing is the problem of a stream that does not exist.
const streamMissing = "does not exist (it was deleted): events cannot be appended, and the index no longer has the stream behind it"

// Err returns nil while writes may go on, and a *WritesRefusedError naming
// the stream and its problems while the last check found it unsafe. A nil
// guard allows every write.
func (g *StreamGuard) Err() error {
	if g == nil {
		return nil
	}
	if e := g.refused.Load(); e != nil {
		return e
	}
	return nil
}

// StreamHealth is what a StreamGuard knows of the stream, as the consent
// service shows it in the data of every endpoint ("stream").
type StreamHealth struct {
	Stream string `json:"name"`
	// Safe is false while writes are refused.
	Safe bool `json:"safe"`
	// Problems name the unsafe settings and their values (or that the
	// stream does not exist); WritesRefused is the description writes get.
	Problems      []string `json:"problems,omitempty"`
	WritesRefused string   `json:"writes_refused,omitempty"`
	// CheckedAt is when the stream was last read; CheckError why the last
	// check could not read it (the verdict before it holds).
	CheckedAt  time.Time `json:"checked_at,omitzero"`
	CheckError string    `json:"check_error,omitempty"`
}

// Health returns the guard's current verdict.
func (g *StreamGuard) Health() StreamHealth {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := StreamHealth{
		Stream:     g.name,
		Safe:       g.problems == nil,
		Problems:   slices.Clone(g.problems),
		CheckedAt:  g.checkedAt,
		CheckError: g.checkErr,
	}
	if e := g.refused.Load(); e != nil {
		h.WritesRefused = e.Error()
	}
	return h
}

// Check reads the stream's configuration once and settles the verdict:
// writes are refused when the stream is unsafe, does not exist or was
// replaced (see StreamGuard), allowed when it is safe. It returns the error of a read that gave no answer,
// after which the verdict is unchanged.
func (g *StreamGuard) Check(ctx context.Context) error {
	g.checking.Lock()
	defer g.checking.Unlock()
	stream, err := g.js.Stream(ctx, g.name)
	var problems []string
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		problems = []string{streamMissing}
	case err != nil && ctx.Err() != nil:
		return err // stopping: nothing to tell
	case err != nil:
		g.failed(err)
		return fmt.Errorf("check stream %s: %w", g.name, err)
	default:
		info := stream.CachedInfo()
		problems = append(CheckStreamConfig(info.Config), g.continuity(info)...)
	}
	g.settle(problems)
	return nil
}

// continuity returns a problem when the stream is not the one the guard
// first read (deleted and created again: another creation time) or holds
// fewer messages at its end than it did (restored from an older backup),
// and otherwise remembers its last sequence. With deletes and purges
// denied, neither happens to a stream left alone; a restore from a backup
// keeps the creation time.
func (g *StreamGuard) continuity(info *jetstream.StreamInfo) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.created.IsZero() {
		g.created = info.Created
	}
	switch {
	case !info.Created.Equal(g.created):
		return []string{fmt.Sprintf("was replaced (created at %s; the stream the ledger started on was created at %s): its history is not the one the ledger and its index hold",
			info.Created.UTC().Format(time.RFC3339Nano), g.created.UTC().Format(time.RFC3339Nano))}
	case info.State.LastSeq < g.lastSeq:
		return []string{fmt.Sprintf("lost its last messages (last sequence is %d, was %d): acknowledged events are gone", info.State.LastSeq, g.lastSeq)}
	}
	g.lastSeq = info.State.LastSeq
	return nil
}

// failed records a check that could not read the stream, logging the
// first of a run of failures.
func (g *StreamGuard) failed(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.checkErr == "" {
		verdict := "writes go on (JetStream refuses what it cannot store)"
		if g.problems != nil {
			verdict = "writes stay refused"
		}
		g.log.Warn("cannot check the stream; "+verdict, "stream", g.name, "error", err)
	}
	g.checkErr = err.Error()
}

// settle records the verdict of a check that read the stream: problems
// (none: safe). A verdict that differs from the last one is logged, once.
func (g *StreamGuard) settle(problems []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.checkErr != "" {
		g.log.Info("the stream answers checks again", "stream", g.name)
		g.checkErr = ""
	}
	g.checkedAt = time.Now()
	if len(problems) == 0 {
		problems = nil
	}
	if slices.Equal(problems, g.problems) {
		return
	}
	g.problems = problems
	if problems == nil {
		g.refused.Store(nil)
		g.log.Warn("stream is safe for the audit trail again; writes resume", "stream", g.name)
		return
	}
	e := &WritesRefusedError{Stream: g.name, Problems: problems}
	g.refused.Store(e)
	g.log.Error(e.Error(), "stream", g.name)
}

// Run checks the stream at once, then every Interval and soon after each
// advisory that it was updated, deleted or created, until ctx ends; then it returns
// nil. When it cannot subscribe to the advisories (no permission, a closed
// connection) it says so in the log and checks every Interval only.
// Failed checks are logged once per run of failures, shown in Health, and
// made again after a second; so is a check an advisory asked for.
func (g *StreamGuard) Run(ctx context.Context) error {
	kick := make(chan struct{}, 1)
	if g.advisories {
		unsubscribe := g.subscribe(kick)
		defer unsubscribe()
	}
	ticker := time.NewTicker(g.interval)
	defer ticker.Stop()
	advised := false
	for {
		// A check that got no answer (logged and shown in Health), or that
		// an advisory asked for, is made again soon: the advisory will not
		// come again, and on a cluster the server that answers may not
		// have applied the change yet (a stream being deleted).
		var again <-chan time.Time
		if err := g.Check(ctx); err != nil || advised {
			again = time.After(min(g.interval, streamCheckAgain))
		}
		advised = false
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-kick:
			advised = true
		case <-again:
		}
	}
}

// streamCheckAgain is how soon Run checks again after a check that got no
// answer or that an advisory asked for, unless Interval is shorter.
const streamCheckAgain = time.Second

// subscribe makes every advisory that the stream was updated, deleted or
// created put a token in kick, and returns what undoes it. The subscriptions are
// in place on the server when it returns, so that no change after the
// first check goes unnoticed.
func (g *StreamGuard) subscribe(kick chan struct{}) (unsubscribe func()) {
	nc := g.js.Conn()
	var subs []*nats.Subscription
	unsubscribe = func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}
	for _, prefix := range []string{AdvisoryStreamUpdated, AdvisoryStreamDeleted, AdvisoryStreamCreated} {
		sub, err := nc.Subscribe(prefix+g.name, func(*nats.Msg) {
			select {
			case kick <- struct{}{}:
			default: // a check is due already
			}
		})
		if err != nil {
			g.log.Warn("stream guard: no advisories; checking the stream every interval only", "stream", g.name, "interval", g.interval, "error", err)
			return unsubscribe
		}
		subs = append(subs, sub)
	}
	if err := nc.Flush(); err != nil {
		g.log.Warn("stream guard: advisories may be missed until the connection recovers", "stream", g.name, "error", err)
	}
	return unsubscribe
}
