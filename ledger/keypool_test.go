package ledger_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/keystore"
	"github.com/consentledger/consent/internal/residue"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keyIDsOf returns the distinct key ids of the stored events of the
// person's consent to purpose, in order.
func keyIDsOf(t *testing.T, st *stack, tenant, subject, purpose string) []string {
	t.Helper()
	var ids []string
	k := events.Key{Tenant: tenant, SubjectID: subject, Purpose: purpose}
	for _, e := range readStored(t, st.stream, st.natsSubject(t, k)) {
		if e.Event.KeyID != "" && !slices.Contains(ids, e.Event.KeyID) {
			ids = append(ids, e.Event.KeyID)
		}
	}
	return ids
}

// A person written by two processes has two keys; erasing the person
// destroys both (every key the person's events name) and no other's, and
// a fresh consent after the erasure is sealed under a fresh key that
// opens.
func TestEraseDestroysTheKeysOfEveryProcess(t *testing.T) {
	st := startStack(t, stackOptions{})
	ctx := stepCtx(t)
	open := func() *keystore.Store { return st.openKeys(t) }
	keys1, keys2 := open(), open()
	stop, err := keys2.Watch()
	require.NoError(t, err)
	t.Cleanup(stop)
	l1 := ledger.New(st.js, st.stream, ledger.Options{Keys: keys1})
	l2 := ledger.New(st.js, st.stream, ledger.Options{Keys: keys2})
	cmd := func(subject, purpose string) events.Command {
		return events.Command{Tenant: "acme", SubjectID: subject, Purpose: purpose, Actor: "subject"}
	}
	_, err = l1.Append(ctx, events.KindGrant, cmd("alice", "newsletter"))
	require.NoError(t, err)
	_, err = l2.Append(ctx, events.KindRevoke, cmd("alice", "newsletter"))
	require.NoError(t, err)
	_, err = l2.Append(ctx, events.KindGrant, cmd("alice", "analytics"))
	require.NoError(t, err)
	_, err = l1.Append(ctx, events.KindGrant, cmd("bob", "newsletter"))
	require.NoError(t, err)
	newsletter := keyIDsOf(t, st, "acme", "alice", "newsletter")
	require.Len(t, newsletter, 2, "a key per process")
	assert.Equal(t, newsletter[1:], keyIDsOf(t, st, "acme", "alice", "analytics"))
	bobIDs := keyIDsOf(t, st, "acme", "bob", "newsletter")
	require.Len(t, bobIDs, 1)

	token := subjectKeyOf(t, l1, "acme", "alice")
	// The events keep naming the ids; the key bucket's files must not,
	// and no file may hold the keys.
	var ids, keyBytes [][]byte
	for _, id := range newsletter {
		key, err := keys1.KeyByID(ctx, "acme", token, id)
		require.NoError(t, err)
		ids = append(ids, []byte(id))
		keyBytes = append(keyBytes, residue.Forms(key)...)
	}
	storeDir := st.server.StoreDir()
	bucketDir := filepath.Join(storeDir, "$G", "streams", "KV_"+keystore.DefaultBucket)
	for _, id := range ids {
		require.NotEmpty(t, residue.Scan(t, bucketDir, id), "the scanner finds the key's entry")
	}

	r, err := l1.Erase(ctx, wire.EraseRequest{Tenant: "acme", SubjectID: "alice", Reason: "erasure requested"})
	require.NoError(t, err)
	assert.True(t, r.KeyDestroyed)
	assert.Empty(t, residue.Scan(t, bucketDir, ids...), "no entry of either process's key left")
	assert.Empty(t, residue.Scan(t, storeDir, keyBytes...), "no key bytes left")
	fresh := open()
	for _, id := range newsletter {
		_, err := fresh.KeyByID(ctx, "acme", token, id)
		assert.ErrorIs(t, err, ledger.ErrKeyDestroyed, id)
		require.Eventually(t, func() bool {
			_, err := keys2.KeyByID(ctx, "acme", token, id)
			return errors.Is(err, ledger.ErrKeyDestroyed)
		}, 5*time.Second, 10*time.Millisecond, "the other process, told, forgets %s", id)
	}
	_, _, err = keys2.DataKey(ctx, "acme", token)
	assert.ErrorIs(t, err, keystore.ErrNoDataKey, "the other process forgot the key it handed alice")
	_, err = fresh.KeyByID(ctx, "acme", subjectKeyOf(t, l1, "acme", "bob"), bobIDs[0])
	assert.NoError(t, err, "bob's key stays")
	_, _, err = keys1.DataKey(ctx, "acme", token)
	assert.ErrorIs(t, err, keystore.ErrNoDataKey, "the erasing process forgot alice's key")

	// A fresh consent after the erasure: a fresh key, which opens.
	reply, err := l1.Append(ctx, events.KindGrant, cmd("alice", "newsletter"))
	require.NoError(t, err)
	assert.NotContains(t, newsletter, reply.Event.KeyID)
	h, err := l1.History(ctx, wire.HistoryQuery{Tenant: "acme", SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	last := h.Events[len(h.Events)-1]
	assert.Equal(t, "alice", last.Event.SubjectID, "the fresh grant opens")
}

// countingKeys counts the calls of Destroy.
type countingKeys struct {
	*keystore.Store
	destroys atomic.Int64
}

func (k *countingKeys) Destroy(ctx context.Context, tenant, subjectKey string, ids []string) (bool, error) {
	k.destroys.Add(1)
	return k.Store.Destroy(ctx, tenant, subjectKey, ids)
}

// An erasure cut short after its last consent.erased, before the keys
// were destroyed, leaves a person whose consents are all erased: the
// Retainer's first sweep finishes it (destroys the keys); later sweeps do
// not look at persons erased before their previous complete scan.
func TestRetainerFinishesAnErasureCutShort(t *testing.T) {
	clock := newManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	st := startStack(t, stackOptions{now: clock.Now})
	ctx := stepCtx(t)
	store := st.openKeys(t)
	keys := &countingKeys{Store: store}
	l := ledger.New(st.js, st.stream, ledger.Options{Now: clock.Now, Keys: keys})
	for _, purpose := range []string{"analytics", "newsletter"} {
		_, err := l.Append(ctx, events.KindGrant, events.Command{Tenant: "acme", SubjectID: "alice", Purpose: purpose})
		require.NoError(t, err)
	}
	reply, err := l.Append(ctx, events.KindGrant, events.Command{Tenant: "acme", SubjectID: "bob", Purpose: "newsletter"})
	require.NoError(t, err)
	ids := keyIDsOf(t, st, "acme", "alice", "analytics")
	require.Len(t, ids, 1)

	// The erasure stops after the consent.erased events.
	cut, err := ledger.New(st.js, st.stream, ledger.Options{Now: clock.Now, Keys: keepingKeys{store}}).Erase(ctx, wire.EraseRequest{Tenant: "acme", SubjectID: "alice", Reason: "r"})
	require.NoError(t, err)
	require.Len(t, cut.Erased, 2)
	_, err = st.index.Wait(ctx, cut.Erased[1].Seq)
	require.NoError(t, err)
	token := subjectKeyOf(t, l, "acme", "alice")
	_, err = store.KeyByID(ctx, "acme", token, ids[0])
	require.NoError(t, err, "the key outlived the cut-short erasure")

	ret := ledger.NewRetainer(l, st.index, ledger.RetainerOptions{Now: clock.Now, Interval: 10 * time.Millisecond})
	_, err = ret.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), ret.Stats().Finished, "%+v", ret.Stats())
	assert.Equal(t, int64(1), keys.destroys.Load(), "alice only")
	_, err = st.openKeys(t).KeyByID(ctx, "acme", token, ids[0])
	assert.ErrorIs(t, err, ledger.ErrKeyDestroyed)
	_, err = store.KeyByID(ctx, "acme", subjectKeyOf(t, l, "acme", "bob"), reply.Event.KeyID)
	assert.NoError(t, err, "bob's key stays")

	// The next sweep looks at nobody erased before the scan it completed.
	_, err = ret.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), keys.destroys.Load())
	assert.Equal(t, uint64(1), ret.Stats().Finished)
}
