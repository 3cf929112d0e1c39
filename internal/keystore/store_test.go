package keystore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/internal/residue"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Subject keys of test persons (any 32 hex digits do).
const (
	aliceKey = "a59fc578d4cb46faab1d6eb348e7c74b"
	bobKey   = "0cf19c8f102ecc62b033b451c1d7cbe4"
	carolKey = "5d1e2a7c9b3f40e6a8c2d4f6b8e0a2c4"
)

// env is an embedded server with its store directory, and a KEK.
type env struct {
	t        *testing.T
	storeDir string
	srv      *server.Server
	kek      *KEK
}

func newEnv(t *testing.T) *env {
	t.Helper()
	kek, err := GenerateKEK(filepath.Join(t.TempDir(), "kek.pem"))
	require.NoError(t, err)
	e := &env{t: t, storeDir: t.TempDir(), kek: kek}
	e.srv = natstest.RunServer(t, natstest.StoreDir(e.storeDir))
	return e
}

// restart stops the server and starts it again on the same store.
func (e *env) restart() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.srv = natstest.RunServer(e.t, natstest.StoreDir(e.storeDir))
}

// open opens a store on a connection of its own (another instance).
func (e *env) open(cfg Config) *Store {
	e.t.Helper()
	if cfg.KEK == nil {
		cfg.KEK = e.kek
	}
	js := natstest.JetStream(e.t, natstest.Connect(e.t, e.srv))
	s, err := Open(context.Background(), js, cfg)
	require.NoError(e.t, err)
	return s
}

// scan returns what the residue scanner finds under the server's store.
func (e *env) scan(needles ...[]byte) []residue.Finding {
	return residue.Scan(e.t, e.storeDir, needles...)
}

// rawValue is the stored value of a bucket key.
func rawValue(t *testing.T, s *Store, name string) []byte {
	t.Helper()
	entry, err := s.Bucket().Get(context.Background(), name)
	require.NoError(t, err, name)
	return entry.Value()
}

func TestOpenMakesAnErasableBucket(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.open(Config{})
	e.open(Config{}) // binds the existing bucket
	js := natstest.JetStream(t, natstest.Connect(t, e.srv))
	stream, err := js.Stream(ctx, "KV_consent_keys")
	require.NoError(t, err)
	cfg := stream.CachedInfo().Config
	assert.Equal(t, []string{"$KV.consent_keys.>"}, cfg.Subjects)
	assert.False(t, cfg.DenyDelete, "deletes (erases) allowed")
	assert.True(t, cfg.AllowRollup)
	assert.True(t, cfg.AllowDirect)
	assert.Equal(t, int64(History), cfg.MaxMsgsPerSubject)
	assert.GreaterOrEqual(t, cfg.MaxMsgsPerSubject, int64(2))
	assert.Equal(t, jetstream.DiscardNew, cfg.Discard)
	assert.Equal(t, jetstream.NoCompression, cfg.Compression)
	assert.Equal(t, jetstream.FileStorage, cfg.Storage)
	assert.Equal(t, 1, cfg.Replicas)
	kv, err := js.KeyValue(ctx, DefaultBucket)
	require.NoError(t, err)
	assert.Equal(t, DefaultBucket, kv.Bucket())
}

func TestOpenRefusesAStandardKVBucket(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	js := natstest.JetStream(t, natstest.Connect(t, e.srv))
	_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "std_keys", History: 2})
	require.NoError(t, err)
	_, err = Open(ctx, js, Config{KEK: e.kek, Bucket: "std_keys"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "stream KV_std_keys denies deletes")

	_, err = Open(ctx, js, Config{})
	assert.ErrorContains(t, err, "Config.KEK is required")
}

// TestEnsureDataKeyHandsOutPoolKeys: a person gets a key of the store's
// pool, the same to concurrent callers; each instance hands the person a
// key of its own; every key is a pool entry pk.<id>, durable and readable
// by a fresh instance when it is handed out, and no entry names a person.
func TestEnsureDataKeyHandsOutPoolKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{PoolSize: 8})
	_, _, err := s.DataKey(ctx, "acme", aliceKey)
	require.ErrorIs(t, err, ErrNoDataKey)

	// Callers racing in one instance: every one gets the same key.
	const n = 8
	ids := make([]string, n)
	keys := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			ids[i], keys[i], err = s.EnsureDataKey(ctx, "acme", aliceKey)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	require.Regexp(t, `^[0-9a-f]{32}$`, ids[0])
	require.Len(t, keys[0], DataKeySize)
	for i := range n {
		assert.Equal(t, ids[0], ids[i])
		assert.Equal(t, keys[0], keys[i])
	}
	cur, curKey, err := s.DataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	assert.Equal(t, ids[0], cur)
	assert.Equal(t, keys[0], curKey)

	// Every entry is a pool key; the pool was filled ahead of demand.
	names, err := s.Bucket().Keys(ctx)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(names), 8)
	assert.Contains(t, names, poolKeyName(ids[0]))
	for _, name := range names {
		assert.Regexp(t, `^pk\.[0-9a-f]{32}$`, name)
	}
	assert.Empty(t, e.scan([]byte(aliceKey)), "no entry names the person")

	// Another instance hands alice a key of its own; a fresh one reads
	// both by id.
	other := e.open(Config{})
	otherID, otherKey, err := other.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	assert.NotEqual(t, ids[0], otherID)
	assert.NotEqual(t, keys[0], otherKey)
	fresh := e.open(Config{})
	_, _, err = fresh.DataKey(ctx, "acme", aliceKey)
	assert.ErrorIs(t, err, ErrNoDataKey, "a fresh instance has handed out nothing")
	for id, want := range map[string][]byte{ids[0]: keys[0], otherID: otherKey} {
		got, err := fresh.KeyByID(ctx, "acme", aliceKey, id)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}

	// Another person, another tenant: other keys, never one handed out.
	bobID, bobKeyBytes, err := s.EnsureDataKey(ctx, "acme", bobKey)
	require.NoError(t, err)
	assert.NotEqual(t, ids[0], bobID)
	assert.NotEqual(t, keys[0], bobKeyBytes)
	globexID, _, err := s.EnsureDataKey(ctx, "globex", aliceKey)
	require.NoError(t, err)
	assert.NotEqual(t, ids[0], globexID)
	assert.NotEqual(t, bobID, globexID)

	// The caller owns the returned slice.
	clear(keys[0])
	_, again, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	assert.Equal(t, curKey, again)
}

// TestPoolRefillsAndNeverRepeats: many persons take keys of a small pool
// at once; the pool refills in atomic batches below its low-water mark,
// every person gets a distinct durable key, and the pool never holds more
// than its size plus the keys put back.
func TestPoolRefillsAndNeverRepeats(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{PoolSize: 10})
	const n = 100
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			ids[i], _, err = s.EnsureDataKey(ctx, "acme", fmt.Sprintf("%032x", i+1))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	fresh := e.open(Config{})
	for i, id := range ids {
		assert.False(t, seen[id], "a key is handed out once")
		seen[id] = true
		_, err := fresh.KeyByID(ctx, "acme", fmt.Sprintf("%032x", i+1), id)
		assert.NoError(t, err)
	}
	s.pool.mu.Lock()
	batches, refused, ready := s.pool.batches, s.pool.refused, len(s.pool.ready)
	s.pool.mu.Unlock()
	assert.GreaterOrEqual(t, batches, n/10, "filled in atomic batches of at most 10")
	assert.Zero(t, refused)
	assert.LessOrEqual(t, ready, 10)
}

// TestKeysAreWrappedOnDisk: no data key or tenant secret is on disk in any
// encoding; the scanner does see the store (the key id, which is in the
// entry's name, is found).
func TestKeysAreWrappedOnDisk(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{})
	id, key, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	secret, err := s.TenantSecret(ctx, "acme")
	require.NoError(t, err)
	needles := append(residue.Forms(key), residue.Forms(secret)...)
	assert.Empty(t, e.scan(needles...))

	assert.NotEmpty(t, e.scan([]byte(id)), "the scanner reads the store")
	e.restart()
	assert.Empty(t, e.scan(needles...))
}

// TestDestroyLeavesNothingOnDisk: after Destroy no file under the server's
// store holds the person's wrapped keys, key ids or keys, from every
// instance that handed the person a key.
func TestDestroyLeavesNothingOnDisk(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, other := e.open(Config{}), e.open(Config{})
	id, key, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	otherID, otherKey, err := other.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	require.NotEqual(t, id, otherID, "a key per instance")
	bobID, _, err := s.EnsureDataKey(ctx, "acme", bobKey)
	require.NoError(t, err)
	_, err = s.TenantSecret(ctx, "acme")
	require.NoError(t, err)

	var needles [][]byte
	for _, id := range []string{id, otherID} {
		var rec record
		require.NoError(t, json.Unmarshal(rawValue(t, s, poolKeyName(id)), &rec))
		needles = append(needles, rec.Wrapped, rawValue(t, s, poolKeyName(id)), []byte(id))
	}
	needles = append(needles, residue.Forms(key)...)
	needles = append(needles, residue.Forms(otherKey)...)
	require.NotEmpty(t, e.scan(needles...), "before: the entries are on disk")

	destroyed, err := s.Destroy(ctx, "acme", aliceKey, []string{otherID, id, id})
	require.NoError(t, err)
	assert.True(t, destroyed)
	assert.Empty(t, e.scan(needles...), "at once, server running")
	assert.NotEmpty(t, e.scan([]byte(bobID)), "bob's key stays")

	e.restart()
	assert.Empty(t, e.scan(needles...), "after a restart")

	s = e.open(Config{})
	for _, id := range []string{id, otherID} {
		_, err = s.KeyByID(ctx, "acme", aliceKey, id)
		assert.ErrorIs(t, err, ErrDestroyed)
	}
	_, err = s.KeyByID(ctx, "acme", bobKey, bobID)
	assert.NoError(t, err)
}

func TestDestroyThenFreshKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{})
	id, key, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	_, err = s.KeyByID(ctx, "acme", aliceKey, id) // cached
	require.NoError(t, err)

	destroyed, err := s.Destroy(ctx, "acme", aliceKey, []string{id})
	require.NoError(t, err)
	require.True(t, destroyed)
	// The cache forgot it: the same instance sees the erase.
	_, _, err = s.DataKey(ctx, "acme", aliceKey)
	assert.ErrorIs(t, err, ErrNoDataKey)
	_, err = s.KeyByID(ctx, "acme", aliceKey, id)
	assert.ErrorIs(t, err, ErrDestroyed)

	newID, newKey, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	assert.NotEqual(t, id, newID)
	assert.NotEqual(t, key, newKey)
	got, err := e.open(Config{}).KeyByID(ctx, "acme", aliceKey, newID)
	require.NoError(t, err)
	assert.Equal(t, newKey, got)
	_, err = e.open(Config{}).KeyByID(ctx, "acme", aliceKey, id)
	assert.ErrorIs(t, err, ErrDestroyed, "the old id stays destroyed")
	_, err = s.KeyByID(ctx, "acme", aliceKey, id)
	assert.ErrorIs(t, err, ErrDestroyed, "the old id stays destroyed, with the new key cached")

	// Idempotent: a second Destroy naming both ids destroys the fresh
	// key, a third finds nothing, and so does one for a person never seen.
	destroyed, err = s.Destroy(ctx, "acme", aliceKey, []string{id, newID})
	require.NoError(t, err)
	assert.True(t, destroyed)
	destroyed, err = s.Destroy(ctx, "acme", aliceKey, []string{id, newID})
	require.NoError(t, err)
	assert.False(t, destroyed)
	destroyed, err = s.Destroy(ctx, "acme", bobKey, nil)
	require.NoError(t, err)
	assert.False(t, destroyed)
}

// TestForget: another instance keeps a destroyed key it read in its cache
// until it is told (Forget); then it sees the erase.
func TestForget(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, other := e.open(Config{}), e.open(Config{})
	id, _, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	_, err = other.KeyByID(ctx, "acme", aliceKey, id)
	require.NoError(t, err)
	otherID, _, err := other.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)

	_, err = s.Destroy(ctx, "acme", aliceKey, []string{id, otherID})
	require.NoError(t, err)
	_, err = other.KeyByID(ctx, "acme", aliceKey, id)
	require.NoError(t, err, "not told yet")
	cur, _, err := other.DataKey(ctx, "acme", aliceKey)
	require.NoError(t, err, "not told yet")
	assert.Equal(t, otherID, cur)
	other.Forget("acme", aliceKey)
	_, _, err = other.DataKey(ctx, "acme", aliceKey)
	assert.ErrorIs(t, err, ErrNoDataKey)
	_, err = other.KeyByID(ctx, "acme", aliceKey, id)
	assert.ErrorIs(t, err, ErrDestroyed)

	// A new key handed out by s: other opens it from the bucket.
	newID, newKey, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	got, err := other.KeyByID(ctx, "acme", aliceKey, newID)
	require.NoError(t, err)
	assert.Equal(t, newKey, got)
}

// TestKeyByIDReadsPastAStaleCache: an instance that caches one key of a
// person opens an event under another key of the person, made by another
// instance: an id other than the cached ones is looked up in the bucket.
func TestKeyByIDReadsPastAStaleCache(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, other := e.open(Config{}), e.open(Config{})
	id, _, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	_, _, err = other.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	_, err = other.KeyByID(ctx, "acme", aliceKey, id)
	require.NoError(t, err)
	_, err = s.Destroy(ctx, "acme", aliceKey, []string{id})
	require.NoError(t, err)
	newID, newKey, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)

	got, err := other.KeyByID(ctx, "acme", aliceKey, newID)
	require.NoError(t, err)
	assert.Equal(t, newKey, got)
}

// TestDestroyFinishesAnInterruptedDestroy: a Destroy that stopped after
// erasing some entries is finished by the next with the same ids: for a
// person with a key id entry (a bucket written before one entry per
// person), and for pool keys.
func TestDestroyFinishesAnInterruptedDestroy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{})
	id, _ := legacyKey(t, s, "acme", aliceKey)
	_, err := s.erase(ctx, "kid."+id)
	require.NoError(t, err)
	first, _, err := e.open(Config{}).EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	second, _, err := e.open(Config{}).EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	_, err = s.erase(ctx, poolKeyName(first))
	require.NoError(t, err)

	destroyed, err := s.Destroy(ctx, "acme", aliceKey, []string{id, first, second})
	require.NoError(t, err)
	assert.True(t, destroyed)
	names, err := s.Bucket().Keys(ctx)
	if !errors.Is(err, jetstream.ErrNoKeysFound) {
		require.NoError(t, err)
	}
	for _, name := range []string{dataKeyName("acme", aliceKey), keyIDName(id), poolKeyName(first), poolKeyName(second)} {
		assert.NotContains(t, names, name)
	}
	assert.Empty(t, e.scan([]byte(id), []byte(aliceKey), []byte(first), []byte(second)))
}

// settle waits until no fill of s's pool is under way.
func settle(t *testing.T, s *Store) {
	t.Helper()
	require.Eventually(t, func() bool {
		s.pool.mu.Lock()
		defer s.pool.mu.Unlock()
		return s.pool.filling == nil
	}, 10*time.Second, 5*time.Millisecond)
}

func TestRotate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{PoolSize: 2})
	aliceID, alice, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	bobID, bob, err := s.EnsureDataKey(ctx, "acme", bobKey)
	require.NoError(t, err)
	// Carol's key was made by an earlier version: a person entry and an
	// id entry.
	carolID, carol := legacyKey(t, s, "acme", carolKey)
	secret, err := s.TenantSecret(ctx, "acme")
	require.NoError(t, err)

	newKEK, err := GenerateKEK(filepath.Join(t.TempDir(), "kek2.pem"))
	require.NoError(t, err)
	// Another instance already runs with the new KEK and the old one as
	// previous: it reads old records and writes new ones under the new KEK.
	other := e.open(Config{KEK: newKEK, PreviousKEKs: []*KEK{e.kek}, PoolSize: 2})
	got, err := other.KeyByID(ctx, "acme", aliceKey, aliceID)
	require.NoError(t, err)
	assert.Equal(t, alice, got)
	_, _, err = other.EnsureDataKey(ctx, "globex", aliceKey)
	require.NoError(t, err)
	settle(t, s)
	settle(t, other)

	names, err := s.Bucket().Keys(ctx)
	require.NoError(t, err)
	var oldValues [][]byte
	for _, name := range names {
		var rec record
		value := rawValue(t, s, name)
		require.NoError(t, json.Unmarshal(value, &rec))
		if rec.KEKID == e.kek.ID() {
			oldValues = append(oldValues, value)
		}
	}
	require.Greater(t, len(oldValues), 5, "alice's, bob's and the rest of the pool, carol's two entries, the tenant secret")
	require.Less(t, len(oldValues), len(names), "the other instance's pool is under the new KEK")

	n, err := s.Rotate(ctx, e.kek, newKEK)
	require.NoError(t, err)
	assert.Equal(t, len(oldValues), n)

	// Only the new KEK is needed now.
	fresh := e.open(Config{KEK: newKEK})
	for id, want := range map[string][]byte{aliceID: alice, bobID: bob, carolID: carol} {
		key, err := fresh.KeyByID(ctx, "acme", carolKey, id)
		require.NoError(t, err)
		assert.Equal(t, want, key)
	}
	gotSecret, err := fresh.TenantSecret(ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, secret, gotSecret)

	// One revision per key, and the records under the old KEK are erased.
	for _, name := range names {
		history, err := s.Bucket().History(ctx, name)
		require.NoError(t, err)
		assert.Len(t, history, 1, name)
		var rec record
		require.NoError(t, json.Unmarshal(history[0].Value(), &rec))
		assert.Equal(t, newKEK.ID(), rec.KEKID, name)
	}
	assert.Empty(t, e.scan(oldValues...))

	// The old KEK alone opens nothing, and names the KEK it lacks.
	_, err = e.open(Config{}).KeyByID(ctx, "acme", aliceKey, aliceID)
	var unknown *UnknownKEKError
	require.ErrorAs(t, err, &unknown)
	assert.Equal(t, newKEK.ID(), unknown.KEKID)
	assert.Contains(t, err.Error(), newKEK.ID())
	assert.Contains(t, err.Error(), poolKeyName(aliceID))

	// Again: nothing to do.
	n, err = s.Rotate(ctx, e.kek, newKEK)
	require.NoError(t, err)
	assert.Zero(t, n)
}

// TestRotateFinishesAnInterruptedRotation: a rewrapped revision written
// without the old one erased (a crash between the two steps) is cleaned up
// by the next Rotate.
func TestRotateFinishesAnInterruptedRotation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{})
	id, _, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	settle(t, s)
	name := poolKeyName(id)
	entry, err := s.Bucket().Get(ctx, name)
	require.NoError(t, err)
	old := entry.Value()
	// The first step of a rotation to the same KEK: a second revision.
	_, err = s.Bucket().Update(ctx, name, old, entry.Revision())
	require.NoError(t, err)

	newKEK, err := NewKEK(make([]byte, KEKSize))
	require.NoError(t, err)
	_, err = s.Rotate(ctx, e.kek, newKEK)
	require.NoError(t, err)
	history, err := s.Bucket().History(ctx, name)
	require.NoError(t, err)
	assert.Len(t, history, 1)
	assert.Empty(t, e.scan(old))
}

func TestRotateRefusesAThirdKEK(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{})
	_, _, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	k2, err := NewKEK(make([]byte, KEKSize))
	require.NoError(t, err)
	k3, err := GenerateKEK(filepath.Join(t.TempDir(), "kek3.pem"))
	require.NoError(t, err)
	_, err = s.Rotate(ctx, k2, k3)
	var unknown *UnknownKEKError
	require.ErrorAs(t, err, &unknown)
	assert.Equal(t, e.kek.ID(), unknown.KEKID)
}

// TestWrongKEK: a store given another KEK opens no record, naming the KEK
// id the record needs; a record copied to another entry does not open.
func TestWrongKEK(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{})
	id, _, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	_, err = s.TenantSecret(ctx, "acme")
	require.NoError(t, err)

	other, err := GenerateKEK(filepath.Join(t.TempDir(), "other.pem"))
	require.NoError(t, err)
	wrong := e.open(Config{KEK: other})
	var unknown *UnknownKEKError
	_, err = wrong.KeyByID(ctx, "acme", aliceKey, id)
	require.ErrorAs(t, err, &unknown)
	assert.Equal(t, e.kek.ID(), unknown.KEKID)
	assert.Equal(t, poolKeyName(id), unknown.Key)
	_, err = wrong.TenantSecret(ctx, "acme")
	require.ErrorAs(t, err, &unknown)

	// Alice's record copied to another entry, naming that entry's id,
	// does not open.
	var rec record
	require.NoError(t, json.Unmarshal(rawValue(t, s, poolKeyName(id)), &rec))
	rec.KeyID = bobKey
	value, err := json.Marshal(rec)
	require.NoError(t, err)
	_, err = s.Bucket().Create(ctx, poolKeyName(bobKey), value)
	require.NoError(t, err)
	_, err = s.KeyByID(ctx, "acme", bobKey, bobKey)
	assert.ErrorContains(t, err, "does not open under KEK "+e.kek.ID())
}

func TestTenantSecretStableAcrossReopen(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	kekPath := filepath.Join(t.TempDir(), "kek.pem")
	kek, err := GenerateKEK(kekPath)
	require.NoError(t, err)
	s := e.open(Config{KEK: kek})
	secret, err := s.TenantSecret(ctx, "acme")
	require.NoError(t, err)
	require.Len(t, secret, TenantSecretSize)
	other, err := s.TenantSecret(ctx, "globex")
	require.NoError(t, err)
	assert.NotEqual(t, secret, other)

	e.restart()
	loaded, err := LoadKEK(kekPath)
	require.NoError(t, err)
	s = e.open(Config{KEK: loaded})
	again, err := s.TenantSecret(ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, secret, again)

	// The keyer uses it; it differs from the unkeyed scheme.
	keyer := s.Keyer()
	var _ SubjectKeyer = keyer
	var _ SubjectKeyer = SHA256Keyer{}
	require.NoError(t, keyer.Load(ctx, "acme"))
	want := events.KeyedSubjectKey(secret, "alice@example.com")
	assert.Equal(t, want, keyer.SubjectKey("acme", "alice@example.com"))
	k, err := keyer.Key(ctx, "acme", "alice@example.com")
	require.NoError(t, err)
	assert.Equal(t, want, k)
	assert.NotEqual(t, want, keyer.SubjectKey("globex", "alice@example.com"))
	assert.Equal(t, events.SubjectKey("acme", "alice@example.com"), SHA256Keyer{}.SubjectKey("acme", "alice@example.com"))
	assert.Equal(t, "", keyer.SubjectKey("Not A Tenant", "alice@example.com"), "no secret, no key")
	_, err = keyer.Key(ctx, "Not A Tenant", "alice@example.com")
	assertFieldError(t, err, "tenant")
}

func TestTenantSecretRace(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 6
	secrets := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		s := e.open(Config{})
		wg.Go(func() {
			var err error
			secrets[i], err = s.TenantSecret(ctx, "acme")
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	for i := range n {
		assert.Equal(t, secrets[0], secrets[i])
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{})
	_, _, err := s.DataKey(ctx, "Acme", aliceKey)
	assertFieldError(t, err, "tenant")
	_, _, err = s.EnsureDataKey(ctx, "acme", "alice@example.com")
	assertFieldError(t, err, "subject_key")
	_, _, err = s.EnsureDataKey(ctx, "acme", "A59FC578D4CB46FAAB1D6EB348E7C74B")
	assertFieldError(t, err, "subject_key")
	_, err = s.Destroy(ctx, "acme", "a.b", nil)
	assertFieldError(t, err, "subject_key")
	_, err = s.Destroy(ctx, "acme", aliceKey, []string{aliceKey, "kid"})
	assertFieldError(t, err, "key_id")
	_, err = s.KeyByID(ctx, "acme", aliceKey, "kid")
	assertFieldError(t, err, "key_id")
	_, err = s.KeyByID(ctx, "Acme", aliceKey, aliceKey)
	assertFieldError(t, err, "tenant")
	_, err = s.KeyByID(ctx, "acme", "a.b", aliceKey)
	assertFieldError(t, err, "subject_key")
	_, err = s.TenantSecret(ctx, "")
	assertFieldError(t, err, "tenant")
}

func assertFieldError(t *testing.T, err error, field string) {
	t.Helper()
	var fe *events.FieldError
	if assert.ErrorAs(t, err, &fe) {
		assert.Equal(t, field, fe.Field)
	}
}

// TestSecureDeleteOfAMissingMessage: erasing a revision another instance
// erased first is not an error; a delete the server refuses is.
func TestSecureDeleteOfAMissingMessage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.open(Config{})
	id, _, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	entry, err := s.Bucket().Get(ctx, poolKeyName(id))
	require.NoError(t, err)
	require.NoError(t, s.secureDelete(ctx, entry.Revision()))
	assert.NoError(t, s.secureDelete(ctx, entry.Revision()), "already gone")
	assert.NoError(t, s.secureDelete(ctx, 1000), "past the end")

	js := natstest.JetStream(t, natstest.Connect(t, e.srv))
	std, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "std"})
	require.NoError(t, err)
	seq, err := std.Put(ctx, "k", []byte("v"))
	require.NoError(t, err)
	stream, err := js.Stream(ctx, "KV_std")
	require.NoError(t, err)
	denied := &Store{js: js, stream: stream}
	assert.ErrorIs(t, denied.secureDelete(ctx, seq), jetstream.ErrMsgDeleteUnsuccessful, "deletes denied")
}

// TestWatch: an instance that watches forgets the keys another instance
// destroys (the one it handed the person, and those it read by id), and
// forgets every cached key when its connection reconnects, since a notice
// may have been lost meanwhile.
func TestWatch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, other := e.open(Config{}), e.open(Config{})
	stop, err := other.Watch()
	require.NoError(t, err)
	t.Cleanup(stop)

	id, _, err := s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	_, err = other.KeyByID(ctx, "acme", aliceKey, id)
	require.NoError(t, err)
	otherID, _, err := other.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)

	_, err = s.Destroy(ctx, "acme", aliceKey, []string{id, otherID})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, _, err := other.DataKey(ctx, "acme", aliceKey)
		return errors.Is(err, ErrNoDataKey)
	}, 5*time.Second, 10*time.Millisecond)
	for _, id := range []string{id, otherID} {
		_, err = other.KeyByID(ctx, "acme", aliceKey, id)
		assert.ErrorIs(t, err, ErrDestroyed)
	}
	newID, _, err := other.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
	assert.NotContains(t, []string{id, otherID}, newID, "a fresh key after the erasure")

	// A key erased with no notice (as if it was lost) stays cached until
	// the connection reconnects.
	bobID, _, err := s.EnsureDataKey(ctx, "acme", bobKey)
	require.NoError(t, err)
	_, err = other.KeyByID(ctx, "acme", bobKey, bobID)
	require.NoError(t, err)
	_, err = s.erase(ctx, poolKeyName(bobID))
	require.NoError(t, err)
	_, err = other.KeyByID(ctx, "acme", bobKey, bobID)
	require.NoError(t, err, "still cached")
	require.NoError(t, other.js.Conn().ForceReconnect())
	require.Eventually(t, func() bool {
		_, err := other.KeyByID(ctx, "acme", bobKey, bobID)
		return errors.Is(err, ErrDestroyed)
	}, 10*time.Second, 10*time.Millisecond)
	_, _, err = other.DataKey(ctx, "acme", aliceKey)
	assert.ErrorIs(t, err, ErrNoDataKey, "the key handed out is forgotten too")

	stop()
	_, _, err = s.EnsureDataKey(ctx, "acme", aliceKey)
	require.NoError(t, err)
}

func TestRotateEmptyBucket(t *testing.T) {
	e := newEnv(t)
	s := e.open(Config{})
	newKEK, err := NewKEK(make([]byte, KEKSize))
	require.NoError(t, err)
	n, err := s.Rotate(context.Background(), e.kek, newKEK)
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = s.Rotate(context.Background(), nil, newKEK)
	assert.ErrorContains(t, err, "needs the old and the new KEK")
}
