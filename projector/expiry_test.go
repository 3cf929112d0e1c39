package projector

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decide queues the event of one command for k at h.now and folds it into
// the model.
func (h *history) decide(tb testing.TB, k events.Key, kind events.Kind, c events.Command) {
	tb.Helper()
	c.Tenant, c.SubjectID, c.Purpose = k.Tenant, k.SubjectID, k.Purpose
	cur, ok := h.model[k]
	if !ok {
		cur = events.NewConsent(k)
	}
	ev, err := events.Decide(cur, kind, c, h.now)
	require.NoError(tb, err)
	h.append(tb, cur, ev)
}

// expire queues the consent.expired event of k's grant at h.now.
func (h *history) expire(tb testing.TB, k events.Key) {
	tb.Helper()
	cur := h.model[k]
	ev, err := events.DecideExpiry(cur, h.now)
	require.NoError(tb, err)
	h.append(tb, cur, ev)
}

func (h *history) append(tb testing.TB, cur events.Consent, ev events.Event) {
	tb.Helper()
	ev.ID = uuid.Must(uuid.NewV7()).String()
	payload, err := ev.Seal()
	require.NoError(tb, err)
	seq := h.queue(ev.Key().NATSSubject(), string(ev.Type), payload)
	h.model[ev.Key()] = events.Evolve(cur, &ev, seq)
}

func TestDueGrants(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	h := newHistory(3, 1, 8, 1)
	key := func(i int) events.Key { return h.keys[i] }
	start := h.now
	at := func(d time.Duration) *time.Time { t := start.Add(d); return &t }

	h.decide(t, key(0), events.KindGrant, events.Command{ExpiresAt: at(time.Minute)})      // due
	h.decide(t, key(1), events.KindGrant, events.Command{ExpiresAt: at(2 * time.Minute)})  // due, later
	h.decide(t, key(2), events.KindGrant, events.Command{ExpiresAt: at(time.Hour)})        // not yet: next
	h.decide(t, key(3), events.KindGrant, events.Command{})                                // never lapses
	h.decide(t, key(4), events.KindGrant, events.Command{ExpiresAt: at(time.Minute)})      // revoked
	h.decide(t, key(4), events.KindRevoke, events.Command{})                               //
	h.decide(t, key(5), events.KindGrant, events.Command{ExpiresAt: at(time.Second)})      // renewed
	h.decide(t, key(5), events.KindGrant, events.Command{ExpiresAt: at(3 * time.Hour)})    //
	h.decide(t, key(6), events.KindRequest, events.Command{})                              // not a grant
	h.decide(t, key(7), events.KindGrant, events.Command{ExpiresAt: at(90 * time.Second)}) // expired by an event
	h.now = start.Add(100 * time.Second)
	h.expire(t, key(7))
	h.publish(t, js)

	idx := openIndex(t, t.TempDir(), IndexOptions{})
	ctx := context.Background()
	_, _, err := idx.DueGrants(ctx, start, 10)
	require.ErrorIs(t, err, events.ErrNotReady, "not before the index is ready")

	runProjector(t, New(js, idx, Options{Logger: testLogger(t)}))
	waitFor(t, idx, h.seq)

	now := start.Add(5 * time.Minute)
	due, next, err := idx.DueGrants(ctx, now, 10)
	require.NoError(t, err)
	assert.Equal(t, []events.Consent{asScanned(h.model[key(0)]), asScanned(h.model[key(1)])}, due, "oldest expiry first")
	assert.Equal(t, *at(time.Hour), next)

	due, next, err = idx.DueGrants(ctx, now, 1)
	require.NoError(t, err)
	assert.Equal(t, []events.Consent{asScanned(h.model[key(0)])}, due, "at most limit")
	assert.Equal(t, *at(2 * time.Minute), next, "the next one is the first left out")

	due, next, err = idx.DueGrants(ctx, start, 10)
	require.NoError(t, err)
	assert.Empty(t, due, "nothing due before the first expiry")
	assert.Equal(t, *at(time.Minute), next)

	// Exactly at expires_at, the grant is due (StateAt says expired).
	due, _, err = idx.DueGrants(ctx, *at(time.Minute), 10)
	require.NoError(t, err)
	assert.Equal(t, []events.Consent{asScanned(h.model[key(0)])}, due)

	// Once consent.expired is applied, the grant leaves the list.
	h.now = now
	h.expire(t, key(0))
	h.publish(t, js)
	waitFor(t, idx, h.seq)
	due, _, err = idx.DueGrants(ctx, now, 10)
	require.NoError(t, err)
	assert.Equal(t, []events.Consent{asScanned(h.model[key(1)])}, due)
	assert.Equal(t, events.StateExpired, h.model[key(0)].State)

	// Far in the future every lapsing grant is due, and nothing is next.
	due, next, err = idx.DueGrants(ctx, start.Add(24*time.Hour), 10)
	require.NoError(t, err)
	assert.Equal(t, []events.Consent{asScanned(h.model[key(1)]), asScanned(h.model[key(2)]), asScanned(h.model[key(5)])}, due)
	assert.True(t, next.IsZero())
}

// TestExpiryIndexBuiltOnOpen: an index folded before the expiry index
// existed gets its keys when it is opened.
func TestExpiryIndexBuiltOnOpen(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	h := newHistory(4, 2, 5, 2)
	h.add(t, 300)
	h.publish(t, js)

	dir := t.TempDir()
	idx := openIndex(t, dir, IndexOptions{})
	stop := runProjector(t, New(js, idx, Options{Logger: testLogger(t)}))
	waitFor(t, idx, h.seq)
	require.NoError(t, stop())
	far := h.now.Add(1000 * time.Hour)
	want, _, err := idx.DueGrants(context.Background(), far, MaxDueGrants)
	require.ErrorIs(t, err, events.ErrNotReady)
	require.Nil(t, want)

	// Make it an index of the older layout: no expiry keys, no marker.
	lower := []byte{kindExpiry}
	require.NoError(t, idx.db.DeleteRange(lower, prefixEnd(lower), pebble.Sync))
	require.NoError(t, idx.db.Delete(metaKey(metaExpiries), pebble.Sync))
	require.NoError(t, idx.Close())

	idx = openIndex(t, dir, IndexOptions{ReadyOnOpen: true})
	due, next, err := idx.DueGrants(context.Background(), far, MaxDueGrants)
	require.NoError(t, err)
	assert.True(t, next.IsZero())
	var lapsing []events.Consent
	for _, k := range h.keys {
		if c, ok := h.model[k]; ok && c.State == events.StateGranted && c.ExpiresAt != nil {
			lapsing = append(lapsing, asScanned(c))
		}
	}
	require.NotEmpty(t, lapsing, "the history has grants with a ttl")
	assert.ElementsMatch(t, lapsing, due)
}

func TestExpiryKeyRoundTripAndOrder(t *testing.T) {
	consentKey := appendConsentKey(nil, events.Key{Tenant: "t", SubjectID: "a\x00b", Purpose: "p"})
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Unix(0, 0).UTC(),
		time.Unix(0, 1).UTC(),
		time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	}
	var prev []byte
	for _, at := range times {
		key := appendExpiryKey(nil, at, consentKey)
		got, ck, err := decodeExpiryKey(key)
		require.NoError(t, err)
		assert.True(t, at.Equal(got), "%s", at)
		assert.Equal(t, consentKey, ck)
		if prev != nil {
			assert.Negative(t, bytes.Compare(prev, key), "byte order is time order at %s", at)
		}
		prev = key
	}
	for _, bad := range [][]byte{nil, {kindExpiry}, append([]byte{kindConsent}, make([]byte, 12)...),
		append(append([]byte{kindExpiry}, make([]byte, 8)...), 0xff, 0xff, 0xff, 0xff)} {
		_, _, err := decodeExpiryKey(bad)
		require.ErrorIs(t, err, errBadKey, "%x", bad)
	}
}

func FuzzExpiryKey(f *testing.F) {
	f.Add(int64(0), uint32(0), "t", "s", "p")
	f.Add(int64(math.MinInt64), uint32(999999999), "", "\x00", "x")
	f.Fuzz(func(t *testing.T, sec int64, nsec uint32, tenant, subject, purpose string) {
		at := time.Unix(sec, int64(nsec%uint32(time.Second))).UTC()
		ck := appendConsentKey(nil, events.Key{Tenant: tenant, SubjectID: subject, Purpose: purpose})
		got, gotKey, err := decodeExpiryKey(appendExpiryKey(nil, at, ck))
		require.NoError(t, err)
		require.True(t, at.Equal(got), fmt.Sprintf("%v != %v", at, got))
		require.Equal(t, ck, gotKey)
		// Any input decodes or fails without a panic.
		_, _, _ = decodeExpiryKey([]byte(tenant))
	})
}

// asScanned returns c, a state as a fold of v1 events gives it, as a scan
// of the index gives it: by subject key, without the subject id.
func asScanned(c events.Consent) events.Consent {
	c.SubjectKey, c.SubjectID = c.Key().Token(), ""
	return c
}
