package ledger

import (
	"context"
	"crypto/rand"
	"github.com/consentledger/consent/wire"
	"sync"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memKeys is a Keys in memory: one key per person, counting destructions.
type memKeys struct {
	mu        sync.Mutex
	byPerson  map[string]string
	byID      map[string][]byte
	destroyed int
}

func (k *memKeys) EnsureDataKey(_ context.Context, tenant, subjectKey string) (string, []byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if id, ok := k.byPerson[tenant+"."+subjectKey]; ok {
		return id, k.byID[id], nil
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	id := rand.Text()
	k.byPerson[tenant+"."+subjectKey], k.byID[id] = id, key
	return id, key, nil
}

func (k *memKeys) KeyByID(_ context.Context, _, _, id string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.byID[id], nil
}

func (k *memKeys) Destroy(_ context.Context, tenant, subjectKey string, ids []string) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.byPerson, tenant+"."+subjectKey)
	ok := false
	for _, id := range ids {
		if _, had := k.byID[id]; had {
			delete(k.byID, id)
			ok = true
		}
	}
	if ok {
		k.destroyed++
	}
	return ok, nil
}

// An erasure checks right before each consent.erased (a hold set after it
// began stops it there), and keeps the key when the person started a new
// consent while it ran. (Internal: the hook runs between the steps.)
func TestEraseStopsForAHoldOrANewConsentBetweenSteps(t *testing.T) {
	_, _, js := natstest.Run(t)
	ctx := context.Background()
	stream, err := EnsureStream(ctx, js, StreamOptions{})
	require.NoError(t, err)
	holds, err := OpenHolds(ctx, js, 1)
	require.NoError(t, err)
	keys := &memKeys{byPerson: map[string]string{}, byID: map[string][]byte{}}
	l := New(js, stream, Options{Keys: keys, Holds: holds})
	for _, purpose := range []string{"analytics", "newsletter"} {
		_, err := l.Append(ctx, events.KindGrant, events.Command{Tenant: "acme", SubjectID: "ida", Purpose: purpose})
		require.NoError(t, err)
	}
	token := events.Key{Tenant: "acme", SubjectID: "ida"}.Token()
	subjects, err := l.personSubjects(ctx, "acme", token)
	require.NoError(t, err)
	require.Len(t, subjects, 2)
	x := events.Erase{Reason: "retention: test"}

	// A hold set once the first consent was decided: nothing is erased.
	_, err = l.eraseSubjects(ctx, "acme", token, subjects, x, func(string, storedFold) error {
		_, err := l.SetHold(ctx, wire.HoldRequest{Tenant: "acme", SubjectID: "ida", Reason: "case 3"})
		return err
	})
	var held *HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, "case 3", held.Hold.Reason)
	assert.ErrorIs(t, err, ErrHeld)
	for _, s := range subjects {
		f, unlock, err := l.lockAndFold(ctx, s)
		require.NoError(t, err)
		unlock()
		assert.Equal(t, events.StateGranted, f.cur.State, s)
	}
	_, err = l.ReleaseHold(ctx, wire.HoldRequest{Tenant: "acme", SubjectID: "ida"})
	require.NoError(t, err)

	// A consent the person starts while the erasure runs keeps the key.
	once := sync.Once{}
	out, err := l.eraseSubjects(ctx, "acme", token, subjects, x, func(string, storedFold) error {
		var err error
		once.Do(func() {
			_, err = l.Append(ctx, events.KindGrant, events.Command{Tenant: "acme", SubjectID: "ida", Purpose: "billing"})
		})
		return err
	})
	require.ErrorIs(t, err, ErrContention)
	assert.Len(t, out.Erased, 2)
	assert.Zero(t, keys.destroyed, "billing's events are sealed under the key")

	// A repeat erases that one too, then destroys the key.
	r, err := l.Erase(ctx, wire.EraseRequest{Tenant: "acme", SubjectID: "ida", Reason: "again"})
	require.NoError(t, err)
	assert.Len(t, r.Erased, 1)
	assert.True(t, r.KeyDestroyed)
}
