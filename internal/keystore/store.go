// Package keystore keeps the keys that make personal data erasable: a data
// key per person, which encrypts that person's fields in events, and a
// secret per tenant, which keys the subject keys in NATS subjects. Both are
// kept in a JetStream KV bucket wrapped under a key-encryption key (KEK)
// that lives in a file outside NATS. Destroy erases every copy of a
// person's data key from the bucket's files (crypto-shredding); what it
// cannot reach is in docs/privacy.md, section Keys.
//
// The bucket holds:
//
//	dk.<tenant>.<subject key>  the person's data key: {key_id, kek_id, wrapped}
//	tk.<tenant>                the tenant's HMAC secret: {kek_id, wrapped}
//
// A sealed event names its key by id, and carries the tenant and subject
// key: it opens with the person's entry when that entry holds the id
// (KeyByID). Buckets written before this layout also hold kid.<key id>
// entries, the same key by id; nothing reads them, Destroy erases them.
//
// The subject key is the keyed one (SubjectKey), never a raw id. Entries
// are created once (create-only, concurrent creations gathered into one
// atomic batch: create.go) and never overwritten except by Rotate.
package keystore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// DefaultBucket is the KV bucket of the keys; its stream is
	// KV_consent_keys.
	DefaultBucket = "consent_keys"
	// History is the bucket's history per key. Only Rotate writes a second
	// revision, and it erases the first at once; the margin keeps a key
	// from being dropped by the per-subject limit (which does not erase)
	// if a rotation stops between the two steps.
	History = 4
	// DataKeySize is the size of a data key: AES-256.
	DataKeySize = 32
	// TenantSecretSize is the size of a tenant's HMAC secret.
	TenantSecretSize = 32
	// maxCached bounds the cache of unwrapped data keys; past it the cache
	// starts again empty.
	maxCached = 100_000
)

var (
	// ErrNoDataKey: the person has no data key (never had one, or it was
	// destroyed). EnsureDataKey makes one.
	ErrNoDataKey = errors.New("keystore: no data key for this person")
	// ErrDestroyed (matching events.ErrKeyErased): the person's key with
	// this id is gone. Key ids are random and only handed out with a
	// stored key, and a person has one key at a time, so an id the
	// person's entry does not hold belonged to a key that Destroy erased.
	ErrDestroyed = fmt.Errorf("keystore: %w", events.ErrKeyErased)
	// ErrReplicasBehind: a replica of the bucket is not current, so an
	// erase now would leave the key on its disk (it would catch up from a
	// snapshot, which deletes without erasing). Nothing was destroyed.
	ErrReplicasBehind = errors.New("keystore: a replica of the key bucket is behind")
)

// UnknownKEKError: a record is wrapped under a KEK the store was not given.
type UnknownKEKError struct {
	KEKID string // the KEK id the record names
	Key   string // the bucket key of the record
}

func (e *UnknownKEKError) Error() string {
	return fmt.Sprintf("keystore: %s is wrapped under KEK %s, which this store was not given (load that KEK file as a previous KEK)", e.Key, e.KEKID)
}

// Config configures Open.
type Config struct {
	// KEK wraps every new key and every key Rotate rewraps. Required.
	KEK *KEK
	// PreviousKEKs may unwrap records but wrap nothing: give the old KEK
	// here between switching instances to a new KEK and Rotate.
	PreviousKEKs []*KEK
	// Bucket defaults to DefaultBucket.
	Bucket string
	// Replicas of the bucket's stream when Open creates it: 1 (the
	// default) on a single server, 3 on a cluster. Open does not change an
	// existing bucket.
	Replicas int
	// Storage defaults to file storage.
	Storage jetstream.StorageType
}

// Store is the key store. It is safe for concurrent use; several instances
// (processes) may share one bucket.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	kv     jetstream.KeyValue

	// creates gathers the creations of new persons' entries; atomic says
	// the bucket's stream allows atomic batches.
	creates creates
	atomic  bool
	// direct says the bucket has one replica: get reads with direct gets.
	direct bool

	mu      sync.Mutex
	kek     *KEK
	keks    map[string]*KEK // by id: kek and the previous ones
	byCur   map[string]dataKey
	secrets map[string][]byte // tenant -> HMAC secret
}

type dataKey struct {
	id  string
	key []byte
}

// record is the JSON value of every entry. Wrapped is base64 in JSON.
type record struct {
	KeyID   string `json:"key_id,omitempty"`
	KEKID   string `json:"kek_id"`
	Wrapped []byte `json:"wrapped"`
}

// StreamConfig is the configuration of the bucket's stream: what nats.go's
// CreateKeyValue sets for a bucket with History revisions, except that it
// allows message deletion (which the erase needs; nats.go denies it and a
// stream update cannot allow it afterwards), never compresses, and allows
// atomic batches (the creations of new keys).
func StreamConfig(bucket string, replicas int, storage jetstream.StorageType) jetstream.StreamConfig {
	if replicas == 0 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:               "KV_" + bucket,
		Description:        "consent ledger keys (erasable; see docs/privacy.md)",
		Subjects:           []string{"$KV." + bucket + ".>"},
		MaxMsgsPerSubject:  History,
		MaxBytes:           -1,
		MaxMsgSize:         -1,
		MaxMsgs:            -1,
		MaxConsumers:       -1,
		Storage:            storage,
		Replicas:           replicas,
		AllowRollup:        true,
		DenyDelete:         false,
		Duplicates:         2 * time.Minute,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		Compression:        jetstream.NoCompression,
		Discard:            jetstream.DiscardNew,
	}
}

// Open binds the key bucket, creating its stream (StreamConfig) if it does
// not exist. It returns an error if js cannot reach JetStream, or if an
// existing stream denies deletes or compresses (a bucket made by nats.go's
// CreateKeyValue cannot be erased: delete it and let Open make it).
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	if cfg.KEK == nil {
		return nil, errors.New("keystore: Config.KEK is required")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	scfg := StreamConfig(cfg.Bucket, cfg.Replicas, cfg.Storage)
	stream, err := js.Stream(ctx, scfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = js.CreateStream(ctx, scfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			stream, err = js.Stream(ctx, scfg.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: stream %s: %w", scfg.Name, err)
	}
	got := stream.CachedInfo().Config
	if got.DenyDelete {
		return nil, fmt.Errorf("keystore: stream %s denies deletes, so no key in it can be erased (made by CreateKeyValue?); delete the stream and let consentd create it", scfg.Name)
	}
	if got.Compression != jetstream.NoCompression {
		return nil, fmt.Errorf("keystore: stream %s is compressed; the erase of a key needs it uncompressed", scfg.Name)
	}
	if !got.AllowAtomicPublish {
		// A bucket made before new keys were created in batches: allow
		// them. A server that cannot (before 2.12) keeps creating them
		// one by one.
		upd := got
		upd.AllowAtomicPublish = true
		if updated, err := js.UpdateStream(ctx, upd); err == nil {
			stream, got = updated, updated.CachedInfo().Config
		}
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("keystore: bucket %s: %w", cfg.Bucket, err)
	}
	s := &Store{
		js: js, stream: stream, kv: kv,
		kek:     cfg.KEK,
		keks:    map[string]*KEK{cfg.KEK.ID(): cfg.KEK},
		byCur:   map[string]dataKey{},
		secrets: map[string][]byte{},
		atomic:  got.AllowAtomicPublish,
		direct:  got.Replicas <= 1 && got.AllowDirect,
	}
	for _, k := range cfg.PreviousKEKs {
		s.keks[k.ID()] = k
	}
	return s, nil
}

// Bucket returns the bound KV bucket (for tests and tools; writing to it
// directly bypasses the wrapping).
func (s *Store) Bucket() jetstream.KeyValue { return s.kv }

func dataKeyName(tenant, subjectKey string) string { return "dk." + tenant + "." + subjectKey }
func keyIDName(id string) string                   { return "kid." + id }
func tenantName(tenant string) string              { return "tk." + tenant }

// The additional data of a wrapped key binds it to its bucket key and id,
// so a record copied to another entry does not open.
func dataKeyAAD(name, id string) []byte  { return []byte("consent-keystore " + name + " " + id) }
func tenantAAD(tenant string) []byte     { return []byte("consent-keystore " + tenantName(tenant)) }
func cacheName(tenant, sk string) string { return tenant + "/" + sk }

// checkPerson validates a tenant and a subject key: 32 lowercase hex
// digits, as both subject key schemes give.
func checkPerson(tenant, subjectKey string) error {
	if err := events.ValidateName("tenant", tenant); err != nil {
		return err
	}
	if !isHex32(subjectKey) {
		return &events.FieldError{Field: "subject_key", Problem: "must be 32 lowercase hex digits"}
	}
	return nil
}

func isHex32(v string) bool {
	if len(v) != 32 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !(v[i] >= '0' && v[i] <= '9' || v[i] >= 'a' && v[i] <= 'f') {
			return false
		}
	}
	return true
}

// DataKey returns the person's current data key and its id. It returns
// ErrNoDataKey if the person has none, an *UnknownKEKError if the key is
// wrapped under a KEK the store was not given, and a *events.FieldError
// for a bad tenant or subject key. The caller owns the returned slice.
func (s *Store) DataKey(ctx context.Context, tenant, subjectKey string) (string, []byte, error) {
	if err := checkPerson(tenant, subjectKey); err != nil {
		return "", nil, err
	}
	s.mu.Lock()
	dk, ok := s.byCur[cacheName(tenant, subjectKey)]
	key := clone(dk.key)
	s.mu.Unlock()
	if ok {
		return dk.id, key, nil
	}
	name := dataKeyName(tenant, subjectKey)
	value, err := s.get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil, ErrNoDataKey
	}
	if err != nil {
		return "", nil, err
	}
	return s.openDataKey(tenant, subjectKey, name, value)
}

// openDataKey unwraps the data key record value of bucket key name and
// caches it for the person (tenant, subjectKey).
func (s *Store) openDataKey(tenant, subjectKey, name string, value []byte) (string, []byte, error) {
	var rec record
	if err := json.Unmarshal(value, &rec); err != nil || !isHex32(rec.KeyID) {
		return "", nil, fmt.Errorf("keystore: %s is not a data key record", name)
	}
	key, err := s.unwrap(name, rec, dataKeyAAD(name, rec.KeyID))
	if err != nil {
		return "", nil, err
	}
	s.remember(tenant, subjectKey, rec.KeyID, key)
	return rec.KeyID, clone(key), nil
}

// EnsureDataKey returns the person's current data key, making one if the
// person has none: a single entry, created only if absent and durable
// before EnsureDataKey returns, so instances racing to make the key get the
// same one and no event is sealed under a key that a crash can lose.
// Concurrent creations for different persons are stored together (one
// atomic batch, so one disk flush). Errors as DataKey, plus the bucket's.
// The caller owns the returned slice.
func (s *Store) EnsureDataKey(ctx context.Context, tenant, subjectKey string) (string, []byte, error) {
	id, key, err := s.DataKey(ctx, tenant, subjectKey)
	if !errors.Is(err, ErrNoDataKey) {
		return id, key, err
	}
	c, err := s.create(tenant, subjectKey)
	if err != nil {
		return "", nil, err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		// The creation goes on; the next call finds its outcome.
		return "", nil, ctx.Err()
	}
	switch {
	case errors.Is(c.err, jetstream.ErrKeyExists):
		// Another instance made the person's key first: use it.
		return s.DataKey(ctx, tenant, subjectKey)
	case c.err != nil:
		return "", nil, fmt.Errorf("keystore: create %s: %w", c.name, c.err)
	}
	return c.id, clone(c.key), nil
}

// KeyByID returns the person's data key with the given id, to open an
// event sealed under it (the event names the tenant, the subject key and
// the key id). It returns ErrDestroyed if the person's key has another id
// or the person has none: key ids are random and a person has one key at a
// time, so an event's key that is not the person's was destroyed. It
// returns a *events.FieldError naming "key_id" if id is not 32 lowercase
// hex digits, errors as DataKey for a bad person or an unknown KEK, and the
// bucket's. The caller owns the returned slice.
func (s *Store) KeyByID(ctx context.Context, tenant, subjectKey, id string) ([]byte, error) {
	if err := checkPerson(tenant, subjectKey); err != nil {
		return nil, err
	}
	if !isHex32(id) {
		return nil, &events.FieldError{Field: "key_id", Problem: "must be 32 lowercase hex digits"}
	}
	s.mu.Lock()
	dk, ok := s.byCur[cacheName(tenant, subjectKey)]
	key := clone(dk.key)
	s.mu.Unlock()
	if ok && dk.id == id {
		return key, nil
	}
	// Not cached, or cached with another id: the bucket decides (another
	// instance may have destroyed the person's key and made a new one).
	name := dataKeyName(tenant, subjectKey)
	value, err := s.get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrDestroyed
	}
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(value, &rec); err != nil || !isHex32(rec.KeyID) {
		return nil, fmt.Errorf("keystore: %s is not a data key record", name)
	}
	if rec.KeyID != id {
		return nil, ErrDestroyed
	}
	_, key, err = s.openDataKey(tenant, subjectKey, name, value)
	return key, err
}

// Destroy erases the person's data keys from the bucket: every revision of
// the person's entry and of the id entries it names (buckets written
// before one entry per person), with a secure delete
// (the server overwrites the message on disk), then checks that none is
// left. It forgets the keys in this store's cache and tells other
// instances that Watch. It returns whether anything was destroyed, so
// destroying a person without a key is not an error. It returns
// ErrReplicasBehind, destroying nothing, if the person has a key and a
// replica of the bucket is not current, and a *events.FieldError for a bad tenant or subject key.
func (s *Store) Destroy(ctx context.Context, tenant, subjectKey string) (bool, error) {
	if err := checkPerson(tenant, subjectKey); err != nil {
		return false, err
	}
	name := dataKeyName(tenant, subjectKey)
	history, err := s.history(ctx, name)
	if err != nil {
		return false, err
	}
	if len(history) == 0 {
		s.Forget(tenant, subjectKey)
		return false, nil
	}
	if err := s.checkReplicas(ctx); err != nil {
		return false, err
	}
	// The id entries first: if Destroy stops half way, the person's entry
	// still names them, and Destroy again finds them.
	ids := map[string]bool{}
	for _, rev := range history {
		var rec record
		if json.Unmarshal(rev.value, &rec) == nil && isHex32(rec.KeyID) {
			ids[rec.KeyID] = true
		}
	}
	destroyed := false
	for id := range ids {
		did, err := s.erase(ctx, keyIDName(id))
		if err != nil {
			return destroyed, err
		}
		destroyed = destroyed || did
	}
	did, err := s.erase(ctx, name)
	if err != nil {
		return destroyed, err
	}
	destroyed = destroyed || did
	idList := slices.Sorted(maps.Keys(ids))
	s.Forget(tenant, subjectKey)
	if destroyed {
		s.notifyForget(tenant, subjectKey, idList)
	}
	return destroyed, nil
}

// Forget drops the person's current data key from this store's cache, so
// the next DataKey reads the bucket. Destroy calls it, and Watch when
// another instance destroys a key.
func (s *Store) Forget(tenant, subjectKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := cacheName(tenant, subjectKey)
	if dk, ok := s.byCur[c]; ok {
		clear(dk.key)
		delete(s.byCur, c)
	}
}

// checkReplicas returns ErrReplicasBehind (wrapped, naming the replica) if
// a replica of the bucket's stream is offline or lags.
func (s *Store) checkReplicas(ctx context.Context) error {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("keystore: stream info: %w", err)
	}
	if info.Cluster == nil {
		return nil
	}
	if info.Config.Replicas > 1 && len(info.Cluster.Replicas) < info.Config.Replicas-1 {
		return fmt.Errorf("%w: %d of %d replicas answer", ErrReplicasBehind, len(info.Cluster.Replicas)+1, info.Config.Replicas)
	}
	for _, r := range info.Cluster.Replicas {
		if !r.Current || r.Offline || r.Lag != 0 {
			return fmt.Errorf("%w: %s (current %t, offline %t, lag %d)", ErrReplicasBehind, r.Name, r.Current, r.Offline, r.Lag)
		}
	}
	return nil
}

// erase securely deletes every revision of a bucket key and checks that
// none is left. It reports whether it deleted anything.
func (s *Store) erase(ctx context.Context, name string) (bool, error) {
	erased := false
	// A revision written while erasing (a racing EnsureDataKey) is erased
	// in the next round.
	for range 5 {
		entries, err := s.history(ctx, name)
		if err != nil {
			return erased, err
		}
		if len(entries) == 0 {
			return erased, nil
		}
		for _, rev := range entries {
			if err := s.secureDelete(ctx, rev.seq); err != nil {
				return erased, fmt.Errorf("keystore: erase %s revision %d: %w", name, rev.seq, err)
			}
			erased = true
		}
	}
	return erased, fmt.Errorf("keystore: %s still has revisions after erasing 5 times", name)
}

// secureDelete overwrites message seq on disk and removes it. A message
// already gone (another instance erased it) is not an error; the server
// answers a delete of a missing message with an error string only, so a
// failed delete is followed by a look whether the message is still there.
func (s *Store) secureDelete(ctx context.Context, seq uint64) error {
	err := s.stream.SecureDeleteMsg(ctx, seq)
	if err == nil || !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		return err
	}
	if _, getErr := s.leaderGet(ctx, msgGetRequest{Seq: seq}); getErr == jetstream.ErrMsgNotFound {
		return nil
	}
	return err
}

// TenantSecret returns the tenant's HMAC secret for keyed subject keys,
// making it on first use (instances racing get the same one). It is never
// destroyed. Errors: a *events.FieldError for a bad tenant, an
// *UnknownKEKError, or the bucket's. The caller owns the returned slice.
func (s *Store) TenantSecret(ctx context.Context, tenant string) ([]byte, error) {
	if err := events.ValidateName("tenant", tenant); err != nil {
		return nil, err
	}
	s.mu.Lock()
	secret, ok := s.secrets[tenant]
	s.mu.Unlock()
	if ok {
		return clone(secret), nil // secrets are never cleared
	}
	name := tenantName(tenant)
	value, err := s.get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		secret = make([]byte, TenantSecretSize)
		_, _ = rand.Read(secret)
		s.mu.Lock()
		rec := record{KEKID: s.kek.ID(), Wrapped: s.kek.wrap(secret, tenantAAD(tenant))}
		s.mu.Unlock()
		value, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		_, err = s.kv.Create(ctx, name, value)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return s.TenantSecret(ctx, tenant) // another instance was first
		}
		if err != nil {
			return nil, fmt.Errorf("keystore: create %s: %w", name, err)
		}
	} else if err != nil {
		return nil, err
	} else {
		var rec record
		if err := json.Unmarshal(value, &rec); err != nil {
			return nil, fmt.Errorf("keystore: %s is not a tenant secret record", name)
		}
		if secret, err = s.unwrap(name, rec, tenantAAD(tenant)); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.secrets[tenant] = secret
	s.mu.Unlock()
	return clone(secret), nil
}

// unwrap opens a record with the KEK it names.
func (s *Store) unwrap(name string, rec record, aad []byte) ([]byte, error) {
	s.mu.Lock()
	kek, ok := s.keks[rec.KEKID]
	s.mu.Unlock()
	if !ok {
		return nil, &UnknownKEKError{KEKID: rec.KEKID, Key: name}
	}
	plain, err := kek.unwrap(rec.Wrapped, aad)
	if err != nil {
		return nil, fmt.Errorf("keystore: %s does not open under KEK %s: %w", name, rec.KEKID, err)
	}
	return plain, nil
}

// remember caches a person's current data key.
func (s *Store) remember(tenant, subjectKey, id string, key []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byCur) >= maxCached {
		s.byCur = map[string]dataKey{}
	}
	s.byCur[cacheName(tenant, subjectKey)] = dataKey{id: id, key: clone(key)}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
