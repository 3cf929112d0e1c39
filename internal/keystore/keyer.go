package keystore

import (
	"context"
	"time"

	"github.com/consentledger/consent/events"
)

// SubjectKeyer gives the token that stands for a person in NATS subjects
// and index keys. The subject id is taken as given: callers normalise it
// (events.NormalizeSubjectID) first.
type SubjectKeyer interface {
	SubjectKey(tenant, subjectID string) string
}

// SHA256Keyer is the scheme events.SubjectKeySHA256 (events.SubjectKey),
// for streams created before keyed subject keys.
type SHA256Keyer struct{}

// SubjectKey returns events.SubjectKey(tenant, subjectID).
func (SHA256Keyer) SubjectKey(tenant, subjectID string) string {
	return events.SubjectKey(tenant, subjectID)
}

// HMACKeyer is the scheme events.SubjectKeyHMAC: events.KeyedSubjectKey
// under the tenant's secret from the store.
type HMACKeyer struct {
	store   *Store
	timeout time.Duration
}

// Keyer returns the store's HMACKeyer.
func (s *Store) Keyer() *HMACKeyer { return &HMACKeyer{store: s, timeout: 10 * time.Second} }

// Load fetches (or makes, on first use) the tenant's secret, so that
// SubjectKey for that tenant needs no round trip and cannot fail. Call it
// where a failure can be answered, e.g. when a request names the tenant.
// Errors as Store.TenantSecret.
func (k *HMACKeyer) Load(ctx context.Context, tenant string) error {
	_, err := k.store.TenantSecret(ctx, tenant)
	return err
}

// Key returns the person's keyed subject key, or the error of loading the
// tenant's secret.
func (k *HMACKeyer) Key(ctx context.Context, tenant, subjectID string) (string, error) {
	secret, err := k.store.TenantSecret(ctx, tenant)
	if err != nil {
		return "", err
	}
	defer clear(secret)
	return events.KeyedSubjectKey(secret, subjectID), nil
}

// SubjectKey returns the person's keyed subject key. For a tenant not yet
// loaded it loads the secret, waiting up to 10 seconds; if that fails it
// returns "", which is no valid subject key (checks that take one refuse
// it). Use Key or Load to see the error.
func (k *HMACKeyer) SubjectKey(tenant, subjectID string) string {
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()
	key, err := k.Key(ctx, tenant, subjectID)
	if err != nil {
		return ""
	}
	return key
}
