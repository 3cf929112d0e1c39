package ledger_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// auditEnv is a server, a ledger on a manual clock, a projector index and
// the service with an optional signing key, and a client.
type auditEnv struct {
	clock  *manualClock
	js     jetstream.JetStream
	l      *ledger.Ledger
	index  *projector.Index
	client *client.Client
}

func startAuditEnv(t *testing.T, signer *audit.Signer) *auditEnv {
	t.Helper()
	s, _, js := natstest.Run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	require.NoError(t, err)
	e := &auditEnv{clock: newManualClock(testNow), js: js}
	e.l = ledger.New(js, stream, ledger.Options{Now: e.clock.Now})
	e.index = runIndex(t, js)
	svc, err := ledger.NewService(natstest.Connect(t, s), e.l, e.index, ledger.ServiceConfig{Logger: slog.New(slog.DiscardHandler), Now: e.clock.Now, Signer: signer})
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Stop(context.Background()) })
	e.client = client.NewClient(natstest.Connect(t, s), client.ClientOptions{})
	return e
}

// do appends a command at the clock's time and moves the clock a minute.
func (e *auditEnv) do(t *testing.T, kind events.Kind, cmd events.Command) wire.Reply {
	t.Helper()
	r, err := e.l.Append(context.Background(), kind, cmd)
	require.NoError(t, err)
	e.clock.Advance(time.Minute)
	return r
}

func TestStatusAtOverTheWire(t *testing.T) {
	e := startAuditEnv(t, nil)
	who := events.Command{SubjectID: "alice@example.com", Purpose: "marketing_email"}
	e.do(t, events.KindRequest, who) // recorded at +0m
	grant := who
	grant.TTL = "30m"
	e.do(t, events.KindGrant, grant) // +1m, expires +31m
	revoke := who
	backdated := testNow.Add(90 * time.Second)
	revoke.OccurredAt = &backdated
	e.clock.Advance(10 * time.Minute)
	rev := e.do(t, events.KindRevoke, revoke) // recorded +12m, occurred +1m30s

	ctx := context.Background()
	q := wire.StatusAtQuery{SubjectID: "alice@example.com", Purpose: "marketing_email"}
	at := func(d time.Duration, by wire.TimeBasis) wire.StatusAt {
		q.At, q.By = testNow.Add(d), by
		st, err := e.client.StatusAt(ctx, q)
		require.NoError(t, err)
		return st
	}
	assert.Equal(t, events.StateNone, at(-time.Minute, "").State)
	assert.Equal(t, events.StateRequested, at(30*time.Second, "").State)
	st := at(5*time.Minute, wire.ByRecorded)
	assert.Equal(t, events.StateGranted, st.State)
	assert.True(t, st.Allowed)
	assert.Equal(t, 2, st.Events)
	assert.Equal(t, wire.ByRecorded, st.By)
	assert.Equal(t, events.StateRevoked, at(5*time.Minute, wire.ByOccurred).State, "the revocation had occurred by then")
	assert.Equal(t, rev.Seq, at(5*time.Minute, wire.ByOccurred).Seq)
	assert.Equal(t, events.StateRevoked, at(13*time.Minute, "").State)

	// Expiry is judged at the time asked, not now.
	q.SubjectID, q.Purpose = "bob@example.com", "analytics"
	e.do(t, events.KindGrant, events.Command{SubjectID: "bob@example.com", Purpose: "analytics", TTL: "10m"})
	assert.Equal(t, events.StateGranted, at(15*time.Minute, "").State)
	assert.Equal(t, events.StateExpired, at(25*time.Minute, "").State)

	_, err := e.client.StatusAt(ctx, wire.StatusAtQuery{SubjectID: "a", Purpose: "p"})
	require.ErrorIs(t, err, wire.ErrBadRequest)
	assert.Contains(t, err.Error(), "at: is required")
}

func TestReceiptOverTheWire(t *testing.T) {
	dir := t.TempDir()
	_, err := audit.GenerateKeyFiles(filepath.Join(dir, "k"), filepath.Join(dir, "k.pub"))
	require.NoError(t, err)
	signer, err := audit.LoadSigningKey(filepath.Join(dir, "k"))
	require.NoError(t, err)
	pub, err := audit.LoadPublicKey(filepath.Join(dir, "k.pub"))
	require.NoError(t, err)

	e := startAuditEnv(t, signer)
	who := events.Command{SubjectID: "zoë@example.com", Purpose: "marketing_email"}
	e.do(t, events.KindRequest, who)
	granted := e.do(t, events.KindGrant, who)
	ctx := context.Background()

	sr, err := e.client.Receipt(ctx, wire.ReceiptQuery{SubjectID: who.SubjectID, Purpose: who.Purpose})
	require.NoError(t, err)
	r, err := audit.VerifyReceipt(&sr, audit.NewKeyring(pub))
	require.NoError(t, err)
	assert.Equal(t, events.StateGranted, r.Status.State)
	require.Len(t, r.History, 2)
	assert.Equal(t, granted.Seq, r.History[1].Seq)
	assert.Equal(t, granted.Event.Hash, r.History[1].Event.Hash)
	assert.Nil(t, r.Checkpoint, "no checkpoint yet")
	assert.Contains(t, sr.Text, "no signed checkpoint covers the last event yet")

	cp, err := audit.NewCheckpointer(e.js, audit.CheckpointerOptions{Signer: signer, Now: e.clock.Now})
	require.NoError(t, err)
	made, err := cp.Once(ctx)
	require.NoError(t, err)
	require.True(t, made.Published)
	sr, err = e.client.Receipt(ctx, wire.ReceiptQuery{SubjectID: who.SubjectID, Purpose: who.Purpose})
	require.NoError(t, err)
	r, err = audit.VerifyReceipt(&sr, audit.NewKeyring(pub))
	require.NoError(t, err)
	require.NotNil(t, r.Checkpoint)
	assert.Equal(t, made.Seq, r.Checkpoint.Seq)
	assert.Equal(t, granted.Seq, r.Checkpoint.UpToSeq)

	none, err := e.client.Receipt(ctx, wire.ReceiptQuery{SubjectID: "nobody", Purpose: "marketing_email"})
	require.NoError(t, err)
	r, err = audit.VerifyReceipt(&none, audit.NewKeyring(pub))
	require.NoError(t, err)
	assert.Equal(t, events.StateNone, r.Status.State)
	assert.Empty(t, r.History)
}

func TestReceiptWithoutSigningKeyIsUnavailable(t *testing.T) {
	e := startAuditEnv(t, nil)
	_, err := e.client.Receipt(context.Background(), wire.ReceiptQuery{SubjectID: "a", Purpose: "p"})
	require.ErrorIs(t, err, wire.ErrUnavailable)
	assert.Contains(t, err.Error(), "--signing-key")
}

func TestIndexDigestMatchesAFreshFold(t *testing.T) {
	e := startAuditEnv(t, nil)
	var last uint64
	for i := range 12 {
		last = e.do(t, []events.Kind{events.KindRequest, events.KindGrant}[i/6], events.Command{
			SubjectID: []string{"a", "b", "c"}[i%3], Purpose: []string{"p", "q"}[i%2]}).Seq
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.index.Wait(ctx, last)
	require.NoError(t, err)

	d, err := e.client.IndexDigest(ctx)
	require.NoError(t, err)
	assert.Equal(t, last, d.IndexSeq)
	assert.Equal(t, uint64(6), d.Consents)

	r, err := audit.Verify(ctx, e.js, audit.VerifyOptions{Live: func(ctx context.Context) (audit.IndexDigest, error) { return e.client.IndexDigest(ctx) }, Idle: 100 * time.Millisecond})
	require.NoError(t, err)
	assert.True(t, r.OK(), "problems: %v", r.Problems)
	assert.True(t, r.Live.Match)
}
