package ledger

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/nats.go/jetstream"
)

// TenantSecrets gives a tenant's secret for keyed subject keys
// (events.SubjectKeyHMAC): internal/keystore's Store. The caller owns the
// returned slice.
type TenantSecrets interface {
	TenantSecret(ctx context.Context, tenant string) ([]byte, error)
}

// SubjectKeys turns a person's id into the subject key of the NATS
// subjects of the person's consents, under one stream's scheme. Every
// Ledger method and Service endpoint that takes a person's id resolves it
// here first: the events.Key it uses carries the subject key, so that
// Token and NATSSubject never compute a key of another scheme. It is
// safe for concurrent use; it keeps each tenant's secret (in its HMAC
// states) for its lifetime, as the key store does.
type SubjectKeys struct {
	scheme  events.SubjectKeyScheme
	secrets TenantSecrets // SubjectKeyHMAC only
	// macs holds, per tenant, a pool of HMAC-SHA-256 states keyed with the
	// tenant's secret (which is never destroyed): a key costs a Reset and
	// the id's bytes, not the key schedule and its allocations.
	macs sync.Map // tenant -> *sync.Pool of hash.Hash
}

// ErrNoTenantSecrets is matched by the error NewSubjectKeys returns for
// the scheme events.SubjectKeyHMAC without a store of tenant secrets.
var ErrNoTenantSecrets = errors.New("keyed subject keys need the key store")

// NewSubjectKeys returns the subject keys of scheme. secrets is needed by
// events.SubjectKeyHMAC only (nil is an error matching ErrNoTenantSecrets);
// an unknown scheme is an error too.
func NewSubjectKeys(scheme events.SubjectKeyScheme, secrets TenantSecrets) (*SubjectKeys, error) {
	switch scheme {
	case events.SubjectKeySHA256:
		return &SubjectKeys{scheme: scheme}, nil
	case events.SubjectKeyHMAC:
		if secrets == nil {
			return nil, fmt.Errorf("%w: the stream keys its subjects with %s (HMAC under each tenant's secret), which only a ledger with the key store (Options.Keys; consentd's --kek-file) can compute", ErrNoTenantSecrets, scheme)
		}
		return &SubjectKeys{scheme: scheme, secrets: secrets}, nil
	}
	return nil, fmt.Errorf("unknown subject key scheme %q (known: %s, %s)", scheme, events.SubjectKeySHA256, events.SubjectKeyHMAC)
}

// Scheme returns the scheme the keys are computed by.
func (k *SubjectKeys) Scheme() events.SubjectKeyScheme { return k.scheme }

// Token returns the subject key of the person subjectID (normalised
// already) of tenant. Errors: the tenant secret's (a *events.FieldError
// for a bad tenant, the key store's).
func (k *SubjectKeys) Token(ctx context.Context, tenant, subjectID string) (string, error) {
	if k.scheme == events.SubjectKeySHA256 {
		return events.SubjectKey(tenant, subjectID), nil
	}
	pool, err := k.macPool(ctx, tenant)
	if err != nil {
		return "", err
	}
	mac := pool.Get().(hash.Hash)
	defer pool.Put(mac)
	mac.Reset()
	mac.Write([]byte(subjectID))
	// events.KeyedSubjectKey, with a state kept across calls.
	var sum [sha256.Size]byte
	return hex.EncodeToString(mac.Sum(sum[:0])[:16]), nil
}

// macPool returns the pool of HMAC states of tenant, loading its secret
// on first use.
func (k *SubjectKeys) macPool(ctx context.Context, tenant string) (*sync.Pool, error) {
	if pool, ok := k.macs.Load(tenant); ok {
		return pool.(*sync.Pool), nil
	}
	secret, err := k.secrets.TenantSecret(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("tenant secret of %s: %w", tenant, err)
	}
	pool, _ := k.macs.LoadOrStore(tenant, &sync.Pool{New: func() any { return hmac.New(sha256.New, secret) }})
	return pool.(*sync.Pool), nil
}

// Resolve returns key, which names a person by id, with its SubjectKey
// set to the person's subject key. A key that has a SubjectKey already is
// returned as it is. Under events.SubjectKeySHA256 SubjectKey stays empty
// (Token computes that scheme), so that events of schema version 1 and the
// replies about them stay as they were. Errors as Token's.
func (k *SubjectKeys) Resolve(ctx context.Context, key events.Key) (events.Key, error) {
	if key.SubjectKey != "" || k.scheme == events.SubjectKeySHA256 {
		return key, nil
	}
	token, err := k.Token(ctx, key.Tenant, key.SubjectID)
	key.SubjectKey = token
	return key, err
}

// StreamSubjectKeyScheme returns the subject key scheme a stream records in
// its metadata (events.SubjectKeySchemeMetadata); events.SubjectKeySHA256
// when it records none (a stream made before keyed subject keys).
func StreamSubjectKeyScheme(cfg jetstream.StreamConfig) events.SubjectKeyScheme {
	if scheme, ok := cfg.Metadata[events.SubjectKeySchemeMetadata]; ok {
		return events.SubjectKeyScheme(scheme)
	}
	return events.SubjectKeySHA256
}

// subjectKeysOf returns the subject keys of the stream's scheme; keys
// gives the tenant secrets of events.SubjectKeyHMAC when it has them
// (TenantSecrets). Errors as NewSubjectKeys's.
func subjectKeysOf(stream jetstream.Stream, keys Keys) (*SubjectKeys, error) {
	scheme := events.SubjectKeySHA256
	if info := stream.CachedInfo(); info != nil {
		scheme = StreamSubjectKeyScheme(info.Config)
	}
	secrets, _ := keys.(TenantSecrets)
	return NewSubjectKeys(scheme, secrets)
}

// SubjectKeys returns how this ledger computes subject keys: the scheme of
// its stream. The error, when the ledger cannot compute them (a stream of
// keyed subject keys and no key store in Options.Keys, matching
// ErrNoTenantSecrets; an unknown scheme), is the one every method that
// takes a person's id returns.
func (l *Ledger) SubjectKeys() (*SubjectKeys, error) { return l.subjectKeys, l.subjectKeysErr }

// resolve returns key with its subject key (SubjectKeys.Resolve), or the
// ledger's subject keys error.
func (l *Ledger) resolve(ctx context.Context, key events.Key) (events.Key, error) {
	if l.subjectKeysErr != nil {
		return key, l.subjectKeysErr
	}
	return l.subjectKeys.Resolve(ctx, key)
}

// personToken returns the subject key of a person, or the ledger's subject
// keys error.
func (l *Ledger) personToken(ctx context.Context, tenant, subjectID string) (string, error) {
	if l.subjectKeysErr != nil {
		return "", l.subjectKeysErr
	}
	return l.subjectKeys.Token(ctx, tenant, subjectID)
}
