package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/wirecodec"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// ServiceVersion is the version the consent service reports in $SRV.INFO.
const ServiceVersion = "1.0.0"

// ServiceQueueGroup is the queue group every endpoint subscribes in, so
// that several consentd instances share the requests.
const ServiceQueueGroup = "consent"

// Defaults of ServiceConfig.
const (
	DefaultMinSeqTimeout  = 2 * time.Second
	DefaultCommandTimeout = 10 * time.Second
	DefaultMaxInFlight    = 256
	DefaultMaxWaiting     = 256
	DefaultPendingMsgs    = 4096
	DefaultPendingBytes   = 4 << 20
)

// ServiceConfig configures the consent micro service. The zero value is
// ready to use.
type ServiceConfig struct {
	// Version is reported by $SRV.INFO; default ServiceVersion.
	Version string
	// MinSeqTimeout bounds how long status, check and list wait for the
	// index to reach min_seq before they answer 503; default 2s. A min_seq
	// more than MinSeqMargin beyond the last stream sequence known here is
	// not waited for: it is answered 503 at once.
	MinSeqTimeout time.Duration
	// CommandTimeout bounds one command (its append) and one history read;
	// default 10s.
	CommandTimeout time.Duration
	// MaxInFlight caps the requests this instance works on concurrently
	// outside the endpoints' own goroutines: commands, history reads and
	// the other reads of the stream. At the cap an endpoint stops taking
	// requests until one finishes, and the rest wait in the connection (up
	// to PendingMsgs and PendingBytes). Default 256.
	MaxInFlight int
	// MaxWaiting caps the lookups (status, check, list, purpose.get and
	// purpose.list) that wait for min_seq at once, each in a goroutine of
	// its own; they do not take MaxInFlight slots, so commands never wait
	// behind them. At the cap a lookup with min_seq is answered 503 at
	// once. Default 256: a lookup for a seq just acknowledged waits
	// milliseconds, so 256 serve tens of thousands of them a second, and
	// each waiter costs a goroutine's CPU when it wakes (docs/performance.md,
	// "Floods").
	MaxWaiting int
	// PendingMsgs and PendingBytes cap, per endpoint, the requests the
	// connection holds for the endpoint's handler; what comes beyond them
	// is dropped by the NATS client (its callers time out), counted in the
	// endpoint's slow_consumer data and logged at most every 10s. Defaults
	// DefaultPendingMsgs (4096) and DefaultPendingBytes (4 MiB): with 14
	// endpoints at most 56 MiB of request bodies wait.
	PendingMsgs  int
	PendingBytes int
	// LookupWorkers is the number of goroutines answering status, check and
	// list requests without min_seq. 0 (the default) answers them on the
	// endpoint's own goroutine, which measured fastest: see the lookup
	// benchmark in service_bench_test.go.
	LookupWorkers int
	// Health, when set, is called for $SRV.STATS and its result shown in
	// the data of the status, check and list endpoints, as "index"
	// (consentd reports the projector's health).
	Health func() any
	// Signer signs consent receipts (consent.v1.receipt); without one that
	// endpoint answers 503.
	Signer *audit.Signer
	// Now is the clock that decides expiry at read time; default time.Now.
	Now func() time.Time
	// Logger receives what callers are not told: the causes of 500s and
	// replies that could not be sent. Default slog.Default().
	Logger *slog.Logger
	// DeferLookups holds back the status, check and list endpoints until
	// ServeLookups (consentd calls it once its index has caught up): an
	// instance still catching up takes no lookups from the queue group, so
	// the others answer them. Commands are taken at once.
	DeferLookups bool
	// DeferCommands holds back every endpoint that needs the Ledger (the
	// commands, history, purpose.set, status_at, receipt and
	// admin.quarantine) until ServeCommands hands the Service its Ledger:
	// consentd serves lookups from its index while the stream has no
	// leader, and takes commands once it has found the stream. NewService
	// then takes a nil Ledger.
	DeferCommands bool
	// Authorize, when set, makes the service one for callers in other
	// NATS accounts (consentd's default, internal/auth): every endpoint
	// listens on consent.v1.*.<endpoint>, where a client account's service
	// import puts its tenant token, and every request is first put to
	// Authorize (403 when refused). A caller scoped to one tenant may then
	// name only that tenant in its body. Without Authorize the endpoints
	// listen on consent.v1.<endpoint> and the body names the tenant.
	Authorize Authorize
	// Users, when set, answers consent.v1.admin.user.add, revoke and list.
	Users Users
	// Observer, when set, is told of every command and lookup answered
	// and of every wait for min_seq (consentd's metrics); nil costs
	// nothing.
	Observer Observer
	// SubjectKeys computes the subject keys status, check and list look a
	// person up by while the Service has no Ledger (DeferCommands); the
	// Ledger's (Ledger.SubjectKeys) replace them once it has one. Nil:
	// until then lookups answer 503 (the stream's scheme is not known).
	SubjectKeys *SubjectKeys
}

func (c ServiceConfig) withDefaults() ServiceConfig {
	if c.Version == "" {
		c.Version = ServiceVersion
	}
	if c.MinSeqTimeout <= 0 {
		c.MinSeqTimeout = DefaultMinSeqTimeout
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxWaiting <= 0 {
		c.MaxWaiting = DefaultMaxWaiting
	}
	if c.PendingMsgs <= 0 {
		c.PendingMsgs = DefaultPendingMsgs
	}
	if c.PendingBytes <= 0 {
		c.PendingBytes = DefaultPendingBytes
	}
	if c.LookupWorkers < 0 {
		c.LookupWorkers = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Service is the consent micro service: the endpoints of consent.v1.*
// answered by a Ledger (commands, history) and a StateReader (status,
// check, list).
//
// A micro endpoint hands its requests to one goroutine, one at a time.
// Commands and history reads are network round trips to JetStream, so the
// Service works on them in goroutines of their own (up to MaxInFlight) and
// replies from there. Lookups are answered from the local index in
// microseconds and stay on the endpoint's goroutine unless they have to wait
// for min_seq; those wait in goroutines of their own (up to MaxWaiting).
type Service struct {
	nc     *nats.Conn
	micro  micro.Service
	ledger *Ledger
	reader StateReader
	cfg    ServiceConfig
	log    *slog.Logger

	// ctx is the parent of every request's context; cancelled when Stop
	// gives up waiting for requests in flight.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.RWMutex // orders wg.Add against stopping
	stopping bool
	group    micro.Group    // consent.v1
	deferred []endpoint     // held back by DeferLookups until ServeLookups
	commands []endpoint     // held back by DeferCommands until ServeCommands
	wg       sync.WaitGroup // requests answered outside the endpoint goroutines
	slots    chan struct{}  // MaxInFlight
	// waitSlots are MaxWaiting, taken by lookups waiting for min_seq.
	waitSlots chan struct{}
	head      streamHead // the stream's last sequence beyond the reader's view (minseq.go)
	// subjectKeys are the Ledger's, or ServiceConfig.SubjectKeys before
	// it has one; nil: lookups answer 503.
	subjectKeys atomic.Pointer[SubjectKeys]
	lookups     chan func() // nil unless LookupWorkers > 0

	// async counts, per endpoint subject, the requests answered outside
	// the endpoint goroutine, which micro's own counters do not see.
	async     map[string]*asyncCounters
	otherSubs asyncCounters // slow consumers on the service's $SRV subscriptions

	stopOnce sync.Once
	stopErr  error
}

// NewService registers the consent service (ServiceName) on nc, with one
// endpoint per subject of the contract, all in ServiceQueueGroup.
//
// The Service takes ownership of nc: Stop drains and closes it, and its
// async error handler is replaced by one that logs to ServiceConfig.Logger.
// Give it a connection of its own, not the one the Ledger or the
// StateReader use.
// l and r stay owned by the caller and must stay usable until Stop returns.
// l may be nil with ServiceConfig.DeferCommands (see ServeCommands).
// It returns an error when one of them is nil, when l cannot compute its
// stream's subject keys (Ledger.SubjectKeys), or when the service cannot
// be registered (an invalid version, a closed connection).
func NewService(nc *nats.Conn, l *Ledger, r StateReader, cfg ServiceConfig) (*Service, error) {
	if nc == nil || (l == nil && !cfg.DeferCommands) || r == nil {
		return nil, errors.New("ledger: NewService needs a connection, a Ledger (unless DeferCommands) and a StateReader")
	}
	keys := cfg.SubjectKeys
	if l != nil {
		var err error
		if keys, err = l.SubjectKeys(); err != nil {
			return nil, err
		}
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		nc:     nc,
		ledger: l,
		reader: r,
		cfg:    cfg,
		log:    cfg.Logger,
		ctx:    ctx,
		cancel: cancel,
		slots:  make(chan struct{}, cfg.MaxInFlight),

		waitSlots: make(chan struct{}, cfg.MaxWaiting),
	}
	s.subjectKeys.Store(keys)
	endpoints := []endpoint{
		{"request", s.handleCommand(events.KindRequest)},
		{"grant", s.handleCommand(events.KindGrant)},
		{"deny", s.handleCommand(events.KindDeny)},
		{"revoke", s.handleCommand(events.KindRevoke)},
		{"status", s.handleStatus(false)},
		{"check", s.handleStatus(true)},
		{"list", s.handleList},
		{"history", s.handleHistory},
	}
	endpoints = append(endpoints, s.purposeEndpoints()...)
	endpoints = append(endpoints, s.auditEndpoints()...)
	endpoints = append(endpoints, s.adminEndpoints()...)
	endpoints = append(endpoints, s.userEndpoints()...)
	// Everything handlers and $SRV.STATS read is set before the first
	// subscription exists.
	s.async = make(map[string]*asyncCounters, len(endpoints))
	for _, e := range endpoints {
		s.async["consent.v1."+e.name] = &asyncCounters{}
	}
	if cfg.LookupWorkers > 0 {
		s.lookups = make(chan func())
		for range cfg.LookupWorkers {
			go func() {
				for job := range s.lookups {
					job()
				}
			}()
		}
	}
	fail := func(err error) (*Service, error) {
		if s.micro != nil {
			_ = s.micro.Stop()
		}
		if s.lookups != nil {
			close(s.lookups)
		}
		cancel()
		return nil, err
	}

	// micro reports the errors of the service's subscriptions to
	// subscriptionError and then to the connection's handler, which by
	// default prints each one: those reports are logged here, and the
	// connection's handler only logs the rest.
	nc.SetErrorHandler(s.connectionError)
	svc, err := micro.AddService(nc, micro.Config{
		Name:         wire.ServiceName,
		Version:      cfg.Version,
		Description:  "Consent Ledger: record consent (request, grant, deny, revoke) and answer status, check, list and history",
		QueueGroup:   ServiceQueueGroup,
		StatsHandler: func(e *micro.Endpoint) any { return s.endpointData(e.Subject) },
		ErrorHandler: s.subscriptionError,
	})
	if err != nil {
		return fail(fmt.Errorf("add consent service: %w", err))
	}
	s.micro = svc
	s.group = svc.AddGroup("consent.v1")
	for _, e := range endpoints {
		if cfg.DeferLookups && slices.Contains(lookupEndpoints, e.name) {
			s.deferred = append(s.deferred, e)
			continue
		}
		if cfg.DeferCommands && slices.Contains(ledgerEndpoints, e.name) {
			s.commands = append(s.commands, e)
			continue
		}
		if err := s.register(e); err != nil {
			return fail(err)
		}
	}
	// Once NewService returns, the server routes requests to the service.
	if err := nc.Flush(); err != nil {
		return fail(fmt.Errorf("register consent service: %w", err))
	}
	return s, nil
}

// endpoint is one consent.v1 endpoint: its subject under consent.v1 and
// its handler.
type endpoint struct {
	name    string
	handler micro.HandlerFunc
}

// register adds e to the consent.v1 group, on consent.v1.<name>. A micro
// endpoint name allows no dots, so purpose.set is named purpose_set.
func (s *Service) register(e endpoint) error {
	name := strings.ReplaceAll(e.name, ".", "_")
	subject, handler := e.name, e.handler
	if s.cfg.Authorize != nil {
		subject, handler = "*."+e.name, s.authorized(e.name, e.handler)
	}
	handler = s.observed(e.name, handler)
	if err := s.group.AddEndpoint(name, handler, micro.WithEndpointSubject(subject),
		micro.WithEndpointPendingLimits(s.cfg.PendingMsgs, s.cfg.PendingBytes)); err != nil {
		return fmt.Errorf("add endpoint consent.v1.%s: %w", e.name, err)
	}
	return nil
}

// lookupEndpoints are the endpoints ServiceConfig.DeferLookups holds back.
var lookupEndpoints = []string{"status", "check", "list"}

// ServeLookups registers the status, check and list endpoints that
// ServiceConfig.DeferLookups held back; once it returns, the server routes
// lookups to this instance. It does nothing without DeferLookups, when
// called again, or once Stop has begun; its errors are NATS errors.
func (s *Service) ServeLookups() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping || len(s.deferred) == 0 {
		return nil
	}
	for len(s.deferred) > 0 {
		if err := s.register(s.deferred[0]); err != nil {
			return err
		}
		s.deferred = s.deferred[1:]
	}
	if err := s.nc.Flush(); err != nil {
		return fmt.Errorf("register the lookups: %w", err)
	}
	return nil
}

// ledgerEndpoints are the endpoints that need the Ledger, which
// ServiceConfig.DeferCommands holds back.
var ledgerEndpoints = []string{
	"request", "grant", "deny", "revoke", "history", "purpose.set",
	"status_at", "receipt", "admin.quarantine", "admin.erase",
}

// ServeCommands gives the Service its Ledger and registers the endpoints
// that need it (ledgerEndpoints), which ServiceConfig.DeferCommands held
// back; once it returns, the server routes commands to this instance. l
// stays owned by the caller and must stay usable until Stop returns. It
// does nothing without DeferCommands, when called again, or once Stop has
// begun; it returns an error for a nil l, the error of a Ledger that
// cannot compute its stream's subject keys (Ledger.SubjectKeys), and NATS
// errors.
func (s *Service) ServeCommands(l *Ledger) error {
	if l == nil {
		return errors.New("ledger: ServeCommands needs a Ledger")
	}
	keys, err := l.SubjectKeys()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping || len(s.commands) == 0 {
		return nil
	}
	if s.ledger == nil {
		// Set before the first command endpoint exists: their handlers
		// read it without the lock.
		s.ledger = l
		s.subjectKeys.Store(keys)
	}
	for len(s.commands) > 0 {
		if err := s.register(s.commands[0]); err != nil {
			return err
		}
		s.commands = s.commands[1:]
	}
	if err := s.nc.Flush(); err != nil {
		return fmt.Errorf("register the commands: %w", err)
	}
	return nil
}

// currentLedger returns the Service's Ledger, nil until ServeCommands
// when ServiceConfig.DeferCommands held it back. For the code that runs
// outside the command endpoints' handlers.
func (s *Service) currentLedger() *Ledger {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ledger
}

// Info returns the service's identity and endpoints, as $SRV.INFO shows them.
func (s *Service) Info() micro.Info { return s.micro.Info() }

// Stats returns the service's request counters, as $SRV.STATS shows them.
// micro counts a request when its endpoint handler returns; commands,
// history reads and lookups waiting for min_seq are answered later, from
// goroutines of their own, so their errors and processing times are
// counted apart, in each endpoint's Data (answered_async, async_errors,
// last_async_error, in_flight).
func (s *Service) Stats() micro.Stats { return s.micro.Stats() }

// Stop stops taking requests and answers the ones in flight: it removes the
// service's interest (other instances in the queue group take over), waits
// for the commands and reads it is working on, then drains and closes the
// connection, which answers the requests already delivered to it. When ctx
// ends first, the remaining work is cancelled (those callers get 503) and
// the connection is closed. Calling Stop again returns the first result.
func (s *Service) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Service) stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true // from here on, requests are answered inline
	s.mu.Unlock()

	var errs []error
	if err := s.micro.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("stop consent service: %w", err))
	}

	idle := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-ctx.Done():
		s.cancel()
		<-idle // every request's context is now done; they finish promptly
		errs = append(errs, fmt.Errorf("requests in flight at stop: %w", ctx.Err()))
	}
	if s.lookups != nil {
		close(s.lookups)
	}

	if !s.nc.IsClosed() {
		closed := s.nc.StatusChanged(nats.CLOSED)
		if err := s.nc.Drain(); err != nil {
			s.nc.Close()
		} else {
			select {
			case <-closed:
			case <-ctx.Done():
				s.cancel()
				s.nc.Close()
				errs = append(errs, fmt.Errorf("draining the service connection: %w", ctx.Err()))
			}
		}
	}
	s.cancel()
	return errors.Join(errs...)
}

// work computes the body of a reply, or the error to answer with.
type work func(ctx context.Context) (any, error)

func (s *Service) handleCommand(kind events.Kind) micro.HandlerFunc {
	return func(req micro.Request) {
		if s.tooLarge(req) {
			return
		}
		cmd, err := events.DecodeCommand(req.Data())
		if err == nil {
			err = scope(req, &cmd.Tenant)
		}
		if err == nil {
			err = cmd.Validate(kind)
		}
		if err != nil {
			s.respond(req, nil, err)
			return
		}
		s.applyPurposeDefaults(kind, &cmd)
		cmd.RecordedBy = callerOf(req).User
		s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
			reply, err := s.ledger.Append(ctx, kind, cmd)
			if err != nil {
				return nil, err
			}
			reply.Status = s.commandStatus(ctx, &reply)
			return reply, nil
		})
	}
}

func (s *Service) handleStatus(check bool) micro.HandlerFunc {
	return func(req micro.Request) {
		if req.Reply() == "" {
			return // a lookup nobody waits for (see lookup)
		}
		if s.tooLarge(req) {
			return
		}
		var q wire.StatusQuery
		err := wirecodec.DecodeOwnedStatusQuery(req.Data(), &q)
		if err == nil {
			err = scope(req, &q.Tenant)
		}
		if err == nil {
			err = q.Validate()
		}
		if err != nil {
			s.respond(req, nil, err)
			return
		}
		if q.MinSeq == 0 && s.lookups == nil {
			// The hot path, answered here, with neither a closure nor a
			// status behind an interface to allocate.
			st, err := s.status(s.ctx, &q, check)
			s.respondStatus(req, &st, err)
			return
		}
		async := q
		s.lookup(req, q.MinSeq, func(ctx context.Context) (any, error) {
			st, err := s.status(ctx, &async, check)
			if err != nil {
				return nil, err
			}
			return &st, nil
		})
	}
}

func (s *Service) handleList(req micro.Request) {
	var q wire.ListQuery
	if !s.accept(req, &q) {
		return
	}
	s.lookup(req, q.MinSeq, func(ctx context.Context) (any, error) {
		return s.list(ctx, q)
	})
}

func (s *Service) handleHistory(req micro.Request) {
	var q wire.HistoryQuery
	if !s.accept(req, &q) {
		return
	}
	q.Tenant = events.OrDefaultTenant(q.Tenant)
	s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
		return s.ledger.History(ctx, q)
	})
}

// status answers status and check. A check that is not allowed is a 403
// carrying the status.
// The status carries the subject key the consent was looked up under.
func (s *Service) status(ctx context.Context, q *wire.StatusQuery, check bool) (events.Status, error) {
	k, err := s.resolve(ctx, q.Key())
	if err != nil {
		return events.Status{}, err
	}
	c, indexSeq, err := s.reader.Consent(ctx, k, q.MinSeq)
	if err != nil {
		return events.Status{}, err
	}
	if c.State == "" {
		c = events.NewConsent(k)
	}
	required := s.requiredPolicyVersion(ctx, k, q.MinPolicyVersion, q.MinSeq)
	st := c.View(s.cfg.Now(), required)
	st.IndexSeq = indexSeq
	st.SubjectKey = k.Token()
	if check && !st.Allowed {
		return events.Status{}, wire.ConsentRequired(st, required)
	}
	return st, nil
}

// resolve returns key with its subject key (SubjectKeys.Resolve); an
// error matching events.ErrNotReady (503) while the Service does not know
// the stream's scheme.
func (s *Service) resolve(ctx context.Context, key events.Key) (events.Key, error) {
	keys := s.subjectKeys.Load()
	if keys == nil {
		return key, fmt.Errorf("%w: the stream's subject key scheme is not known yet", events.ErrNotReady)
	}
	return keys.Resolve(ctx, key)
}

func (s *Service) list(ctx context.Context, q wire.ListQuery) (any, error) {
	person, err := s.resolve(ctx, events.Key{Tenant: events.OrDefaultTenant(q.Tenant), SubjectID: q.SubjectID})
	if err != nil {
		return nil, err
	}
	consents, indexSeq, err := s.reader.Consents(ctx, person, q.MinSeq)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	out := wire.StatusList{Statuses: make([]events.Status, 0, len(consents))}
	for i := range consents {
		st := consents[i].View(now, s.requiredPolicyVersion(ctx, consents[i].Key(), 0, q.MinSeq))
		st.IndexSeq = indexSeq
		st.SubjectKey = person.Token()
		out.Statuses = append(out.Statuses, st)
	}
	return out, nil
}

// lookup answers a status, check or list request: inline (or on the lookup
// workers) when it need not wait, in a goroutine of its own when it waits
// for min_seq (goWait), so that one waiting caller does not hold up the
// others. A min_seq beyond the stream's last sequence is answered at once.
func (s *Service) lookup(req micro.Request, minSeq uint64, w work) {
	if req.Reply() == "" {
		// Published, not requested: a lookup changes nothing, so there
		// is nothing to do for a caller who waits for no answer.
		return
	}
	if minSeq > 0 {
		if err := s.beyondStream(minSeq); err != nil {
			s.async[req.Subject()].beyondStream.Add(1)
			s.respond(req, nil, err)
			return
		}
		s.goWait(req, w)
		return
	}
	if s.lookups != nil && s.track() {
		c := s.async[req.Subject()]
		c.inFlight.Add(1)
		s.lookups <- func() {
			defer s.wg.Done()
			body, err := w(s.ctx)
			s.publish(req, c, body, err)
		}
		return
	}
	body, err := w(s.ctx)
	s.respond(req, body, err)
}

// track counts a request about to be answered outside the endpoint
// goroutine; it returns false once Stop has begun, when requests are
// answered inline instead.
func (s *Service) track() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.stopping {
		return false
	}
	s.wg.Add(1)
	return true
}

// goAsync runs w in a goroutine of its own (bounded by MaxInFlight) and
// replies from there. Once Stop has begun it runs w inline.
func (s *Service) goAsync(req micro.Request, timeout time.Duration, w work) {
	if !s.track() {
		s.inline(req, timeout, w)
		return
	}
	c := s.async[req.Subject()]
	c.inFlight.Add(1)
	s.slots <- struct{}{}
	s.spawn(req, c, s.slots, timeout, w)
}

// inline runs w on the endpoint goroutine, bounded by timeout, and replies.
func (s *Service) inline(req micro.Request, timeout time.Duration, w work) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	body, err := w(ctx)
	s.respond(req, body, err)
}

// spawn runs w in a goroutine, bounded by timeout, replies from there and
// then frees one of slots and the request's track. The caller has taken
// both.
func (s *Service) spawn(req micro.Request, c *asyncCounters, slots chan struct{}, timeout time.Duration, w work) {
	go func() {
		defer func() {
			<-slots
			s.wg.Done()
		}()
		ctx, cancel := context.WithTimeout(s.ctx, timeout)
		defer cancel()
		body, err := w(ctx)
		if err == nil {
			s.noteAck(body)
		}
		s.publish(req, c, body, err)
	}()
}

// tooLarge answers 413 for a request over MaxRequestSize.
func (s *Service) tooLarge(req micro.Request) bool {
	n := len(req.Data())
	if n <= wire.MaxRequestSize {
		return false
	}
	s.respond(req, nil, &wire.Error{Code: 413, Description: fmt.Sprintf("request is %d bytes; the limit is %d bytes (64 KiB)", n, wire.MaxRequestSize)})
	return true
}

// validator is a request body that can check its own fields.
type validator interface{ Validate() error }

// accept decodes req's body strictly into q and validates it. When the
// request cannot be served (413, 400) it answers it and returns false.
func (s *Service) accept(req micro.Request, q validator) bool {
	if s.tooLarge(req) {
		return false
	}
	err := events.DecodeStrict(req.Data(), q)
	if err == nil {
		err = scopeBody(req, q)
	}
	if err == nil {
		err = q.Validate()
	}
	if err != nil {
		s.respond(req, nil, err)
		return false
	}
	return true
}

// encode turns a result into the reply's payload and, for an error, the
// micro error code and description.
func (s *Service) encode(req micro.Request, body any, err error) (data []byte, code, description string) {
	if err == nil {
		data, err = wirecodec.MarshalReply(body)
		if err == nil {
			return data, "", ""
		}
	}
	we := WireError(err)
	switch {
	case we.Code == 500:
		s.log.Error("consent service: internal error", append(s.logAttrs(req, err), "error", err)...)
	case errors.Is(we, wire.ErrForbidden):
		s.log.Warn("consent service: request refused", append(s.logAttrs(req, err), "error", we.Description)...)
	}
	if we.Status != nil {
		data, _ = wirecodec.MarshalStatus(we.Status)
	}
	description = we.Text()
	return data, strconv.Itoa(we.Code), description
}

// respond answers on the endpoint's goroutine, through the micro request,
// so that errors count in the endpoint's stats.
func (s *Service) respond(req micro.Request, body any, err error) {
	s.observe(req, body, err)
	data, code, description := s.encode(req, body, err)
	if code != "" {
		err = req.Error(code, description, data)
	} else {
		err = req.Respond(data)
	}
	s.replied(req, err)
}

// replied logs a reply that could not be sent; a request without a reply
// subject wanted none.
func (s *Service) replied(req micro.Request, err error) {
	if err != nil && !errors.Is(err, nats.ErrMsgNoReply) {
		s.log.Warn("consent service: reply not sent", append(s.logAttrs(req, nil), "error", err)...)
	}
}

// respondStatus is respond for a status lookup: the reply is written into
// a pooled buffer, which the connection copies.
func (s *Service) respondStatus(req micro.Request, st *events.Status, err error) {
	if err != nil {
		s.respond(req, nil, err)
		return
	}
	buf := replyBuffers.Get().(*[]byte)
	defer replyBuffers.Put(buf)
	data, ok := wirecodec.AppendStatus((*buf)[:0], st)
	if !ok {
		general := *st // a copy, so that st stays off the heap on the hot path
		s.respond(req, &general, nil)
		return
	}
	*buf = data
	s.observe(req, nil, nil)
	s.replied(req, req.Respond(data))
}

// replyBuffers holds the buffers respondStatus writes replies into.
var replyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// publish answers from another goroutine and counts the answer in c. It
// publishes the reply itself, with the same headers micro's Request.Error
// sets, because the micro request may only be used on the endpoint's
// goroutine (micro reads its error state once the handler returns).
func (s *Service) publish(req micro.Request, c *asyncCounters, body any, err error) {
	s.observe(req, body, err)
	data, code, description := s.encode(req, body, err)
	// Count the request as answered before the answer leaves, so that a
	// caller who has its answer never sees it still in flight.
	c.inFlight.Add(-1)
	c.answered.Add(1)
	if code != "" {
		c.errors.Add(1)
		last := code + ":" + description
		c.lastError.Store(&last)
	}
	reply := req.Reply()
	if reply == "" {
		return // a publish, not a request: nobody waits for an answer
	}
	msg := &nats.Msg{Subject: reply, Data: data}
	if code != "" {
		msg.Header = nats.Header{}
		msg.Header.Set(micro.ErrorCodeHeader, code)
		msg.Header.Set(micro.ErrorHeader, description)
	}
	if err := s.nc.PublishMsg(msg); err != nil {
		s.log.Warn("consent service: reply not sent", append(s.logAttrs(req, nil), "error", err)...)
	}
}

// asyncCounters count the requests of one endpoint answered outside its
// goroutine.
type asyncCounters struct {
	answered  atomic.Uint64
	errors    atomic.Uint64
	inFlight  atomic.Int64
	lastError atomic.Pointer[string] // "code:description", as micro's LastError

	// Answered 503 at once, on the endpoint goroutine: a min_seq beyond
	// the stream, or with the wait pool full (lookups only).
	beyondStream atomic.Uint64
	waitPoolFull atomic.Uint64
	// slowConsumer counts the times the NATS client began dropping this
	// endpoint's requests over its pending limits; lastLogged is when one
	// was last logged (unix nanoseconds).
	slowConsumer atomic.Uint64
	lastLogged   atomic.Int64
}

// endpointData is the data of one endpoint in $SRV.STATS.
type endpointData struct {
	AnsweredAsync  uint64 `json:"answered_async"`
	AsyncErrors    uint64 `json:"async_errors"`
	LastAsyncError string `json:"last_async_error,omitempty"`
	InFlight       int64  `json:"in_flight"`
	// MinSeqBeyondStream and WaitPoolFull count lookups answered 503 at
	// once (min_seq beyond the stream; MaxWaiting lookups waiting).
	MinSeqBeyondStream uint64 `json:"min_seq_beyond_stream,omitempty"`
	WaitPoolFull       uint64 `json:"wait_pool_full,omitempty"`
	// SlowConsumer counts the episodes in which the NATS client dropped
	// requests over the endpoint's pending limits.
	SlowConsumer uint64 `json:"slow_consumer,omitempty"`
	Index        any    `json:"index,omitempty"`
	// Stream is the ledger's StreamGuard verdict, on every endpoint, when
	// the ledger has a guard: lookups still answer from the index while
	// writes are refused, and this says why.
	Stream *StreamHealth `json:"stream,omitempty"`
}

func (s *Service) endpointData(subj string) any {
	subj = endpointSubject(subj)
	c, ok := s.async[subj]
	if !ok {
		return nil
	}
	d := endpointData{
		AnsweredAsync: c.answered.Load(), AsyncErrors: c.errors.Load(), InFlight: c.inFlight.Load(),
		MinSeqBeyondStream: c.beyondStream.Load(), WaitPoolFull: c.waitPoolFull.Load(), SlowConsumer: c.slowConsumer.Load(),
	}
	if last := c.lastError.Load(); last != nil {
		d.LastAsyncError = *last
	}
	switch subj {
	case wire.SubjectStatus, wire.SubjectCheck, wire.SubjectList:
		if s.cfg.Health != nil {
			d.Index = s.cfg.Health()
		}
	}
	if l := s.currentLedger(); l != nil && l.guard != nil {
		h := l.guard.Health()
		d.Stream = &h
	}
	return d
}

// slowConsumerLogInterval is the least time between two log lines about
// one endpoint dropping requests over its pending limits.
const slowConsumerLogInterval = 10 * time.Second

// subscriptionError logs an error of an endpoint's subscription. The NATS
// client reports a slow consumer each time an endpoint begins dropping
// requests over its pending limits, which under a flood is many times a
// second: those are counted, and logged at most every
// slowConsumerLogInterval per endpoint with the count so far.
func (s *Service) subscriptionError(_ micro.Service, e *micro.NATSError) {
	if !errors.Is(e, nats.ErrSlowConsumer) {
		s.log.Error("consent service: subscription error", "subject", e.Subject, "error", e.Description)
		return
	}
	c, ok := s.async[endpointSubject(e.Subject)]
	if !ok {
		c = &s.otherSubs // $SRV.PING, INFO and STATS
	}
	n := c.slowConsumer.Add(1)
	now := time.Now().UnixNano()
	last := c.lastLogged.Load()
	if now-last < int64(slowConsumerLogInterval) || !c.lastLogged.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("consent service: dropping requests over the endpoint's pending limits (slow consumer)",
		"subject", e.Subject, "times", n, "pending_msgs", s.cfg.PendingMsgs, "pending_bytes", s.cfg.PendingBytes)
}

// connectionError is the service connection's async error handler. The
// errors of the service's own subscriptions reach subscriptionError first
// (through micro); this logs the others.
func (s *Service) connectionError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if sub != nil && errors.Is(err, nats.ErrSlowConsumer) {
		return // counted and logged by subscriptionError
	}
	s.log.Error("consent service: connection error", "error", err)
}
