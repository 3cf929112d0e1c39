package ledger_test

import (
	"cmp"
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/keystore"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// stack is what one consentd instance runs, in-process: ledger, projector
// index, service; and a client connection.
type stack struct {
	server *server.Server
	js     jetstream.JetStream
	stream jetstream.Stream
	ledger *ledger.Ledger
	index  *projector.Index
	svc    *ledger.Service
	nc     *nats.Conn // the client's
	client *client.Client
	keys   *keystore.Store // with keyed subject keys: the ledger's Options.Keys
}

type stackOptions struct {
	server       *server.Server // join this server instead of starting one
	now          func() time.Time
	deferLookups bool // ServiceConfig.DeferLookups
	// deferCommands: ServiceConfig.DeferCommands, the service made without
	// its Ledger (stack.ledger, for ServeCommands).
	deferCommands bool
	tips          bool // the ledger takes tips from the index, as consentd's does
	// subjectKeys is the scheme of the stream; default -subject-keys.
	// Keyed subject keys (events.SubjectKeyHMAC) give the ledger a key
	// store (stack.keys), and the end of the test checks that every event
	// stored is on its keyed subject (requireKeyedSubjects).
	subjectKeys events.SubjectKeyScheme
}

// startStack starts a server (unless opts.server is set) and one instance
// on it, all stopped at the end of the test.
func startStack(t testing.TB, opts stackOptions) *stack {
	t.Helper()
	s := opts.server
	if s == nil {
		s = natstest.RunServer(t)
	}
	st := &stack{server: s}
	dataConn := natstest.Connect(t, s)
	st.js = natstest.JetStream(t, dataConn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	scheme := cmp.Or(opts.subjectKeys, events.SubjectKeyScheme(*testSubjectKeys))
	st.stream, err = ledger.EnsureStream(ctx, st.js, ledger.StreamOptions{SubjectKeys: scheme})
	require.NoError(t, err)
	if scheme == events.SubjectKeyHMAC {
		st.keys = st.openKeys(t)
		t.Cleanup(func() { requireKeyedSubjects(t, st.stream, st.keys) })
	}
	quiet := slog.New(slog.DiscardHandler)
	st.index, err = projector.Open(filepath.Join(t.TempDir(), "index"), projector.IndexOptions{Logger: quiet})
	require.NoError(t, err)
	lopts := ledger.Options{Now: opts.now}
	if st.keys != nil {
		lopts.Keys = st.keys
	}
	if opts.tips {
		lopts.Tips = st.index
	}
	st.ledger = ledger.New(st.js, st.stream, lopts)
	projectorCtx, stopProjector := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- projector.New(st.js, st.index, projector.Options{Logger: quiet}).Run(projectorCtx) }()

	svcConn, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	svcLedger := st.ledger
	var lookupKeys *ledger.SubjectKeys
	if opts.deferCommands {
		svcLedger = nil
		lookupKeys, err = st.ledger.SubjectKeys()
		require.NoError(t, err)
	}
	st.svc, err = ledger.NewService(svcConn, svcLedger, st.index, ledger.ServiceConfig{
		Logger: quiet, Now: opts.now, DeferLookups: opts.deferLookups, DeferCommands: opts.deferCommands,
		SubjectKeys: lookupKeys,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = st.svc.Stop(context.Background())
		stopProjector()
		<-done
		_ = st.index.Close()
	})
	st.nc = natstest.Connect(t, s)
	st.client = client.NewClient(st.nc, client.ClientOptions{})
	waitCtx, cancelWait := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelWait()
	for {
		changed := st.index.Changed()
		if st.index.Ready() {
			break
		}
		select {
		case <-changed:
		case <-waitCtx.Done():
			t.Fatalf("index not ready: %v", waitCtx.Err())
		}
	}
	return st
}

// serverKEKs holds the KEK of each test server whose stacks have keyed
// subject keys.
var serverKEKs sync.Map // *server.Server -> *keystore.KEK

// openKeys opens a key store of its own (another process's) on the
// stack's server, under the server's KEK: the instances on one server
// share it, as consentd's on one cluster do, so that every store reads the
// tenant secrets the others made.
func (st *stack) openKeys(t testing.TB) *keystore.Store {
	t.Helper()
	kek, _ := serverKEKs.LoadOrStore(st.server, newKEK(t))
	keys, err := keystore.Open(stepCtx(t), st.js, keystore.Config{KEK: kek.(*keystore.KEK)})
	require.NoError(t, err)
	return keys
}

// newKEK makes a KEK in a temporary file.
func newKEK(t testing.TB) *keystore.KEK {
	t.Helper()
	kek, err := keystore.GenerateKEK(filepath.Join(t.TempDir(), "kek"))
	require.NoError(t, err)
	return kek
}

// ctx returns a context for one step of a test.
func stepCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// runIndex opens a projector index in a temporary directory and runs its
// projector on js; both stop at the end of the test, after the cleanups
// registered later (a service over the index stops first).
func runIndex(tb testing.TB, js jetstream.JetStream) *projector.Index {
	tb.Helper()
	quiet := slog.New(slog.DiscardHandler)
	idx, err := projector.Open(filepath.Join(tb.TempDir(), "index"), projector.IndexOptions{Logger: quiet})
	require.NoError(tb, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- projector.New(js, idx, projector.Options{Logger: quiet}).Run(ctx) }()
	tb.Cleanup(func() {
		stop()
		<-done
		_ = idx.Close()
	})
	return idx
}
