package ledger_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newChecker(t testing.TB, c *client.Client) *client.Checker {
	t.Helper()
	k, err := client.NewChecker(stepCtx(t), c, client.CheckerOptions{})
	require.NoError(t, err)
	t.Cleanup(k.Close)
	return k
}

// TestCheckerSeesRevocation: a cached allowed check turns into 403 as soon
// as the revocation reaches the checker through the stream, without asking
// the service; likewise a policy bump, and a new grant turns it back.
func TestCheckerSeesRevocation(t *testing.T) {
	st := startStack(t, stackOptions{})
	k := newChecker(t, st.client)
	q := wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter"}

	status, err := k.Check(stepCtx(t), q)
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	assert.Equal(t, events.StateNone, status.State)
	assert.Equal(t, uint64(1), k.Stats().Fills)

	granted, err := st.client.Grant(stepCtx(t), events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	require.NoError(t, k.WaitSeq(stepCtx(t), granted.Seq))
	status, err = k.Check(stepCtx(t), q)
	require.NoError(t, err, "the grant reached the cached entry")
	assert.Equal(t, granted.Seq, status.Seq)
	assert.Equal(t, uint64(1), k.Stats().Fills, "answered from memory")

	revokeAsked := time.Now()
	revoked, err := st.client.Revoke(stepCtx(t), events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	acked := time.Now()
	require.NoError(t, k.WaitSeq(stepCtx(t), revoked.Seq))
	seen := time.Now()
	status, err = k.Check(stepCtx(t), q)
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	assert.Equal(t, events.StateRevoked, status.State)
	assert.Equal(t, revoked.Seq, status.Seq)
	allowed, err := k.Allowed(stepCtx(t), q)
	require.NoError(t, err)
	assert.False(t, allowed)
	assert.Equal(t, uint64(1), k.Stats().Fills)
	t.Logf("revocation: %v from the request to the checker, %v after the writer's ack", seen.Sub(revokeAsked), seen.Sub(acked))

	// A policy bump reaches it too: the new grant at version 1 is outdated.
	regranted, err := st.client.Grant(stepCtx(t), events.Command{SubjectID: "alice", Purpose: "newsletter", PolicyVersion: 1})
	require.NoError(t, err)
	bump, err := st.client.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: "newsletter", PolicyVersion: 2})
	require.NoError(t, err)
	require.NoError(t, k.WaitSeq(stepCtx(t), bump.Seq))
	status, err = k.Check(stepCtx(t), q)
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	assert.Equal(t, regranted.Seq, status.Seq)
	assert.True(t, status.Outdated)
	assert.Equal(t, 2, status.RequiredPolicyVersion)
	status, err = k.Check(stepCtx(t), wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter", MinPolicyVersion: 1})
	require.NoError(t, err, "an explicit minimum wins")
	assert.True(t, status.Allowed)

	consented, err := st.client.Grant(stepCtx(t), events.Command{SubjectID: "alice", Purpose: "newsletter", PolicyVersion: 2})
	require.NoError(t, err)
	status, err = k.Check(stepCtx(t), wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter", MinSeq: consented.Seq})
	require.NoError(t, err)
	assert.Equal(t, consented.Seq, status.Seq)
	assert.Equal(t, uint64(1), k.Stats().Fills, "still from memory")
	assert.GreaterOrEqual(t, k.Stats().Hits, uint64(5))
}

// gatedReader is the projector's index, but the answers of Consent can be
// held back after they are read, as a slow network would: the answer
// describes the index as it was when asked.
type gatedReader struct {
	*projector.Index
	mu     sync.Mutex
	armed  bool
	asked  chan uint64 // the min_seq of a held-back lookup
	gate   chan struct{}
	minSeq []uint64
}

func (g *gatedReader) Consent(ctx context.Context, k events.Key, minSeq uint64) (events.Consent, uint64, error) {
	c, seq, err := g.Index.Consent(ctx, k, minSeq)
	g.mu.Lock()
	armed := g.armed
	g.armed = false
	g.minSeq = append(g.minSeq, minSeq)
	g.mu.Unlock()
	if armed {
		g.asked <- minSeq
		<-g.gate
	}
	return c, seq, err
}

func (g *gatedReader) arm() {
	g.mu.Lock()
	g.armed = true
	g.mu.Unlock()
}

// TestCheckerNeverGoesBack: the checker never answers from a state older
// than one it has seen, even when the service answers a fill with a state
// older than an event the stream delivered meanwhile; and it asks the
// service for at least what it has seen.
func TestCheckerNeverGoesBack(t *testing.T) {
	s := natstest.RunServer(t)
	js := natstest.JetStream(t, natstest.Connect(t, s))
	stream, err := ledger.EnsureStream(stepCtx(t), js, ledger.StreamOptions{})
	require.NoError(t, err)
	l := ledger.New(js, stream, ledger.Options{})
	quiet := slog.New(slog.DiscardHandler)
	idx, err := projector.Open(filepath.Join(t.TempDir(), "index"), projector.IndexOptions{Logger: quiet})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- projector.New(js, idx, projector.Options{Logger: quiet}).Run(ctx) }()
	reader := &gatedReader{Index: idx, asked: make(chan uint64, 1), gate: make(chan struct{})}
	svc, err := ledger.NewService(natstest.Connect(t, s), l, reader, ledger.ServiceConfig{Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = svc.Stop(context.Background())
		cancel()
		<-done
		_ = idx.Close()
	})
	client := client.NewClient(natstest.Connect(t, s), client.ClientOptions{})

	alice := events.Command{SubjectID: "alice", Purpose: "newsletter"}
	granted, err := l.Append(stepCtx(t), events.KindGrant, alice)
	require.NoError(t, err)
	_, err = idx.Wait(stepCtx(t), granted.Seq)
	require.NoError(t, err)
	k := newChecker(t, client)

	// The fill reads "granted"; its answer is held back while the
	// revocation is stored and reaches the checker through the stream.
	reader.arm()
	type result struct {
		st  events.Status
		err error
	}
	checked := make(chan result, 1)
	q := wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter"}
	go func() {
		st, err := k.Check(stepCtx(t), q)
		checked <- result{st, err}
	}()
	askedMinSeq := <-reader.asked
	assert.GreaterOrEqual(t, askedMinSeq, granted.Seq, "a fill asks for at least what the checker reflects")
	revoked, err := l.Append(stepCtx(t), events.KindRevoke, alice)
	require.NoError(t, err)
	require.NoError(t, k.WaitSeq(stepCtx(t), revoked.Seq))
	close(reader.gate) // the stale "granted" answer arrives now

	r := <-checked
	require.ErrorIs(t, r.err, wire.ErrConsentRequired, "not allowed from the older state")
	assert.Equal(t, events.StateRevoked, r.st.State)
	assert.Equal(t, revoked.Seq, r.st.Seq)
	allowed, err := k.Allowed(stepCtx(t), q)
	require.NoError(t, err)
	assert.False(t, allowed, "nor later, from memory")
	assert.Equal(t, uint64(1), k.Stats().Fills)

	// A consent the checker has not cached: the fill asks for at least
	// the last sequence the checker has applied, so the service cannot
	// answer from before an event the checker saw.
	bob := events.Command{SubjectID: "bob", Purpose: "newsletter"}
	_, err = l.Append(stepCtx(t), events.KindGrant, bob)
	require.NoError(t, err)
	bobRevoked, err := l.Append(stepCtx(t), events.KindRevoke, bob)
	require.NoError(t, err)
	require.NoError(t, k.WaitSeq(stepCtx(t), bobRevoked.Seq))
	_, err = k.Check(stepCtx(t), wire.StatusQuery{SubjectID: "bob", Purpose: "newsletter"})
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	reader.mu.Lock()
	last := reader.minSeq[len(reader.minSeq)-1]
	reader.mu.Unlock()
	assert.GreaterOrEqual(t, last, bobRevoked.Seq)
}

// TestCheckerFailsClosedWhenDisconnected: without its connection the
// checker cannot see revocations, so it stops answering from memory.
func TestCheckerFailsClosedWhenDisconnected(t *testing.T) {
	st := startStack(t, stackOptions{})
	granted, err := st.client.Grant(stepCtx(t), events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	k := newChecker(t, st.client)
	q := wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter", MinSeq: granted.Seq}
	_, err = k.Check(stepCtx(t), q)
	require.NoError(t, err)

	st.server.Shutdown()
	require.Eventually(t, func() bool { return k.Stats().Entries == 0 }, 10*time.Second, time.Millisecond)
	allowed, err := k.Allowed(stepCtx(t), q)
	require.ErrorIs(t, err, wire.ErrUnavailable, "at once, not after a timeout")
	assert.False(t, allowed)
}

// An erasure names the person by the subject key only: the Checker's
// entry, made by a lookup with the person's id, takes it all the same,
// and the person's consent is no longer allowed.
func TestCheckerSeesAnErasure(t *testing.T) {
	st := startStack(t, stackOptions{})
	k := newChecker(t, st.client)
	q := wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter"}
	granted, err := st.client.Grant(stepCtx(t), events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	require.NoError(t, k.WaitSeq(stepCtx(t), granted.Seq))
	_, err = k.Check(stepCtx(t), q)
	require.NoError(t, err)

	erased, err := st.ledger.Erase(stepCtx(t), wire.EraseRequest{SubjectID: "alice", Reason: "ticket 4711"})
	require.NoError(t, err)
	require.Len(t, erased.Erased, 1)
	require.NoError(t, k.WaitSeq(stepCtx(t), erased.Erased[0].Seq))
	status, err := k.Check(stepCtx(t), q)
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	assert.Equal(t, events.StateErased, status.State)
	assert.Equal(t, "alice", status.SubjectID, "the answer names the person it was asked about")
	assert.Equal(t, uint64(1), k.Stats().Fills, "answered from memory")
}
