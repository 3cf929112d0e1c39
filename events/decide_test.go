package events

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testKey = Key{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email"}
)

func command(f func(*Command)) Command {
	c := Command{Tenant: testKey.Tenant, SubjectID: testKey.SubjectID, Purpose: testKey.Purpose}
	if f != nil {
		f(&c)
	}
	return c
}

// apply decides, seals and folds one command, as the ledger and the
// projector do together. It fails the test if the command is refused.
func apply(t *testing.T, cur Consent, kind Kind, c Command, now time.Time) Consent {
	t.Helper()
	require.NoError(t, c.Validate(kind))
	ev, err := Decide(cur, kind, c, now)
	require.NoError(t, err)
	ev.ID = fmt.Sprintf("ev-%d", cur.Seq+1)
	_, err = ev.Seal()
	require.NoError(t, err)
	return Evolve(cur, &ev, cur.Seq+1)
}

// consentIn returns a consent in the given state at t0, reached through
// real events. Granted and expired consents are at policy version 2.
func consentIn(t *testing.T, state State) Consent {
	t.Helper()
	none := NewConsent(testKey)
	policy2 := command(func(c *Command) { c.PolicyVersion = 2 })
	var cur Consent
	switch state {
	case StateNone:
		cur = none
	case StateRequested:
		cur = apply(t, none, KindRequest, policy2, t0.Add(-time.Hour))
	case StateGranted:
		cur = apply(t, none, KindGrant, policy2, t0.Add(-time.Hour))
	case StateDenied:
		cur = apply(t, none, KindDeny, policy2, t0.Add(-time.Hour))
	case StateRevoked:
		cur = apply(t, none, KindGrant, policy2, t0.Add(-2*time.Hour))
		cur = apply(t, cur, KindRevoke, command(nil), t0.Add(-time.Hour))
	case StateExpired:
		// A grant whose ttl ran out before t0: no event marks the expiry.
		grant := command(func(c *Command) { c.PolicyVersion = 2; c.TTL = "1h" })
		cur = apply(t, none, KindGrant, grant, t0.Add(-2*time.Hour))
		require.Equal(t, StateGranted, cur.State, "expiry is not stored")
	}
	require.Equal(t, state, cur.StateAt(t0))
	return cur
}

// TestDecideTransitionTable checks every cell of the contract's table.
func TestDecideTransitionTable(t *testing.T) {
	const ok, refused = true, false
	states := []State{StateNone, StateRequested, StateGranted, StateDenied, StateRevoked, StateExpired}
	table := map[Kind][6]bool{
		//            none requested granted  denied revoked expired
		KindRequest: {ok, ok, refused, ok, ok, ok}, // granted: see TestDecideRequestWhileGranted
		KindGrant:   {ok, ok, ok, ok, ok, ok},
		KindDeny:    {ok, ok, refused, ok, ok, ok},
		KindRevoke:  {refused, refused, ok, refused, refused, ok},
	}
	cells := 0
	for _, kind := range Kinds {
		for i, from := range states {
			cells++
			t.Run(fmt.Sprintf("%s from %s", kind, from), func(t *testing.T) {
				cur := consentIn(t, from)
				c := command(func(c *Command) { c.PolicyVersion = 2 })
				ev, err := Decide(cur, kind, c, t0)
				if !table[kind][i] {
					require.ErrorIs(t, err, ErrForbidden)
					var te *TransitionError
					require.ErrorAs(t, err, &te)
					assert.Equal(t, kind, te.Kind)
					assert.Equal(t, from, te.From)
					assert.NotEmpty(t, te.Reason, "a refusal says why")
					if from == StateNone {
						assert.Contains(t, te.Error(), "no consent")
					} else {
						assert.Contains(t, te.Error(), string(from))
					}
					assert.Equal(t, Event{}, ev)
					return
				}
				require.NoError(t, err)
				assert.Equal(t, kind.EventType(), ev.Type)
				assert.Equal(t, cur.Hash, ev.PrevHash, "linked to the previous event")
				assert.Equal(t, testKey, ev.Key())
				next := Evolve(cur, &ev, cur.Seq+1)
				assert.Equal(t, map[Kind]State{
					KindRequest: StateRequested, KindGrant: StateGranted,
					KindDeny: StateDenied, KindRevoke: StateRevoked,
				}[kind], next.StateAt(t0))
			})
		}
	}
	assert.Equal(t, 24, cells)
}

// TestDecideRequestWhileGranted: a new request over a live grant is a
// re-consent and needs a higher policy version than the grant's (2).
func TestDecideRequestWhileGranted(t *testing.T) {
	tests := []struct {
		name    string
		policy  int
		allowed bool
	}{
		{"higher", 3, true},
		{"equal", 2, false},
		{"lower", 1, false},
		{"omitted means 1", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := consentIn(t, StateGranted)
			c := command(func(c *Command) { c.PolicyVersion = tt.policy })
			ev, err := Decide(cur, KindRequest, c, t0)
			if !tt.allowed {
				require.ErrorIs(t, err, ErrForbidden)
				var te *TransitionError
				require.ErrorAs(t, err, &te)
				assert.Equal(t, StateGranted, te.From)
				assert.Contains(t, te.Reason, "policy_version")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, TypeRequested, ev.Type)
			assert.Equal(t, tt.policy, ev.PolicyVersion)
		})
	}
	// Once the grant has expired, any request is fine again.
	t.Run("expired grant, lower", func(t *testing.T) {
		_, err := Decide(consentIn(t, StateExpired), KindRequest, command(func(c *Command) { c.PolicyVersion = 1 }), t0)
		require.NoError(t, err)
	})
}

func TestDecideZeroConsentIsNone(t *testing.T) {
	_, err := Decide(Consent{}, KindRevoke, command(nil), t0)
	var te *TransitionError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, StateNone, te.From)
	assert.EqualError(t, err, "cannot revoke: there is no consent to revoke for this person and purpose", "reads as a person would write it")

	ev, err := Decide(Consent{}, KindGrant, command(nil), t0)
	require.NoError(t, err)
	assert.Equal(t, "", ev.PrevHash)
}

func TestDecideFillsTheEvent(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	occurred := time.Date(2026, 2, 28, 13, 0, 0, 0, paris)
	nowInParis := t0.In(paris)
	cur := consentIn(t, StateRequested)

	t.Run("grant with ttl and occurred_at", func(t *testing.T) {
		c := command(func(c *Command) {
			c.Tenant = ""
			c.PolicyVersion = 3
			c.TTL = "24h"
			c.OccurredAt = &occurred
			c.Actor = "subject"
			c.Method = "dialog"
			c.Evidence = json.RawMessage(`{"form":"v3"}`)
			c.IdempotencyKey = "k1"
		})
		cur := cur
		cur.Tenant = DefaultTenant
		ev, err := Decide(cur, KindGrant, c, nowInParis)
		require.NoError(t, err)
		assert.Equal(t, Event{
			V:             SchemaVersionClear,
			Type:          TypeGranted,
			Tenant:        DefaultTenant,
			SubjectID:     testKey.SubjectID,
			Purpose:       testKey.Purpose,
			OccurredAt:    time.Date(2026, 2, 28, 12, 0, 0, 0, time.UTC),
			RecordedAt:    t0,
			PolicyVersion: 3,
			ExpiresAt:     ptr(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
			Actor:         "subject",
			Method:        "dialog",
			Evidence:      json.RawMessage(`{"form":"v3"}`),
			PrevHash:      cur.Hash,
		}, ev)
		assert.Equal(t, time.UTC, ev.OccurredAt.Location())
		assert.Equal(t, time.UTC, ev.RecordedAt.Location())
		assert.Equal(t, time.UTC, ev.ExpiresAt.Location())
	})
	t.Run("defaults: occurred_at is now, policy_version 1, expires_at in UTC", func(t *testing.T) {
		exp := time.Date(2027, 1, 1, 1, 0, 0, 0, paris)
		ev, err := Decide(cur, KindGrant, command(func(c *Command) { c.ExpiresAt = &exp }), nowInParis)
		require.NoError(t, err)
		assert.Equal(t, t0, ev.OccurredAt)
		assert.Equal(t, t0, ev.RecordedAt)
		assert.Equal(t, 1, ev.PolicyVersion)
		require.NotNil(t, ev.ExpiresAt)
		assert.Equal(t, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), *ev.ExpiresAt)
		assert.Equal(t, time.UTC, ev.ExpiresAt.Location())
	})
	t.Run("request keeps description, deny keeps reason", func(t *testing.T) {
		ev, err := Decide(cur, KindRequest, command(func(c *Command) { c.Description = "news" }), t0)
		require.NoError(t, err)
		assert.Equal(t, "news", ev.Description)
		ev, err = Decide(cur, KindDeny, command(func(c *Command) { c.Reason = "no" }), t0)
		require.NoError(t, err)
		assert.Equal(t, "no", ev.Reason)
		assert.Nil(t, ev.ExpiresAt)
	})
	t.Run("pure", func(t *testing.T) {
		c := command(func(c *Command) { c.TTL = "1h" })
		a, errA := Decide(cur, KindGrant, c, t0)
		b, errB := Decide(cur, KindGrant, c, t0)
		require.NoError(t, errA)
		require.NoError(t, errB)
		assert.Equal(t, a, b)
	})
}

// Decide refuses what only the clock can tell is wrong.
func TestDecideFieldErrors(t *testing.T) {
	past := t0.Add(-time.Second)
	late := time.Date(9999, 12, 1, 0, 0, 0, 0, time.UTC)
	future := t0.Add(MaxFutureSkew + time.Nanosecond)
	longAgo := t0.Add(-MaxBackdate - time.Nanosecond)
	year2099 := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	year1 := time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)
	tooLong := t0.Add(MaxGrantLifetime + time.Nanosecond)
	tests := []struct {
		name  string
		cmd   Command
		now   time.Time
		field string
	}{
		{"expires_at before the default occurred_at", command(func(c *Command) { c.ExpiresAt = &past }), t0, "expires_at"},
		{"expires_at equal to the default occurred_at", command(func(c *Command) { c.ExpiresAt = &t0 }), t0, "expires_at"},
		{"ttl past year 9999", command(func(c *Command) { c.TTL = "8760h" }), late, "ttl"},
		{"occurred_at beyond the skew", command(func(c *Command) { c.OccurredAt = &future }), t0, "occurred_at"},
		{"occurred_at in 2099", command(func(c *Command) { c.OccurredAt = &year2099 }), t0, "occurred_at"},
		{"occurred_at beyond the backdating bound", command(func(c *Command) { c.OccurredAt = &longAgo }), t0, "occurred_at"},
		{"occurred_at in year 0001", command(func(c *Command) { c.OccurredAt = &year1 }), t0, "occurred_at"},
		{"expires_at over 100 years after occurred_at", command(func(c *Command) { c.ExpiresAt = &tooLong }), t0, "expires_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, tt.cmd.Validate(KindGrant))
			_, err := Decide(NewConsent(testKey), KindGrant, tt.cmd, tt.now)
			assertFieldError(t, err, tt.field)
		})
	}
}

// TestDecideTimeBounds: occurred_at and expires_at at their bounds are
// accepted, and an event recorded after it occurred by more than the skew
// reads as backdated.
func TestDecideTimeBounds(t *testing.T) {
	ahead := t0.Add(MaxFutureSkew)
	oldest := t0.Add(-MaxBackdate)
	for _, occurred := range []time.Time{ahead, oldest, t0} {
		expires := occurred.Add(MaxGrantLifetime)
		c := command(func(c *Command) { c.OccurredAt = &occurred; c.ExpiresAt = &expires })
		require.NoError(t, c.Validate(KindGrant))
		ev, err := Decide(NewConsent(testKey), KindGrant, c, t0)
		require.NoError(t, err, "occurred %s", occurred)
		assert.Equal(t, occurred, ev.OccurredAt)
		assert.Equal(t, occurred.Equal(oldest), ev.IsBackdated(), "occurred %s", occurred)
	}
	c := command(func(c *Command) { c.TTL = (MaxGrantLifetime + time.Hour).String() })
	assertFieldError(t, c.Validate(KindGrant), "ttl")
	c = command(func(c *Command) { c.TTL = MaxGrantLifetime.String() })
	require.NoError(t, c.Validate(KindGrant))
	_, err := Decide(NewConsent(testKey), KindGrant, c, t0)
	require.NoError(t, err)
}

func TestEvolve(t *testing.T) {
	exp := t0.Add(time.Hour)
	prior := consentIn(t, StateGranted)
	prior.ExpiresAt = &exp
	tests := []struct {
		typ     Type
		state   State
		expires *time.Time
	}{
		{TypeRequested, StateRequested, nil},
		{TypeGranted, StateGranted, &exp},
		{TypeDenied, StateDenied, nil},
		{TypeRevoked, StateRevoked, nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ), func(t *testing.T) {
			ev := Event{
				V: 1, ID: "e9", Type: tt.typ, Tenant: testKey.Tenant, SubjectID: testKey.SubjectID,
				Purpose: testKey.Purpose, OccurredAt: t0, RecordedAt: t0.Add(time.Second),
				PolicyVersion: 4, ExpiresAt: tt.expires, Hash: "h9", PrevHash: prior.Hash,
			}
			got := Evolve(prior, &ev, 9)
			assert.Equal(t, Consent{
				Tenant: testKey.Tenant, SubjectID: testKey.SubjectID, Purpose: testKey.Purpose,
				State: tt.state, PolicyVersion: 4, UpdatedAt: t0, ExpiresAt: tt.expires,
				Seq: 9, EventID: "e9", Hash: "h9",
			}, got)
		})
	}
	t.Run("unknown type leaves the state alone", func(t *testing.T) {
		ev := Event{V: 1, ID: "e9", Type: "consent.paused", Tenant: testKey.Tenant, SubjectID: testKey.SubjectID, Purpose: testKey.Purpose}
		assert.Equal(t, prior, Evolve(prior, &ev, 9))
	})
}

func TestConsentView(t *testing.T) {
	exp := t0.Add(time.Hour)
	granted := consentIn(t, StateGranted)
	expiring := granted
	expiring.ExpiresAt = &exp

	tests := []struct {
		name      string
		consent   Consent
		at        time.Time
		minPolicy int
		state     State
		allowed   bool
	}{
		{"none", NewConsent(testKey), t0, 0, StateNone, false},
		{"zero value", Consent{}, t0, 0, StateNone, false},
		{"requested", consentIn(t, StateRequested), t0, 0, StateRequested, false},
		{"granted", granted, t0, 0, StateGranted, true},
		{"denied", consentIn(t, StateDenied), t0, 0, StateDenied, false},
		{"revoked", consentIn(t, StateRevoked), t0, 0, StateRevoked, false},
		{"expired", consentIn(t, StateExpired), t0, 0, StateExpired, false},
		{"before expires_at", expiring, exp.Add(-time.Nanosecond), 0, StateGranted, true},
		{"exactly at expires_at", expiring, exp, 0, StateExpired, false},
		{"after expires_at", expiring, exp.Add(time.Nanosecond), 0, StateExpired, false},
		{"min_policy_version below", granted, t0, 1, StateGranted, true},
		{"min_policy_version equal", granted, t0, 2, StateGranted, true},
		{"min_policy_version above", granted, t0, 3, StateGranted, false},
		{"expired regardless of policy", consentIn(t, StateExpired), t0, 1, StateExpired, false},
		{"denied regardless of policy", consentIn(t, StateDenied), t0, 1, StateDenied, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.consent.View(tt.at, tt.minPolicy)
			assert.Equal(t, tt.state, st.State)
			assert.Equal(t, tt.allowed, st.Allowed)
			assert.Equal(t, tt.consent.Seq, st.Seq)
			assert.Equal(t, tt.consent.EventID, st.EventID)
			assert.Equal(t, tt.consent.PolicyVersion, st.PolicyVersion)
			assert.Equal(t, tt.consent.ExpiresAt, st.ExpiresAt)
			assert.Zero(t, st.IndexSeq, "left for the caller")
		})
	}

	t.Run("none has no seq, event or updated_at", func(t *testing.T) {
		none := NewConsent(testKey)
		st := none.View(t0, 0)
		assert.Equal(t, Status{Tenant: "acme", SubjectID: testKey.SubjectID, Purpose: testKey.Purpose, State: StateNone}, st)
		raw, err := json.Marshal(st)
		require.NoError(t, err)
		assert.JSONEq(t, `{"tenant":"acme","subject":"alice@example.com","purpose":"marketing_email","state":"none",
			"allowed":false,"policy_version":0,"updated_at":null,"seq":0,"event_id":"","index_seq":0}`, string(raw))
	})
	t.Run("updated_at is the event's occurred_at", func(t *testing.T) {
		st := granted.View(t0, 0)
		require.NotNil(t, st.UpdatedAt)
		assert.Equal(t, granted.UpdatedAt, *st.UpdatedAt)
	})
}

func ptr[T any](v T) *T { return &v }

// assertFieldError checks that err is a *FieldError naming field.
func assertFieldError(t *testing.T, err error, field string) {
	t.Helper()
	require.ErrorIs(t, err, ErrInvalid)
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, field, fe.Field, "error: %v", err)
	assert.NotEmpty(t, fe.Problem)
}
