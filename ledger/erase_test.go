package ledger_test

import (
	"context"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/keystore"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openKeys opens a key store in the stream's account, under a KEK of the
// test's.
func openKeys(t testing.TB, js jetstream.JetStream) *keystore.Store {
	t.Helper()
	keys, err := keystore.Open(stepCtx(t), js, keystore.Config{KEK: newKEK(t)})
	require.NoError(t, err)
	return keys
}

// keepingKeys is a key store whose Destroy destroys nothing: a ledger on
// it leaves an erasure as one cut short after its consent.erased events,
// before the keys were destroyed (it still computes keyed subject keys,
// which a ledger without a key store cannot).
type keepingKeys struct{ *keystore.Store }

func (keepingKeys) Destroy(context.Context, string, string, []string) (bool, error) {
	return false, nil
}

// Erase appends consent.erased to each of the person's consents (and only
// theirs), naming no personal data, destroys the data key, is idempotent,
// lets a new consent start a fresh chain, and leaves a stream that
// verifies end to end.
func TestEraseAPerson(t *testing.T) {
	st := startStack(t, stackOptions{})
	ctx := stepCtx(t)
	keys := st.openKeys(t)
	l := ledger.New(st.js, st.stream, ledger.Options{Keys: keys})
	alice := events.Command{Tenant: "acme", SubjectID: "alice@example.com", Actor: "subject", Evidence: []byte(`{"ip":"198.51.100.7"}`)}
	for _, purpose := range []string{"newsletter", "analytics"} {
		cmd := alice
		cmd.Purpose = purpose
		_, err := l.Append(ctx, events.KindGrant, cmd)
		require.NoError(t, err)
	}
	bob, err := l.Append(ctx, events.KindGrant, events.Command{Tenant: "acme", SubjectID: "bob", Purpose: "newsletter"})
	require.NoError(t, err)
	other, err := l.Append(ctx, events.KindGrant, events.Command{Tenant: "globex", SubjectID: "alice@example.com", Purpose: "newsletter"})
	require.NoError(t, err)

	// Stored sealed; history opens them.
	h, err := l.History(ctx, wire.HistoryQuery{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "newsletter"})
	require.NoError(t, err)
	require.Len(t, h.Events, 1)
	grant := h.Events[0]
	assert.Equal(t, events.SchemaVersion, grant.Event.V)
	assert.Equal(t, "alice@example.com", grant.Event.SubjectID)
	assert.JSONEq(t, `{"ip":"198.51.100.7"}`, string(grant.Event.Evidence))
	raw, err := st.stream.GetMsg(ctx, grant.Seq)
	require.NoError(t, err)
	assert.NotContains(t, string(raw.Data), "alice@example.com")
	assert.NotContains(t, string(raw.Data), "198.51.100.7")

	_, err = l.Erase(ctx, wire.EraseRequest{Tenant: "acme", SubjectID: "alice@example.com"})
	var fe *events.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "reason", fe.Field)

	r, err := l.Erase(ctx, wire.EraseRequest{Tenant: "acme", SubjectID: "alice@example.com", Reason: "erasure requested, ticket 4711", RecordedBy: "dpo@acme"})
	require.NoError(t, err)
	require.Len(t, r.Erased, 2)
	assert.True(t, r.KeyDestroyed)
	token := subjectKeyOf(t, l, "acme", "alice@example.com")
	_, _, err = keys.DataKey(ctx, "acme", token)
	require.ErrorIs(t, err, keystore.ErrNoDataKey)
	for i, purpose := range []string{"analytics", "newsletter"} { // by subject
		e := r.Erased[i]
		assert.Equal(t, events.TypeErased, e.Event.Type)
		assert.Equal(t, purpose, e.Event.Purpose)
		assert.Equal(t, token, e.Event.SubjectKey)
		assert.Empty(t, e.Event.SubjectID, "the erasure names no personal data")
		assert.Empty(t, e.Event.Actor)
		assert.Equal(t, "dpo@acme", e.Event.RecordedBy)
		assert.Equal(t, events.StateErased, e.Status.State)
		assert.False(t, e.Status.Allowed)
		raw, err := st.stream.GetMsg(ctx, e.Seq)
		require.NoError(t, err)
		assert.NotContains(t, string(raw.Data), "alice@example.com")
		assert.NotContains(t, string(raw.Data), "198.51.100.7")
	}

	// The skeleton stays, sealed for good.
	h, err = l.History(ctx, wire.HistoryQuery{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "newsletter"})
	require.NoError(t, err)
	require.Len(t, h.Events, 2)
	assert.Equal(t, grant.Seq, h.Events[0].Seq)
	assert.Empty(t, h.Events[0].Event.SubjectID, "its key is gone")
	assert.True(t, h.Events[0].Event.IsSealed())
	assert.Equal(t, events.TypeErased, h.Events[1].Event.Type)

	// Again: nothing more to erase; the key is destroyed again (idempotent).
	again, err := l.Erase(ctx, wire.EraseRequest{Tenant: "acme", SubjectID: "alice@example.com", Reason: "again"})
	require.NoError(t, err)
	assert.Empty(t, again.Erased)
	assert.Equal(t, []string{"analytics", "newsletter"}, again.Already)
	assert.False(t, again.KeyDestroyed)

	// A new consent of the person starts a fresh chain.
	fresh, err := l.Append(ctx, events.KindGrant, events.Command{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "newsletter"})
	require.NoError(t, err)
	assert.Empty(t, fresh.Event.PrevHash)
	assert.Equal(t, events.StateGranted, fresh.Status.State)

	// Others are untouched, and the stream verifies.
	h, err = l.History(ctx, wire.HistoryQuery{Tenant: "acme", SubjectID: "bob", Purpose: "newsletter"})
	require.NoError(t, err)
	require.Len(t, h.Events, 1)
	assert.Equal(t, bob.Seq, h.Events[0].Seq)
	h, err = l.History(ctx, wire.HistoryQuery{Tenant: "globex", SubjectID: "alice@example.com", Purpose: "newsletter"})
	require.NoError(t, err)
	require.Len(t, h.Events, 1)
	assert.Equal(t, other.Seq, h.Events[0].Seq)
	report, err := audit.Verify(ctx, st.js, audit.VerifyOptions{})
	require.NoError(t, err)
	assert.True(t, report.OK(), "%v", report.Problems)
}

// A person with no consents is erased without error: nothing to do.
func TestEraseNobody(t *testing.T) {
	st := startStack(t, stackOptions{})
	r, err := st.ledger.Erase(stepCtx(t), wire.EraseRequest{SubjectID: "nobody", Reason: "r"})
	require.NoError(t, err)
	assert.Empty(t, r.Erased)
	assert.Empty(t, r.Already)
}

// An erasure cut short at any step (some consents erased, the key not yet
// destroyed) is finished by the next: each step is recorded in the stream
// or the key bucket before the next begins, and each is skipped once done.
func TestEraseResumesWhereItStopped(t *testing.T) {
	st := startStack(t, stackOptions{})
	ctx := stepCtx(t)
	keys := st.openKeys(t)
	l := ledger.New(st.js, st.stream, ledger.Options{Keys: keys})
	for _, purpose := range []string{"analytics", "newsletter"} {
		_, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "alice", Purpose: purpose})
		require.NoError(t, err)
	}
	token := subjectKeyOf(t, l, events.DefaultTenant, "alice")

	// Stopped after the consent.erased events, before the key was
	// destroyed.
	first, err := ledger.New(st.js, st.stream, ledger.Options{Keys: keepingKeys{keys}}).Erase(ctx, wire.EraseRequest{SubjectID: "alice", Reason: "r"})
	require.NoError(t, err)
	require.Len(t, first.Erased, 2)
	_, _, err = keys.DataKey(ctx, events.DefaultTenant, token)
	require.NoError(t, err, "the key outlived the cut-short erasure")

	done, err := l.Erase(ctx, wire.EraseRequest{SubjectID: "alice", Reason: "r"})
	require.NoError(t, err)
	assert.Empty(t, done.Erased, "nothing is erased twice")
	assert.Equal(t, []string{"analytics", "newsletter"}, done.Already)
	assert.True(t, done.KeyDestroyed, "the step left undone is done")
	_, _, err = keys.DataKey(ctx, events.DefaultTenant, token)
	require.ErrorIs(t, err, keystore.ErrNoDataKey)
}
