package ledger_test

import (
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeferredLookupsWaitForServeLookups: with DeferLookups the service
// takes commands at once but no lookups, which the queue group then
// leaves to other instances, until ServeLookups.
func TestDeferredLookupsWaitForServeLookups(t *testing.T) {
	st := startStack(t, stackOptions{deferLookups: true})
	ctx := stepCtx(t)
	cmd := events.Command{SubjectID: "alice", Purpose: "newsletter"}
	granted, err := st.client.Grant(ctx, cmd)
	require.NoError(t, err, "commands are served at once")

	q := wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter", MinSeq: granted.Seq}
	_, err = st.client.Status(ctx, q)
	require.ErrorIs(t, err, nats.ErrNoResponders, "no instance takes lookups yet")
	require.ErrorIs(t, err, wire.ErrUnavailable)
	_, err = st.client.Check(ctx, q)
	require.ErrorIs(t, err, nats.ErrNoResponders)

	require.NoError(t, st.svc.ServeLookups())
	require.NoError(t, st.svc.ServeLookups(), "a second call has nothing to do")
	status, err := st.client.Check(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, events.StateGranted, status.State)
	list, err := st.client.List(ctx, wire.ListQuery{SubjectID: "alice", MinSeq: granted.Seq})
	require.NoError(t, err)
	assert.Len(t, list, 1)

	seen := map[string]int{}
	for _, e := range st.svc.Info().Endpoints {
		seen[e.Subject]++
	}
	for _, subj := range []string{wire.SubjectStatus, wire.SubjectCheck, wire.SubjectList, wire.SubjectHistory} {
		assert.Equal(t, 1, seen[subj], subj)
	}
}

// TestDeferredCommandsWaitForServeCommands: with DeferCommands the service
// starts without a Ledger and answers lookups (and its stats) from the
// index at once, but takes no command, history or other request that needs
// the stream until ServeCommands gives it the Ledger.
func TestDeferredCommandsWaitForServeCommands(t *testing.T) {
	st := startStack(t, stackOptions{deferCommands: true})
	ctx := stepCtx(t)
	cmd := events.Command{SubjectID: "alice", Purpose: "newsletter"}
	// The stack's ledger writes; no service takes the command yet.
	_, err := st.client.Grant(ctx, cmd)
	require.ErrorIs(t, err, nats.ErrNoResponders, "no instance takes commands yet")
	_, err = st.client.History(ctx, wire.HistoryQuery{SubjectID: "alice", Purpose: "newsletter"})
	require.ErrorIs(t, err, nats.ErrNoResponders)

	status, err := st.client.Status(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err, "lookups are served without the ledger")
	assert.Equal(t, events.StateNone, status.State)
	_, err = st.client.Status(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter", MinSeq: 1 << 40})
	require.ErrorIs(t, err, wire.ErrUnavailable, "a min_seq far beyond the index is refused; no stream to refresh from")
	for _, e := range st.svc.Stats().Endpoints {
		assert.NotContains(t, string(e.Data), `"stream"`, "no stream guard verdict without the ledger: %s", e.Subject)
	}

	require.NoError(t, st.svc.ServeCommands(st.ledger))
	require.NoError(t, st.svc.ServeCommands(st.ledger), "a second call has nothing to do")
	granted, err := st.client.Grant(ctx, cmd)
	require.NoError(t, err)
	status, err = st.client.Check(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter", MinSeq: granted.Seq})
	require.NoError(t, err)
	assert.Equal(t, events.StateGranted, status.State)
	history, err := st.client.History(ctx, wire.HistoryQuery{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	assert.Len(t, history.Events, 1)

	seen := map[string]int{}
	for _, e := range st.svc.Info().Endpoints {
		seen[e.Subject]++
	}
	for _, subj := range []string{wire.SubjectGrant, wire.SubjectHistory, wire.SubjectStatus} {
		assert.Equal(t, 1, seen[subj], subj)
	}
}

// TestNewServiceNeedsALedgerUnlessDeferred: a nil Ledger is an error
// without DeferCommands.
func TestNewServiceNeedsALedgerUnlessDeferred(t *testing.T) {
	st := startStack(t, stackOptions{})
	nc, err := nats.Connect(st.server.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	_, err = ledger.NewService(nc, nil, st.index, ledger.ServiceConfig{})
	require.ErrorContains(t, err, "a Ledger (unless DeferCommands)")
	require.ErrorContains(t, st.svc.ServeCommands(nil), "needs a Ledger")
}
