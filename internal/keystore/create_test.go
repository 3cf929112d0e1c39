package keystore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// legacyKey writes a person's key as stores did before one entry per
// person: an id entry kid.<id>, then the person's entry, each wrapped with
// its own name as additional data. It returns the id and the key.
func legacyKey(t *testing.T, s *Store, tenant, subjectKey string) (string, []byte) {
	t.Helper()
	idBytes := make([]byte, 16)
	key := make([]byte, DataKeySize)
	_, _ = rand.Read(idBytes)
	_, _ = rand.Read(key)
	id := hex.EncodeToString(idBytes)
	for _, name := range []string{keyIDName(id), dataKeyName(tenant, subjectKey)} {
		value, err := json.Marshal(record{KeyID: id, KEKID: s.kek.ID(), Wrapped: s.kek.wrap(key, dataKeyAAD(name, id))})
		require.NoError(t, err)
		_, err = s.Bucket().Create(context.Background(), name, value)
		require.NoError(t, err)
	}
	return id, key
}

// TestLegacyKeyOpensAndDestroys: a person whose key has an id entry (a
// bucket written before one entry per person) keeps their events
// readable, and Destroy leaves neither entry on disk.
func TestLegacyKeyOpensAndDestroys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{})
	id, key := legacyKey(t, s, "acme", aliceKey)
	needles := [][]byte{rawValue(t, s, keyIDName(id)), rawValue(t, s, dataKeyName("acme", aliceKey)), []byte(id)}

	fresh := e.open(Config{})
	got, err := fresh.KeyByID(ctx, "acme", aliceKey, id)
	require.NoError(t, err)
	assert.Equal(t, key, got)
	gotID, got, err := e.open(Config{}).EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	assert.Equal(t, id, gotID)
	assert.Equal(t, key, got)

	destroyed, err := s.Destroy(ctx, "acme", aliceKey)
	require.NoError(t, err)
	assert.True(t, destroyed)
	assert.Empty(t, e.scan(needles...))
	_, err = e.open(Config{}).KeyByID(ctx, "acme", aliceKey, id)
	assert.ErrorIs(t, err, ErrDestroyed)
}

// TestEnsureDataKeyBatchesCreations: the keys of many new persons made at
// once are stored in atomic batches, one entry per person, each durable
// and readable by another instance when EnsureDataKey returns.
func TestEnsureDataKeyBatchesCreations(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{})
	require.True(t, s.atomic)
	const n = 200
	persons := make([]string, n)
	ids := make([]string, n)
	keys := make([][]byte, n)
	for i := range persons {
		persons[i] = fmt.Sprintf("%032x", i+1)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			ids[i], keys[i], err = s.EnsureDataKey(ctx, "acme", persons[i])
			assert.NoError(t, err)
		})
	}
	// The same persons again, at the same time: they share the creations.
	again := make([]string, n)
	for i := range n {
		wg.Go(func() {
			var err error
			again[i], _, err = s.EnsureDataKey(ctx, "acme", persons[i])
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, ids, again)

	s.creates.mu.Lock()
	batches, refused := s.creates.batches, s.creates.refused
	s.creates.mu.Unlock()
	assert.Positive(t, batches, "stored in atomic batches")
	assert.Zero(t, refused)

	names, err := s.Bucket().Keys(ctx)
	require.NoError(t, err)
	assert.Len(t, names, n, "one entry per person")
	seen := map[string]bool{}
	fresh := e.open(Config{})
	for i, p := range persons {
		assert.False(t, seen[ids[i]], "ids differ")
		seen[ids[i]] = true
		got, err := fresh.KeyByID(ctx, "acme", p, ids[i])
		require.NoError(t, err)
		assert.Equal(t, keys[i], got)
	}
}

// TestCreateBatchWithAnExistingEntry: when another instance made one
// person's key, the batch holding that person is refused whole, and its
// creations are then made one by one: that person gets the other
// instance's key, the rest new ones.
func TestCreateBatchWithAnExistingEntry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, other := e.open(Config{}), e.open(Config{})
	otherID, otherKey, err := other.EnsureDataKey(ctx, "acme", bobKey)
	require.NoError(t, err)

	// Queue three creations as one group (no sender runs meanwhile).
	s.creates.mu.Lock()
	s.creates.sending = true
	s.creates.mu.Unlock()
	var group []*creation
	for _, p := range []string{aliceKey, bobKey, carolKey} {
		c, err := s.create("acme", p)
		require.NoError(t, err)
		group = append(group, c)
	}
	s.sendCreations()
	for _, c := range group {
		<-c.done
	}
	assert.NoError(t, group[0].err)
	assert.ErrorIs(t, group[1].err, jetstream.ErrKeyExists)
	assert.NoError(t, group[2].err)
	assert.Equal(t, 1, s.creates.refused)

	id, key, err := s.EnsureDataKey(ctx, "acme", bobKey)
	require.NoError(t, err)
	assert.Equal(t, otherID, id)
	assert.Equal(t, otherKey, key)
	for _, c := range []*creation{group[0], group[2]} {
		id, key, err := other.DataKey(ctx, "acme", c.subjectKey)
		require.NoError(t, err)
		assert.Equal(t, c.id, id)
		assert.Equal(t, c.key, key)
	}
}

// TestOpenAllowsBatchesOnAnOlderBucket: a bucket created before new keys
// were batched gets atomic batches allowed when a store opens it.
func TestOpenAllowsBatchesOnAnOlderBucket(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	js := natstest.JetStream(t, natstest.Connect(t, e.srv))
	cfg := StreamConfig(DefaultBucket, 1, 0)
	cfg.AllowAtomicPublish = false
	_, err := js.CreateStream(ctx, cfg)
	require.NoError(t, err)

	s := e.open(Config{})
	assert.True(t, s.atomic)
	stream, err := js.Stream(ctx, cfg.Name)
	require.NoError(t, err)
	assert.True(t, stream.CachedInfo().Config.AllowAtomicPublish)
	_, _, err = s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
}

// TestGetSkipsAMarker: on a bucket of one replica the store reads with
// direct gets; an entry whose latest revision is a delete marker (as a
// KV delete writes) reads as absent, as with the leader's message API.
func TestGetSkipsAMarker(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{})
	require.True(t, s.direct)
	_, _, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	require.NoError(t, s.Bucket().Delete(ctx, dataKeyName("acme", aliceKey)))
	_, _, err = e.open(Config{}).DataKey(ctx, "acme", aliceKey)
	assert.ErrorIs(t, err, ErrNoDataKey)
	_, err = e.open(Config{}).KeyByID(ctx, "acme", aliceKey, aliceKey)
	assert.ErrorIs(t, err, ErrDestroyed)
}
