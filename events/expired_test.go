package events

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// expiringGrant returns a grant at policy version 2 that expires at t0.
func expiringGrant(t *testing.T) Consent {
	t.Helper()
	grant := command(func(c *Command) { c.PolicyVersion = 2; c.TTL = "1h" })
	return apply(t, NewConsent(testKey), KindGrant, grant, t0.Add(-time.Hour))
}

// expire decides, seals and folds the expiry of cur at now.
func expire(t *testing.T, cur Consent, now time.Time) (Event, Consent) {
	t.Helper()
	ev, err := DecideExpiry(cur, now)
	require.NoError(t, err)
	ev.ID = fmt.Sprintf("ev-%d", cur.Seq+1)
	_, err = ev.Seal()
	require.NoError(t, err)
	return ev, Evolve(cur, &ev, cur.Seq+1)
}

// TestDecideExpiryTransitions is the expire row of the transition table:
// from granted only, once expires_at has passed.
func TestDecideExpiryTransitions(t *testing.T) {
	live := consentIn(t, StateGranted) // no expires_at
	_, expiredByEvent := expire(t, expiringGrant(t), t0)
	tests := []struct {
		name string
		cur  Consent
		now  time.Time
		ok   bool
		from State
	}{
		{"none", consentIn(t, StateNone), t0, false, StateNone},
		{"zero value", Consent{}, t0, false, StateNone},
		{"requested", consentIn(t, StateRequested), t0, false, StateRequested},
		{"denied", consentIn(t, StateDenied), t0, false, StateDenied},
		{"revoked", consentIn(t, StateRevoked), t0, false, StateRevoked},
		{"granted without expires_at", live, t0.Add(1000 * time.Hour), false, StateGranted},
		{"granted, before expires_at", expiringGrant(t), t0.Add(-time.Nanosecond), false, StateGranted},
		{"granted, exactly at expires_at", expiringGrant(t), t0, true, StateGranted},
		{"granted, after expires_at", expiringGrant(t), t0.Add(time.Hour), true, StateGranted},
		{"already expired by an event", expiredByEvent, t0.Add(time.Hour), false, StateExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := DecideExpiry(tt.cur, tt.now)
			if !tt.ok {
				require.ErrorIs(t, err, ErrForbidden)
				var te *TransitionError
				require.ErrorAs(t, err, &te)
				assert.Equal(t, KindExpire, te.Kind)
				assert.Equal(t, tt.from, te.From)
				assert.NotEmpty(t, te.Reason)
				assert.Equal(t, Event{}, ev)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, TypeExpired, ev.Type)
			assert.Equal(t, tt.cur.Hash, ev.PrevHash)
			assert.Equal(t, testKey, ev.Key())
		})
	}
}

func TestDecideExpiryFillsTheEvent(t *testing.T) {
	grant := expiringGrant(t)
	now := t0.Add(90 * time.Second).In(time.FixedZone("CET", 3600))
	ev, err := DecideExpiry(grant, now)
	require.NoError(t, err)
	assert.Equal(t, Event{
		V: SchemaVersionClear, Type: TypeExpired,
		Tenant: testKey.Tenant, SubjectID: testKey.SubjectID, Purpose: testKey.Purpose,
		OccurredAt:    t0,                       // when it lapsed
		RecordedAt:    t0.Add(90 * time.Second), // when the ledger noticed
		PolicyVersion: 2,
		ExpiresAt:     ptr(t0),
		Actor:         ExpiryActor,
		PrevHash:      grant.Hash,
	}, ev)
	assert.Equal(t, time.UTC, ev.RecordedAt.Location())
	ev.ID = "ev-x"
	payload, err := ev.Seal()
	require.NoError(t, err)
	got, err := Decode(payload)
	require.NoError(t, err, "an expiry event is a known type")
	require.NoError(t, VerifyHash(payload, got))
}

// TestExpiredStatusBeforeAndAfterTheEvent: the status is expired from the
// clock before the event lands and from the event after it, and the two
// say the same.
func TestExpiredStatusBeforeAndAfterTheEvent(t *testing.T) {
	grant := expiringGrant(t)
	before := grant.View(t0.Add(time.Minute), 0)
	_, expired := expire(t, grant, t0.Add(time.Minute))
	after := expired.View(t0.Add(time.Minute), 0)

	assert.Equal(t, StateGranted, grant.State, "the clock does not change what is stored")
	assert.Equal(t, StateExpired, expired.State, "the event does")
	for _, st := range []Status{before, after} {
		assert.Equal(t, StateExpired, st.State)
		assert.False(t, st.Allowed)
		assert.False(t, st.Outdated)
		assert.Equal(t, 2, st.PolicyVersion)
		assert.Equal(t, ptr(t0), st.ExpiresAt)
	}
	assert.Equal(t, grant.Seq+1, after.Seq)
	// Long after, it stays expired.
	assert.Equal(t, StateExpired, expired.StateAt(t0.Add(1000*time.Hour)))
}

// TestTransitionsFromStoredExpiry: once consent.expired is stored, every
// command follows the "expired" column of the table, as it did from the
// clock before.
func TestTransitionsFromStoredExpiry(t *testing.T) {
	_, expired := expire(t, expiringGrant(t), t0)
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			byClock, errClock := Decide(expiringGrant(t), kind, command(nil), t0.Add(time.Minute))
			byEvent, errEvent := Decide(expired, kind, command(nil), t0.Add(time.Minute))
			require.NoError(t, errClock)
			require.NoError(t, errEvent)
			assert.Equal(t, kind.EventType(), byEvent.Type)
			assert.Equal(t, byClock.Type, byEvent.Type)
			assert.Equal(t, expired.Hash, byEvent.PrevHash)
		})
	}
}

// TestEvolveNeedsOnlyTheEvent: for every type, the state after an event is
// the same whatever state came before, which is what lets a watcher or a
// cache that starts mid-stream compute statuses from single events.
func TestEvolveNeedsOnlyTheEvent(t *testing.T) {
	exp := t0.Add(time.Hour)
	priors := []Consent{NewConsent(testKey), {}}
	for _, s := range []State{StateRequested, StateGranted, StateDenied, StateRevoked, StateExpired} {
		priors = append(priors, consentIn(t, s))
	}
	for _, typ := range []Type{TypeRequested, TypeGranted, TypeDenied, TypeRevoked, TypeExpired} {
		ev := Event{
			V: 1, ID: "e9", Type: typ, Tenant: testKey.Tenant, SubjectID: testKey.SubjectID,
			Purpose: testKey.Purpose, OccurredAt: t0, RecordedAt: t0, PolicyVersion: 3, Hash: "h9",
		}
		if typ == TypeGranted || typ == TypeExpired {
			ev.ExpiresAt = &exp
		}
		want := Evolve(NewConsent(testKey), &ev, 9)
		for _, prior := range priors {
			assert.Equal(t, want, Evolve(prior, &ev, 9), "%s after %q", typ, prior.State)
		}
	}
}

// TestGoldenExpired pins the bytes and hash of a consent.expired event, as
// TestGoldenHistory does for the other types.
func TestGoldenExpired(t *testing.T) {
	steps := goldenHistory()
	grantStep := steps[2]
	cur := NewConsent(grantStep.cmd.Key())
	grant, err := Decide(cur, grantStep.kind, grantStep.cmd, grantStep.now)
	require.NoError(t, err)
	grant.ID = grantStep.id
	_, err = grant.Seal()
	require.NoError(t, err)
	cur = Evolve(cur, &grant, 3)

	ev, err := DecideExpiry(cur, grant.ExpiresAt.Add(1500*time.Millisecond))
	require.NoError(t, err)
	ev.ID = "01a0b1c2-0000-7e00-8000-00000000ee05"
	payload, err := ev.Seal()
	require.NoError(t, err)

	path := filepath.Join("testdata", "golden", "expired.v1.json")
	if *update {
		require.NoError(t, os.WriteFile(path, payload, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(payload))
	assert.Equal(t, "c77b299daf191775ddcd0fa0eca95958c6dd1e9144401e2b61530749c2c87847", ev.Hash, "pinned hash")
	got, err := Decode(want)
	require.NoError(t, err)
	require.NoError(t, VerifyHash(want, got))
}
