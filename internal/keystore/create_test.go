package keystore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/internal/residue"
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

// TestLegacyKeyOpensAndDestroys: a person whose key has a person entry and
// an id entry (a bucket written by earlier versions) keeps their events
// readable; new events get a pool key; Destroy with both ids leaves no
// entry on disk.
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
	_, err = e.open(Config{}).KeyByID(ctx, "acme", bobKey, id)
	assert.NoError(t, err, "the id entry opens by id alone")
	newID, newKey, err := e.open(Config{}).EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	assert.NotEqual(t, id, newID, "new events get a pool key")
	needles = append(needles, rawValue(t, s, poolKeyName(newID)), []byte(newID))
	needles = append(needles, residue.Forms(newKey)...)

	destroyed, err := s.Destroy(ctx, "acme", aliceKey, []string{id, newID})
	require.NoError(t, err)
	assert.True(t, destroyed)
	assert.Empty(t, e.scan(needles...))
	for _, id := range []string{id, newID} {
		_, err = e.open(Config{}).KeyByID(ctx, "acme", aliceKey, id)
		assert.ErrorIs(t, err, ErrDestroyed)
	}
}

// TestCreateBatchWithAnExistingEntry: a batch holding an entry that exists
// is refused whole, and its creations are then made one by one: that one
// fails (and is never handed out), the rest are stored.
func TestCreateBatchWithAnExistingEntry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{})
	var group []*creation
	for range 3 {
		c, err := s.newPoolKey()
		require.NoError(t, err)
		group = append(group, c)
	}
	_, err := s.Bucket().Create(ctx, group[1].name, []byte("taken"))
	require.NoError(t, err)

	batched, refused := s.storeCreations(group)
	assert.False(t, batched)
	assert.True(t, refused)
	assert.NoError(t, group[0].err)
	assert.ErrorIs(t, group[1].err, jetstream.ErrKeyExists)
	assert.NoError(t, group[2].err)
	for _, c := range []*creation{group[0], group[2]} {
		got, err := e.open(Config{}).KeyByID(ctx, "acme", aliceKey, c.id)
		require.NoError(t, err)
		assert.Equal(t, c.key, got)
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
	id, _, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	require.NoError(t, s.Bucket().Delete(ctx, poolKeyName(id)))
	_, err = e.open(Config{}).KeyByID(ctx, "acme", aliceKey, id)
	assert.ErrorIs(t, err, ErrDestroyed)
}
