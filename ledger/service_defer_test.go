package ledger_test

import (
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
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

	q := ledger.StatusQuery{SubjectID: "alice", Purpose: "newsletter", MinSeq: granted.Seq}
	_, err = st.client.Status(ctx, q)
	require.ErrorIs(t, err, nats.ErrNoResponders, "no instance takes lookups yet")
	require.ErrorIs(t, err, ledger.ErrUnavailable)
	_, err = st.client.Check(ctx, q)
	require.ErrorIs(t, err, nats.ErrNoResponders)

	require.NoError(t, st.svc.ServeLookups())
	require.NoError(t, st.svc.ServeLookups(), "a second call has nothing to do")
	status, err := st.client.Check(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, events.StateGranted, status.State)
	list, err := st.client.List(ctx, ledger.ListQuery{SubjectID: "alice", MinSeq: granted.Seq})
	require.NoError(t, err)
	assert.Len(t, list, 1)

	seen := map[string]int{}
	for _, e := range st.svc.Info().Endpoints {
		seen[e.Subject]++
	}
	for _, subj := range []string{ledger.SubjectStatus, ledger.SubjectCheck, ledger.SubjectList, ledger.SubjectHistory} {
		assert.Equal(t, 1, seen[subj], subj)
	}
}
