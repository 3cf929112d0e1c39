package perf

import (
	"context"
	"fmt"
	"github.com/consentledger/consent/events"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/internal/keystore"
	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// AuthConfig sizes the cost-of-authentication comparison.
type AuthConfig struct {
	Dir      string // parent of the servers' directories
	Consents int    // granted consents of tenant acme in each stack's index
	Calls    int    // checks (and echo requests) per stack and concurrency
	Callers  []int  // concurrencies of the checks and echo requests
	Grants   int    // grants per stack
	// GrantCallers is the number of concurrent callers making grants.
	GrantCallers int
	// Rounds is the number of interleaved rounds the calls are split
	// into; default 8.
	Rounds int
}

// AuthLookup is the checks at one concurrency with and without
// authentication, and the bare request-reply that bounds what the account
// import costs.
type AuthLookup struct {
	Callers int
	// NoAuth and Auth: check of a granted consent through the service and
	// the Go client, without authentication (one account, an anonymous
	// client) and with it (the client a writer of tenant acme in its own
	// account, the service authorizing each request).
	NoAuth, Auth Run
	// SameAccount and Import: bare echo requests on the authenticated
	// server to a responder in the service account, from a user of that
	// account and from a user of acme's account through its service
	// import with shared identity (the import consent.v1 requests take).
	SameAccount, Import Run
}

// AuthResult holds the runs of the cost-of-authentication comparison.
type AuthResult struct {
	Lookups      []AuthLookup
	GrantCallers int
	// NoAuthGrant and AuthGrant: grants through the service and the Go
	// client, with group commit on a server that fsyncs every write (as
	// consentd by default), without and with authentication.
	NoAuthGrant, AuthGrant Run
}

// Auth measures the cost of authentication: two stacks in this process,
// each an embedded server that fsyncs every write with the consent stream,
// a projector index, a ledger with group commit and the consent service
// on in-process connections, and a client over loopback TCP; one without
// authentication (consentd --insecure-no-auth), one as consentd runs by
// default (operator mode, internal/auth). The stacks take turns in
// Rounds rounds, the first stack alternating, so that both meet the same
// machine noise.
func Auth(ctx context.Context, cfg AuthConfig) (AuthResult, error) {
	res := AuthResult{GrantCallers: cfg.GrantCallers}
	rounds := cfg.Rounds
	if rounds <= 0 {
		rounds = 8
	}
	plain, secure, err := startPair(ctx, "authentication",
		stackConfig{Dir: cfg.Dir, Consents: cfg.Consents}, stackConfig{Dir: cfg.Dir, Consents: cfg.Consents, Auth: true})
	if err != nil {
		return res, err
	}
	defer plain.close()
	defer secure.close()

	queries := statusQueries(min(cfg.Consents, 1000))
	// Both stacks must answer a check of a granted consent, and a grant,
	// before they are timed.
	for _, st := range []*stack{plain, secure} {
		got, err := st.client.Check(ctx, queries[0])
		if err != nil {
			return res, fmt.Errorf("%s: warm-up check: %w", st.name, err)
		}
		if !got.Allowed {
			return res, fmt.Errorf("%s: warm-up check of a granted consent: not allowed", st.name)
		}
		if _, err := st.client.Grant(ctx, grantCommand("warm-up", 0)); err != nil {
			return res, fmt.Errorf("%s: warm-up grant: %w", st.name, err)
		}
	}
	echoBody := []byte(`{"tenant":"acme","subject":"person-1@example.com","purpose":"marketing_email"}`)
	echo := func(nc *nats.Conn, subject string) func(int) error {
		return func(int) error {
			_, err := nc.Request(subject, echoBody, 5*time.Second)
			return err
		}
	}

	res.Lookups = make([]AuthLookup, len(cfg.Callers))
	for i, callers := range cfg.Callers {
		res.Lookups[i].Callers = callers
	}
	perLookup := func(callers int) int { return max(cfg.Calls/rounds, callers) }
	perGrant := max(cfg.Grants/rounds, cfg.GrantCallers)
	for round := range rounds {
		for i, callers := range cfg.Callers {
			l := &res.Lookups[i]
			n := perLookup(callers)
			check := func(st *stack) func(int) error {
				return func(j int) error {
					_, err := st.client.Check(ctx, queries[j%len(queries)])
					return err
				}
			}
			if err := pair(round, callers, n,
				timed{"check without authentication", &l.NoAuth, check(plain)},
				timed{"check with authentication", &l.Auth, check(secure)}); err != nil {
				return res, err
			}
			if err := pair(round, callers, n,
				timed{"echo in one account", &l.SameAccount, echo(secure.sameAccount, authEchoSubject)},
				timed{"echo through the import", &l.Import, echo(secure.imported, authEchoLocal)}); err != nil {
				return res, err
			}
		}
		grant := func(st *stack) func(int) error {
			return func(j int) error {
				_, err := st.client.Grant(ctx, grantCommand(fmt.Sprintf("round%d", round), j))
				return err
			}
		}
		if err := pair(round, cfg.GrantCallers, perGrant,
			timed{"grant without authentication", &res.NoAuthGrant, grant(plain)},
			timed{"grant with authentication", &res.AuthGrant, grant(secure)}); err != nil {
			return res, err
		}
	}
	return res, nil
}

// timed is one side of a pair: what it is, where its runs go, and its
// call.
type timed struct {
	what string
	into *Run
	call func(int) error
}

// pair drives n calls of a and of b from callers goroutines, b first in
// odd rounds, and merges each run into its side's.
func pair(round, callers, n int, a, b timed) error {
	sides := []timed{a, b}
	if round%2 == 1 {
		sides = []timed{b, a}
	}
	for _, side := range sides {
		r, err := Drive(callers, n, side.call)
		if err != nil {
			return fmt.Errorf("%s: %w", side.what, err)
		}
		*side.into = side.into.merge(r)
	}
	return nil
}

// The bare echo responder of the authenticated stack listens in the
// service account on authEchoSubject, which a user of acme's account
// reaches through the account's consent.v1 import by sending
// authEchoLocal (an admin's subject no consent endpoint uses).
const (
	authEchoLocal   = "consent.v1.admin.bench_echo"
	authEchoSubject = "consent.v1.acme.admin.bench_echo"
)

// stack is one server with the consent service and a client.
type stack struct {
	name   string
	dir    string // the stack's own directory, which close removes
	s      *Server
	js     jetstream.JetStream // in-process, as the ledger's
	client *client.Client
	// Authenticated stack only: connections for the bare echo, a user
	// of the service account's and an admin of acme's.
	sameAccount, imported *nats.Conn
	stops                 []func()
}

// grantAll grants consents 0 to n-1 (consentKey) through the stack's
// service, from callers goroutines.
func (st *stack) grantAll(ctx context.Context, callers, n int) error {
	_, err := Drive(callers, n, func(i int) error {
		k := consentKey(i)
		_, err := st.client.Grant(ctx, events.Command{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose})
		return err
	})
	return err
}

func (st *stack) close() {
	for i := len(st.stops) - 1; i >= 0; i-- {
		st.stops[i]()
	}
}

// stackConfig says what startStack starts.
type stackConfig struct {
	Dir      string // parent of the stack's directory
	Consents int    // granted consents of tenant acme filled in clear (FillStream)
	Auth     bool   // operator mode, as consentd by default
	// Keys: the ledger seals personal fields under data keys in a key
	// store under a KEK generated in the stack's directory, as consentd
	// --kek-file.
	Keys bool
	// Observer, when set, is the ledger's and the service's (consentd's
	// metrics).
	Observer ledger.Observer
}

// startPair starts the two stacks of a comparison, without and with
// what, named so; on an error it closes what it started.
func startPair(ctx context.Context, what string, without, with stackConfig) (off, on *stack, err error) {
	if off, err = startStack(ctx, without); err != nil {
		return nil, nil, fmt.Errorf("stack without %s: %w", what, err)
	}
	if on, err = startStack(ctx, with); err != nil {
		off.close()
		return nil, nil, fmt.Errorf("stack with %s: %w", what, err)
	}
	off.name, on.name = "without "+what, "with "+what
	return off, on, nil
}

// startStack starts one stack as cfg says, with cfg.Consents granted
// consents in its index.
func startStack(ctx context.Context, cfg stackConfig) (st *stack, err error) {
	withAuth := cfg.Auth
	st = &stack{}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	dir, err := os.MkdirTemp(cfg.Dir, "consentbench-auth-")
	if err != nil {
		return nil, err
	}
	st.stops = append(st.stops, func() { _ = os.RemoveAll(dir) })
	st.dir = dir
	opts := serverOptions(filepath.Join(dir, "store"), true)
	var a *auth.Authority
	var svcOpts []nats.Option
	if withAuth {
		if a, err = auth.Open(filepath.Join(dir, "auth")); err != nil {
			return nil, err
		}
		creds, err := a.ServerOptions(opts)
		if err != nil {
			return nil, err
		}
		if svcOpts, err = auth.ConnectOptions(creds); err != nil {
			return nil, err
		}
	}
	if st.s, err = startServer(opts); err != nil {
		return nil, err
	}
	st.stops = append(st.stops, st.s.Close)

	jsConn, err := st.s.InProcess(svcOpts...)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(jsConn)
	if err != nil {
		return nil, err
	}
	st.js = js
	if err := FillStream(ctx, js, cfg.Consents); err != nil {
		return nil, err
	}
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	if err != nil {
		return nil, err
	}
	idx, stopIndex, err := runIndex(ctx, js, dir)
	if err != nil {
		return nil, err
	}
	st.stops = append(st.stops, stopIndex)
	// As consentd by default: group commit, on a server that fsyncs
	// every write.
	lopts := ledger.Options{GroupCommit: &ledger.GroupCommit{}, Tips: idx, Observer: cfg.Observer}
	if cfg.Keys {
		kek, err := keystore.GenerateKEK(filepath.Join(dir, "kek"))
		if err != nil {
			return nil, err
		}
		if lopts.Keys, err = keystore.Open(ctx, js, keystore.Config{KEK: kek}); err != nil {
			return nil, err
		}
	}
	l := ledger.New(js, stream, lopts)
	svcCfg := ledger.ServiceConfig{Logger: slog.New(slog.DiscardHandler), Observer: cfg.Observer}
	if withAuth {
		svcCfg.Authorize = authorizer(a)
	}
	svcConn, err := st.s.InProcess(svcOpts...)
	if err != nil {
		return nil, err
	}
	svc, err := ledger.NewService(svcConn, l, idx, svcCfg)
	if err != nil {
		return nil, err
	}
	st.stops = append(st.stops, func() { _ = svc.Stop(context.Background()) })
	if err := svcConn.Flush(); err != nil {
		return nil, err
	}

	var clientOpts []nats.Option
	if withAuth {
		if clientOpts, err = userOptions(a, "bench", auth.Writer); err != nil {
			return nil, err
		}
		if err := st.startEcho(svcOpts, a); err != nil {
			return nil, err
		}
	}
	clientConn, err := st.s.TCP(clientOpts...)
	if err != nil {
		return nil, err
	}
	st.client = client.NewClient(clientConn, client.ClientOptions{})
	return st, nil
}

// startEcho starts the bare echo responder of the authenticated stack in
// the service account and connects its two requesters.
func (st *stack) startEcho(svcOpts []nats.Option, a *auth.Authority) error {
	echoConn, err := st.s.InProcess(svcOpts...)
	if err != nil {
		return err
	}
	echo, err := micro.AddService(echoConn, micro.Config{
		Name: "echo", Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: authEchoSubject, Handler: micro.HandlerFunc(func(req micro.Request) { _ = req.Respond(req.Data()) })},
	})
	if err != nil {
		return err
	}
	st.stops = append(st.stops, func() { _ = echo.Stop() })
	if err := echoConn.Flush(); err != nil {
		return err
	}
	if st.sameAccount, err = st.s.TCP(svcOpts...); err != nil {
		return err
	}
	adminOpts, err := userOptions(a, "echo", auth.Admin)
	if err != nil {
		return err
	}
	st.imported, err = st.s.TCP(adminOpts...)
	return err
}

// userOptions issues a user of tenant acme with role and returns its
// connect options.
func userOptions(a *auth.Authority, name string, role auth.Role) ([]nats.Option, error) {
	creds, err := a.IssueUser(name, role, "acme")
	if err != nil {
		return nil, err
	}
	return auth.ConnectOptions(creds)
}

// authorizer adapts the authority to the service's ledger.Authorize, as
// consentd does.
func authorizer(a *auth.Authority) ledger.Authorize {
	return func(endpoint, token, info string) (ledger.Caller, error) {
		user, err := a.Authorize(endpoint, token, info)
		if err != nil {
			return ledger.Caller{}, err
		}
		return ledger.Caller{User: user, Tenant: token}, nil
	}
}
