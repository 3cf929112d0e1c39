// Command consentd is the Consent Ledger daemon: it keeps the audit trail in
// a NATS JetStream stream, folds it into a Pebble index and answers the
// consent micro service on consent.v1.*.
//
// Without flags it embeds a NATS server (JetStream, fsync on every write)
// on 127.0.0.1:4222 and keeps its data in ./consent-data. With --nats-url it
// joins an existing NATS deployment instead. Run consentd --help for the
// flags; each is also an environment variable CONSENTD_<FLAG>.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "nats-config" {
		os.Exit(runNATSConfig(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		os.Exit(runProbe(os.Args[2:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "consentd:", err)
		os.Exit(2)
	}
	if m.Config.MemoryLimit > 0 {
		// Process-wide, so set here rather than in Run (tests run Main in-process).
		debug.SetMemoryLimit(int64(m.Config.MemoryLimit))
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "consentd:", err)
		_ = m.Close()
		os.Exit(1)
	}
	select {
	case <-ctx.Done():
	case err := <-m.Failed():
		fmt.Fprintln(os.Stderr, "consentd:", err)
		_ = m.Close()
		os.Exit(1)
	}
	stop() // a second signal kills the process at once
	m.log.Info("shutting down")
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "consentd: shutdown:", err)
		os.Exit(1)
	}
}

// Main is the consentd program, separate from main() so that tests can run
// the whole daemon in-process: NewMain, set Config (or ParseFlags), Run,
// then Close.
type Main struct {
	Config Config

	Stdout io.Writer // gets the one line saying where consentd listens, with its pid; default os.Stdout
	Stderr io.Writer // gets the logs; default os.Stderr
	// Environ returns the environment ParseFlags reads; default os.Environ.
	Environ func() []string

	log        *slog.Logger
	lock       *dirLock
	authority  *auth.Authority // nil without authentication
	connOpts   []nats.Option   // of consentd's own connections
	adminCreds string          // the embedded server's admin credentials file
	server     *server.Server
	dataConn   *nats.Conn // ledger and projector
	sysConn    *nats.Conn // pushes account updates to a NATS deployment (--nats-url with --auth-dir)
	svcConn    *nats.Conn // the service's own: Stop drains it
	index      *projector.Index
	projector  *projector.Projector
	service    *ledger.Service
	ledger     *ledger.Ledger // the commands' writer, once the stream is found
	feed       *ledger.Feed   // consent.v1.feed.open and feed.purposes
	expirer    *ledger.Expirer
	retainer   *ledger.Retainer
	guard      *ledger.StreamGuard
	url        string
	replicas   int  // the stream's, once startWrites found it
	ops        *ops // metrics, /healthz and /readyz (http.go)

	// stopStart stops the start-up's goroutines (the look for the stream,
	// the probe of the index), which starting waits for.
	stopStart context.CancelFunc
	starting  sync.WaitGroup
	failed    chan error // see Failed

	stopGuard context.CancelFunc
	guardDone chan struct{}

	stopCheckpointer context.CancelFunc
	checkpointerDone chan struct{}

	stopProjector context.CancelFunc
	projectorDone chan struct{}
	stopExpirer   context.CancelFunc
	expirerDone   chan struct{}
	stopRetainer  context.CancelFunc
	retainerDone  chan struct{}
	closeOnce     sync.Once
	closeErr      error
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{
		Config:  DefaultConfig(),
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Environ: os.Environ,
		log:     slog.New(slog.DiscardHandler),
	}
}

// ParseFlags reads the command line and the CONSENTD_ environment
// variables into m.Config; a flag given on the command line wins over its
// variable. It refuses unknown flags, unknown CONSENTD_ variables,
// positional arguments, flags of the embedded server used with --nats-url,
// and invalid values, naming the flag. --help returns flag.ErrHelp.
func (m *Main) ParseFlags(args []string) error {
	fs := newFlagSet(&m.Config, m.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: consentd takes only flags (see consentd --help)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	env := map[string]string{}
	for _, kv := range m.Environ() {
		if name, value, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(name, envPrefix) {
			env[name] = value
		}
	}
	var errs []error
	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		known[name] = true
		value, ok := env[name]
		if !ok || set[f.Name] {
			return
		}
		if err := fs.Set(f.Name, value); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, value, err))
			return
		}
		set[f.Name] = true
	})
	for name := range env {
		if !known[name] {
			errs = append(errs, fmt.Errorf("unknown environment variable %s (see consentd --help for the CONSENTD_ variables)", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if m.Config.NATSURL != "" {
		for _, name := range embeddedOnly {
			if set[name] {
				hint := ""
				if strings.HasPrefix(name, "tls-") {
					hint = "; consentd connects to it over TLS with --nats-tls-ca (and --nats-tls-cert, --nats-tls-key)"
				}
				return fmt.Errorf("--%s configures the embedded NATS server and cannot be used with --nats-url (set listen, tls and sync_interval in the NATS server's own configuration%s)", name, hint)
			}
		}
	}
	return m.Config.Validate()
}

// Run starts consentd: it locks the data directory, starts the embedded
// NATS server (unless Config.NATSURL is set), opens the index, registers
// the consent service, and looks the stream up (or creates it); once it
// has the stream it starts the projector and takes commands. Lookups are
// served once the index is known to be current: when the projector has
// caught up with what the stream held at start, or, while the stream has
// no leader, when a replica holds nothing after the index's checkpoint
// (see leaderless.go). Run prints one line saying where it listens and
// returns once lookups are served and commands too, or, when the stream
// was not found at the first attempt (no leader), once lookups are served:
// commands follow in the background as soon as the stream has a leader.
// ctx bounds the start-up only (waiting for NATS and for the index); stop
// consentd with Close. On error, call Close to release what was started;
// an error found in the background (an unsafe stream) is sent on Failed.
func (m *Main) Run(ctx context.Context) error {
	cfg := &m.Config
	if err := cfg.Validate(); err != nil {
		return err
	}
	m.log = newLogger(m.Stderr, cfg.LogLevel, cfg.LogFormat)
	dataDir := absDir(cfg.DataDir)

	lock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	m.lock = lock

	if dir := cfg.authDir(dataDir); dir != "" {
		if m.authority, err = openAuthority(dir); err != nil {
			return err
		}
	}
	if cfg.Embedded() {
		if err := m.startServer(dataDir); err != nil {
			return err
		}
		m.url = m.server.ClientURL()
	} else {
		m.url = cfg.NATSURL
	}
	if m.dataConn, err = connect(ctx, cfg, m.server, "consentd", m.log, m.connOpts...); err != nil {
		return err
	}
	if m.svcConn, err = connect(ctx, cfg, m.server, "consentd-service", m.log, m.connOpts...); err != nil {
		return err
	}
	if m.authority != nil && !cfg.Embedded() {
		if err := m.pushAccounts(ctx); err != nil {
			return err
		}
	}
	js, err := jetstream.New(m.dataConn)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	indexDir := filepath.Join(dataDir, "index")
	if m.index, err = projector.Open(indexDir, projector.IndexOptions{Logger: m.log.With("component", "index")}); err != nil {
		return fmt.Errorf("open the index in %s: %w", indexDir, err)
	}
	// The projector runs once the stream is found (it reads the stream's
	// info, which needs its leader); Health reads it from the start.
	m.projector = projector.New(js, m.index, projector.Options{Stream: cfg.Stream, Logger: m.log.With("component", "projector")})
	m.projectorDone = make(chan struct{})
	m.newOps()

	var signer *audit.Signer
	if cfg.SigningKey != "" {
		if signer, err = loadSigningKey(cfg.SigningKey); err != nil {
			return fmt.Errorf("--signing-key: %w", err)
		}
	}
	m.service, err = ledger.NewService(m.svcConn, nil, m.index, ledger.ServiceConfig{
		DeferLookups:  true, // lookups once the index can answer them (ServeLookups below)
		DeferCommands: true, // commands once the stream is found (startWrites)
		MinSeqTimeout: cfg.MinSeqTimeout,
		Health:        m.health,
		Signer:        signer,
		Logger:        m.log.With("component", "service"),
		Authorize:     m.authorize(),
		Users:         m.users(),
		Observer:      m.ops.observer(),
		SubjectKeys:   m.lookupSubjectKeys(),
	})
	if err != nil {
		return err
	}
	m.svcConn = nil // the service owns it now
	// Feeds the service opens for subscribers that may not create
	// consumers (docs/subscribers.md).
	feedCfg := ledger.FeedConfig{Stream: cfg.Stream, Logger: m.log.With("component", "feed")}
	if m.authority != nil {
		feedCfg.Identify, feedCfg.Authorize = m.authorize(), m.authority.GrantFeed
	}
	if m.feed, err = ledger.ServeFeed(js, feedCfg); err != nil {
		return err
	}
	if err := m.serveHTTP(); err != nil {
		return err
	}

	startCtx, stopStart := context.WithCancel(context.Background())
	m.stopStart = stopStart
	late := make(chan struct{}) // closed when the first look for the stream fails
	writing := make(chan error, 1)
	m.failed = make(chan error, 1)
	m.starting.Add(2)
	go func() {
		defer m.starting.Done()
		err := m.startWrites(startCtx, js, signer, late)
		if err != nil && startCtx.Err() == nil {
			m.log.Error("consentd cannot take commands", "error", err)
			m.failed <- err
		}
		writing <- err
	}()
	go func() {
		defer m.starting.Done()
		m.serveIndexIfCurrent(startCtx)
	}()

	// Serve lookups once the index is ready (caught up, or known current);
	// return once commands are served too, or the stream is late.
	lookups, commands, projectorDone := false, false, m.projectorDone
	for !lookups || (!commands && late != nil) {
		changed := m.index.Changed()
		if !lookups && m.index.Ready() {
			if err := m.service.ServeLookups(); err != nil {
				return err
			}
			lookups, projectorDone = true, nil
			continue
		}
		select {
		case <-changed:
		case err := <-writing:
			if err != nil {
				return err
			}
			commands, writing = true, nil
		case <-late:
			late = nil
		case <-projectorDone:
			return fmt.Errorf("projector stopped before catching up: %w", m.projector.Err())
		case <-ctx.Done():
			if !lookups {
				return fmt.Errorf("waiting for the index to catch up (at seq %d): %w", m.index.Checkpoint(), ctx.Err())
			}
			return fmt.Errorf("waiting for stream %s: %w", cfg.Stream, ctx.Err())
		}
	}

	replicas := "no leader yet: commands once it has one"
	if commands {
		replicas = fmt.Sprintf("%d replicas", m.replicas)
	}
	if cfg.Embedded() {
		creds := "no authentication (--insecure-no-auth)"
		if m.adminCreds != "" {
			creds = "admin credentials in " + m.adminCreds
		}
		fmt.Fprintf(m.Stdout, "consentd: listening on %s (pid %d, embedded NATS with JetStream, sync %s), data in %s, %s\n", m.url, os.Getpid(), cfg.Sync, dataDir, creds)
	} else {
		fmt.Fprintf(m.Stdout, "consentd: serving through NATS at %s (pid %d, stream %s, %s), index in %s\n",
			redactURL(cfg.NATSURL), os.Getpid(), cfg.Stream, replicas, indexDir)
	}
	return nil
}

// Failed returns a channel that gets the error that keeps consentd from
// taking commands when it meets one after Run returned (an unsafe stream);
// main exits on it. Nil before Run.
func (m *Main) Failed() <-chan error { return m.failed }

// commitsInGroups reports whether appends to the stream go out in groups
// (Config.CommitsInGroups). Under GroupCommitAuto against a replicated
// stream, a consentd with the deployment's system account (--auth-dir)
// asks the stream's servers whether they fsync every write: group commit
// only wins when they do (docs/performance.md); without an answer it
// assumes the deployment this project ships, which does.
func (m *Main) commitsInGroups(ctx context.Context, info *jetstream.StreamInfo) bool {
	if !m.Config.CommitsInGroups(m.replicas) {
		return false
	}
	if m.Config.GroupCommit != GroupCommitAuto || m.Config.Embedded() || m.sysConn == nil {
		return true
	}
	always, known := streamServersSyncEveryWrite(ctx, m.sysConn, info)
	switch {
	case !known:
		m.log.Info("group commit assumes the stream's servers fsync every write: they did not all say", "stream", m.Config.Stream)
	case !always:
		m.log.Info("group commit off: the stream's servers do not fsync every write (sync_interval); --group-commit on overrides", "stream", m.Config.Stream)
	}
	return always || !known
}

// startWrites waits for the stream (ensureStream, closing late when the
// first attempt fails), then starts what needs it: the stream guard, the
// Ledger, the projector, the commands, the expirer and the checkpointer.
func (m *Main) startWrites(ctx context.Context, js jetstream.JetStream, signer *audit.Signer, late chan struct{}) error {
	stream, err := m.ensureStream(ctx, js, late)
	if err != nil {
		return err
	}
	m.replicas = stream.CachedInfo().Config.Replicas
	// The index tells appends a consent's last state without a read of the
	// stream; the stream's sequence check catches a stale answer.
	// The guard refuses every write while the stream is unsafe.
	m.startGuard(js)
	m.ops.guard.Store(m.guard)
	ledgerOpts := ledger.Options{Tips: m.index, Guard: m.guard, Observer: m.ops.observer()}
	if m.commitsInGroups(ctx, stream.CachedInfo()) {
		ledgerOpts.GroupCommit = &ledger.GroupCommit{}
	}
	keys, err := m.openKeys(ctx, js)
	if err != nil {
		return err
	}
	if keys != nil {
		ledgerOpts.Keys = keys
		m.feed.UseKeys(keys)
	}
	ledgerOpts.Holds = m.openHolds(ctx, js)
	l := ledger.New(js, stream, ledgerOpts)
	subjectKeys, err := l.SubjectKeys()
	if err != nil {
		return fmt.Errorf("stream %s: %w", m.Config.Stream, err)
	}
	m.log.Info("subject keys", "stream", m.Config.Stream, "subject_key_scheme", subjectKeys.Scheme())
	m.ledger = l
	_, grouped := l.GroupCommitStats()
	m.log.Info("appends", "stream", m.Config.Stream, "replicas", m.replicas, "group_commit", grouped)
	projectorCtx, stopProjector := context.WithCancel(context.Background())
	m.stopProjector = stopProjector
	go m.superviseProjector(projectorCtx)

	if err := m.service.ServeCommands(l); err != nil {
		return err
	}
	// Every instance runs an expirer: each consent.expired lands once
	// whichever instances race for it (see ledger.Expire).
	m.expirer = ledger.NewExpirer(l, m.index, ledger.ExpirerOptions{Interval: m.Config.ExpiryInterval, Logger: m.log.With("component", "expirer")})
	m.ops.expirer.Store(m.expirer)
	expirerCtx, stopExpirer := context.WithCancel(context.Background())
	m.stopExpirer, m.expirerDone = stopExpirer, make(chan struct{})
	go func() {
		defer close(m.expirerDone)
		_ = m.expirer.Run(expirerCtx)
	}()
	m.startRetainer(l)

	if signer != nil {
		if err := m.startCheckpointer(js, signer); err != nil {
			return err
		}
	}
	select {
	case <-late:
		m.log.Info("the stream has a leader: taking commands", "stream", m.Config.Stream)
	default:
	}
	return nil
}

// ensureStreamAttempt bounds one attempt to look the stream up (or create
// it). While the stream or the cluster has no leader a request goes
// unanswered; short attempts, made again at once after one timed out,
// find the new leader within about this long of its election (a healthy
// cluster answers in milliseconds).
const ensureStreamAttempt = 500 * time.Millisecond

// ensureStream creates or checks the stream, waiting while a NATS cluster
// is still electing its JetStream leader or the stream's; it closes late
// when the first attempt has failed. An unsafe stream is refused at once.
func (m *Main) ensureStream(ctx context.Context, js jetstream.JetStream, late chan struct{}) (jetstream.Stream, error) {
	opts := ledger.StreamOptions{Name: m.Config.Stream, Replicas: m.Config.Replicas, SubjectKeys: m.subjectKeyScheme()}
	for attempt := 0; ; attempt++ {
		if attempt == 1 {
			close(late)
		}
		attemptCtx, cancel := context.WithTimeout(ctx, ensureStreamAttempt)
		stream, err := ledger.EnsureStream(attemptCtx, js, opts)
		cancel()
		if err == nil {
			return stream, nil
		}
		if errors.Is(err, ledger.ErrUnsafeStream) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) || ctx.Err() != nil {
			return nil, err
		}
		if attempt%20 == 0 { // about every 10s while there is no leader
			m.log.Warn("stream not ready yet; retrying", "stream", opts.Name, "error", err, "attempts", attempt+1)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			continue // unanswered: the attempt itself was the pause
		}
		if err := pause(ctx, min(attempt, 1)); err != nil { // 250ms, then 500ms
			return nil, fmt.Errorf("stream %s: %w", opts.Name, ctx.Err())
		}
	}
}

// startGuard watches the stream's configuration until Close: writes are
// refused while it is unsafe (see ledger.StreamGuard).
func (m *Main) startGuard(js jetstream.JetStream) {
	m.guard = ledger.NewStreamGuard(js, ledger.StreamGuardOptions{
		Stream:   m.Config.Stream,
		Interval: m.Config.StreamCheckInterval,
		Logger:   m.log.With("component", "stream-guard"),
	})
	ctx, stop := context.WithCancel(context.Background())
	m.stopGuard, m.guardDone = stop, make(chan struct{})
	go func() {
		defer close(m.guardDone)
		_ = m.guard.Run(ctx)
	}()
}

// superviseProjector runs the projector until ctx ends. After an error it
// can recover from (NATS unreachable, the consumer lost) it starts it again;
// after a problem in the stream itself (a *projector.StopError: a gap, an
// unknown event type, a newer schema) it leaves it stopped: consentd keeps
// serving commands and history, lookups answer 503, and $SRV.STATS shows
// the error until an operator steps in.
func (m *Main) superviseProjector(ctx context.Context) {
	defer close(m.projectorDone)
	for attempt := 0; ; attempt++ {
		started := time.Now()
		err := m.projector.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			attempt = 0 // it ran well for a while: back off from the start
		}
		if stop, ok := errors.AsType[*projector.StopError](err); ok {
			attrs := []any{"error", stop, "seq", stop.Seq, "subject", stop.Subject}
			if newer, ok := errors.AsType[*events.NewerEventError](err); ok {
				attrs = append(attrs, "event_version", newer.Version, "event_type", newer.Type)
			}
			m.log.Error("projector stopped on a problem in the stream; lookups answer 503 until it is resolved", attrs...)
			return
		}
		m.log.Warn("projector stopped; restarting", "error", err)
		if pause(ctx, attempt) != nil {
			return
		}
	}
}

// health is the data every endpoint shows in $SRV.STATS.
func (m *Main) health() any {
	h := m.projector.Health()
	return struct {
		IndexSeq   uint64 `json:"index_seq"`
		StreamSeq  uint64 `json:"stream_seq"`
		Violations int    `json:"violations"`
		Ready      bool   `json:"ready"`
		Running    bool   `json:"projector_running"`
		Err        string `json:"projector_error,omitempty"`
		// Where and on what a stopped projector stopped (see
		// projector.Health).
		StopSeq      uint64 `json:"projector_stop_seq,omitempty"`
		NewerVersion int    `json:"projector_stop_event_version,omitempty"`
		NewerType    string `json:"projector_stop_event_type,omitempty"`
	}{h.IndexSeq, h.StreamSeq, h.Violations, h.Ready, h.Running, h.Err, h.StopSeq, h.NewerVersion, h.NewerType}
}

// ClientURL returns the URL clients connect to: the embedded server's, or
// Config.NATSURL. It is empty before Run.
func (m *Main) ClientURL() string { return m.url }

// Close shuts consentd down in order, waiting at most
// Config.ShutdownTimeout for requests in flight: the service stops taking
// requests and answers the ones in flight, the projector commits its
// checkpoint and stops, the index closes, the connection drains, the
// embedded server shuts down and the data directory is unlocked. It is safe
// to call after a failed Run, and more than once.
func (m *Main) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Main) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := m.stopHTTP(ctx); err != nil {
		errs = append(errs, err)
	}
	if m.stopStart != nil {
		// From here on, what the start-up set up in the background is
		// visible, and nothing more starts.
		m.stopStart()
		m.starting.Wait()
	}
	if m.stopCheckpointer != nil {
		m.stopCheckpointer()
		<-m.checkpointerDone
	}
	if m.stopExpirer != nil {
		m.stopExpirer()
		<-m.expirerDone
	}
	if m.stopRetainer != nil {
		m.stopRetainer()
		<-m.retainerDone
	}
	if m.stopGuard != nil {
		m.stopGuard()
		<-m.guardDone
	}
	if m.feed != nil {
		m.feed.Stop()
	}
	if m.service != nil {
		if err := m.service.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if m.svcConn != nil {
		m.svcConn.Close()
	}
	if m.stopProjector != nil {
		m.stopProjector()
		<-m.projectorDone
	}
	if m.index != nil {
		if err := m.index.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close index: %w", err))
		}
	}
	if err := drain(ctx, m.dataConn); err != nil {
		errs = append(errs, err)
	}
	if m.sysConn != nil {
		_ = m.authority.PushChanges(ctx, nil)
		m.sysConn.Close()
	}
	if m.server != nil {
		m.server.Shutdown()
		m.server.WaitForShutdown()
	}
	if err := m.lock.Release(); err != nil {
		errs = append(errs, fmt.Errorf("unlock data directory: %w", err))
	}
	if len(errs) == 0 && m.service != nil {
		m.log.Info("stopped cleanly")
	}
	return errors.Join(errs...)
}

// redactURL hides passwords in NATS URLs before they are printed.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
				parts[i] = u[:scheme+3] + "[redacted]" + u[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// newLogger returns consentd's logger writing to w at the given level
// and format, both checked by Config.Validate.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
