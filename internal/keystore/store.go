// Package keystore keeps the keys that make personal data erasable: a data
// key per person, which encrypts that person's fields in events, and a
// secret per tenant, which keys the subject keys in NATS subjects. Both are
// kept in a JetStream KV bucket wrapped under a key-encryption key (KEK)
// that lives in a file outside NATS. Destroy erases every copy of a
// person's data keys from the bucket's files (crypto-shredding); what it
// cannot reach is in docs/privacy.md, section Keys.
//
// The bucket holds:
//
//	pk.<key id>                a data key: {key_id, kek_id, wrapped}
//	tk.<tenant>                the tenant's HMAC secret: {kek_id, wrapped}
//
// Data keys are made ahead of demand, in batches, into a pool in each
// store's memory (create.go); EnsureDataKey hands a person a key of the
// pool, so a person's first event waits for no write of a key. A person
// may have several keys (one per process that wrote for them); a sealed
// event names its key by id, and carries the tenant and subject key, and
// erasing a person destroys the keys of every id the person's events
// name (Destroy). Buckets written by earlier versions also hold
// dk.<tenant>.<subject key> (one key per person) and kid.<key id>
// entries: KeyByID reads them, Destroy erases them, nothing writes them.
//
// The subject key is the keyed one (SubjectKey), never a raw id. Entries
// are created once (create-only) and never overwritten except by Rotate.
package keystore

import (
	"cmp"
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
	// ErrNoDataKey: this store has handed the person no data key (or
	// forgot it). EnsureDataKey hands one out.
	ErrNoDataKey = errors.New("keystore: no data key for this person")
	// ErrDestroyed (matching events.ErrKeyErased): the key with this id is
	// gone. Key ids are random and only handed out with a stored key, so
	// an id no entry holds belonged to a key that Destroy erased.
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
	// PoolSize is how many data keys the store makes ahead of demand
	// (DefaultPoolSize if 0; at most 1000): it refills the pool when
	// fewer than half are left. The keys of the pool are never used once
	// the process ends.
	PoolSize int
}

// Store is the key store. It is safe for concurrent use; several instances
// (processes) may share one bucket.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	kv     jetstream.KeyValue

	// pool holds the keys made ahead of demand; atomic says the bucket's
	// stream allows atomic batches.
	pool   pool
	atomic bool
	// direct says the bucket has one replica: get reads with direct gets.
	direct bool

	mu      sync.Mutex
	kek     *KEK
	keks    map[string]*KEK    // by id: kek and the previous ones
	byCur   map[string]dataKey // person (cacheName) -> the key handed to them
	byID    map[string]dataKey // key id -> a key KeyByID read, with its person
	secrets map[string][]byte  // tenant -> HMAC secret
}

type dataKey struct {
	id     string
	key    []byte
	person string // in byID: the cacheName of the person whose event named it
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
		byID:    map[string]dataKey{},
		secrets: map[string][]byte{},
		atomic:  got.AllowAtomicPublish,
		direct:  got.Replicas <= 1 && got.AllowDirect,
	}
	for _, k := range cfg.PreviousKEKs {
		s.keks[k.ID()] = k
	}
	s.pool.size = min(cmp.Or(max(cfg.PoolSize, 0), DefaultPoolSize), maxCreateBatch)
	return s, nil
}

// Bucket returns the bound KV bucket (for tests and tools; writing to it
// directly bypasses the wrapping).
func (s *Store) Bucket() jetstream.KeyValue { return s.kv }

func poolKeyName(id string) string                 { return "pk." + id }
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

// DataKey returns the key this store seals the person's new events
// under: the one EnsureDataKey handed to the person in this process, until
// Destroy, Forget or a notice (Watch) drops it. It returns ErrNoDataKey if
// there is none (it reads no entry), and a *events.FieldError for a bad
// tenant or subject key. The caller owns the returned slice.
func (s *Store) DataKey(ctx context.Context, tenant, subjectKey string) (string, []byte, error) {
	if err := checkPerson(tenant, subjectKey); err != nil {
		return "", nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dk, ok := s.byCur[cacheName(tenant, subjectKey)]
	if !ok {
		return "", nil, ErrNoDataKey
	}
	return dk.id, clone(dk.key), nil
}

// EnsureDataKey returns the key this store seals the person's new events
// under, handing the person a key of the pool (create.go) if it has none
// for them: a key whose entry pk.<id> is durable before it is handed out,
// so no event is sealed under a key that a crash can lose, and which no
// other person and no other process is given. Only when the pool is empty
// does it wait, for the entries being made. A person thus gets a new key
// in each process that writes for them (and after Forget); Destroy
// erases them all by the ids their events name. It returns a
// *events.FieldError for a bad tenant or subject key, ctx's error, and
// the bucket's when no pool key could be made. The caller owns the
// returned slice.
func (s *Store) EnsureDataKey(ctx context.Context, tenant, subjectKey string) (string, []byte, error) {
	id, key, err := s.DataKey(ctx, tenant, subjectKey)
	if !errors.Is(err, ErrNoDataKey) {
		return id, key, err
	}
	dk, err := s.take(ctx)
	if err != nil {
		return "", nil, err
	}
	c := cacheName(tenant, subjectKey)
	s.mu.Lock()
	if cur, ok := s.byCur[c]; ok {
		// A concurrent call handed the person a key first: use it, and
		// keep this one for another person.
		s.mu.Unlock()
		s.putBack(dk)
		return cur.id, clone(cur.key), nil
	}
	if len(s.byCur) >= maxCached {
		s.byCur = map[string]dataKey{}
	}
	s.byCur[c] = dataKey{id: dk.id, key: clone(dk.key)}
	s.mu.Unlock()
	return dk.id, dk.key, nil
}

// KeyByID returns the data key with the given id, to open an event sealed
// under it (the event names the tenant, the subject key and the key id):
// the pool entry pk.<id>, else the person's entry dk.<tenant>.<subject
// key> if it holds that id, else an id entry kid.<id> (the last two are
// written by earlier versions only). It returns ErrDestroyed if none is
// there: key ids are random and only handed out with a stored key, so
// the key was destroyed. It returns a *events.FieldError naming "key_id"
// if id is not 32 lowercase hex digits, one for a bad tenant or subject
// key, an *UnknownKEKError if the key is wrapped under a KEK the store
// was not given, and the bucket's errors. The caller owns the returned
// slice.
func (s *Store) KeyByID(ctx context.Context, tenant, subjectKey, id string) ([]byte, error) {
	if err := checkPerson(tenant, subjectKey); err != nil {
		return nil, err
	}
	if !isHex32(id) {
		return nil, &events.FieldError{Field: "key_id", Problem: "must be 32 lowercase hex digits"}
	}
	person := cacheName(tenant, subjectKey)
	s.mu.Lock()
	dk, ok := s.byCur[person]
	if !ok || dk.id != id {
		dk, ok = s.byID[id]
	}
	key := clone(dk.key)
	s.mu.Unlock()
	if ok {
		return key, nil
	}
	for _, name := range []string{poolKeyName(id), dataKeyName(tenant, subjectKey), keyIDName(id)} {
		value, err := s.get(ctx, name)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var rec record
		if err := json.Unmarshal(value, &rec); err != nil || !isHex32(rec.KeyID) {
			return nil, fmt.Errorf("keystore: %s is not a data key record", name)
		}
		if rec.KeyID != id {
			continue // the person's entry holds another key
		}
		key, err := s.unwrap(name, rec, dataKeyAAD(name, id))
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if len(s.byID) >= maxCached {
			s.byID = map[string]dataKey{}
		}
		s.byID[id] = dataKey{id: id, key: key, person: person}
		s.mu.Unlock()
		return clone(key), nil
	}
	return nil, ErrDestroyed
}

// Destroy erases the person's data keys with the given ids (every key id
// the person's events name) from the bucket: the pool entries pk.<id>,
// and the entries of earlier versions (kid.<id>, and the person's
// dk.<tenant>.<subject key> with the kid entries it names), every
// revision with a secure delete (the server overwrites the message on
// disk), then checks that none is left. It forgets the person's key and
// the keys of ids in this store's cache and tells other instances that
// Watch, before it erases (so they stop sealing under them) and after. It
// returns whether anything was destroyed, so destroying a person without
// keys, or again, is not an error; a Destroy cut short is finished by
// calling it again with the same ids. It returns ErrReplicasBehind,
// destroying nothing, if a key is there and a replica of the bucket is
// not current, and a *events.FieldError for a bad tenant, subject key or
// key id ("key_id").
func (s *Store) Destroy(ctx context.Context, tenant, subjectKey string, ids []string) (bool, error) {
	if err := checkPerson(tenant, subjectKey); err != nil {
		return false, err
	}
	for _, id := range ids {
		if !isHex32(id) {
			return false, &events.FieldError{Field: "key_id", Problem: "must be 32 lowercase hex digits"}
		}
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	s.forget(tenant, subjectKey, ids)
	s.notifyForget(tenant, subjectKey, ids)

	person := dataKeyName(tenant, subjectKey)
	history, err := s.history(ctx, person)
	if err != nil {
		return false, err
	}
	// The person's entry of an earlier version names its kid entries.
	legacy := map[string]bool{}
	for _, rev := range history {
		var rec record
		if json.Unmarshal(rev.value, &rec) == nil && isHex32(rec.KeyID) {
			legacy[rec.KeyID] = true
		}
	}
	// The entries by id first: if Destroy stops half way, the person's
	// entry and the events still name them, and Destroy again finds them.
	var names []string
	for _, id := range ids {
		names = append(names, poolKeyName(id), keyIDName(id))
		delete(legacy, id)
	}
	for _, id := range slices.Sorted(maps.Keys(legacy)) {
		names = append(names, keyIDName(id))
	}
	present := len(history) > 0
	for _, name := range names {
		if present {
			break
		}
		revs, err := s.history(ctx, name)
		if err != nil {
			return false, err
		}
		present = len(revs) > 0
	}
	if !present {
		return false, nil
	}
	if err := s.checkReplicas(ctx); err != nil {
		return false, err
	}
	destroyed := false
	for _, name := range append(names, person) {
		did, err := s.erase(ctx, name)
		if err != nil {
			return destroyed, err
		}
		destroyed = destroyed || did
	}
	s.forget(tenant, subjectKey, ids)
	if destroyed {
		s.notifyForget(tenant, subjectKey, ids)
	}
	return destroyed, nil
}

// Forget drops the person's keys from this store's cache (the one handed
// to the person, and those KeyByID read for the person's events), so the
// next EnsureDataKey hands the person a new key and KeyByID reads the
// bucket. Destroy calls it, and Watch when another instance destroys a
// key.
func (s *Store) Forget(tenant, subjectKey string) { s.forget(tenant, subjectKey, nil) }

// forget drops the person's keys and the keys of ids from this store's
// cache.
func (s *Store) forget(tenant, subjectKey string, ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := cacheName(tenant, subjectKey)
	if dk, ok := s.byCur[c]; ok {
		clear(dk.key)
		delete(s.byCur, c)
	}
	for id, dk := range s.byID {
		if dk.person == c || slices.Contains(ids, id) {
			clear(dk.key)
			delete(s.byID, id)
		}
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

func clone(b []byte) []byte { return append([]byte(nil), b...) }
