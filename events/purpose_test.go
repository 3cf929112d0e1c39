package events

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testPurpose = PurposeKey{Tenant: "acme", Purpose: "marketing_email"}

// setPurpose decides, seals and folds one purpose command.
func setPurpose(t *testing.T, cur Purpose, c PurposeCommand, now time.Time) (PurposeEvent, Purpose) {
	t.Helper()
	require.NoError(t, c.Validate())
	ev, err := DecidePurpose(cur, c, now)
	require.NoError(t, err)
	ev.ID = "p-" + now.Format("150405")
	_, err = ev.Seal()
	require.NoError(t, err)
	return ev, EvolvePurpose(cur, &ev, cur.Seq+1)
}

func TestPurposeKeySubject(t *testing.T) {
	assert.Equal(t, "consent.purposes.acme.marketing_email", testPurpose.NATSSubject())
	assert.True(t, strings.HasPrefix(testPurpose.NATSSubject(), PurposeSubjectPrefix))
	assert.Equal(t, PurposeSubjectPrefix+">", PurposeSubjects)
}

func TestDecidePurpose(t *testing.T) {
	cmd := func(f func(*PurposeCommand)) PurposeCommand {
		c := PurposeCommand{Tenant: "acme", Purpose: "marketing_email"}
		f(&c)
		return c
	}
	none := NewPurpose(testPurpose)
	assert.Equal(t, 0, none.RequiredPolicyVersion(), "an unregistered purpose asks for no minimum")

	first, v1 := setPurpose(t, none, cmd(func(c *PurposeCommand) {
		c.Description = ptr("Monthly news")
		c.DefaultTTL = ptr("8760h")
		c.Actor = "legal"
	}), t0)
	assert.Equal(t, PurposeEvent{
		V: 1, ID: first.ID, Type: TypePurposeSet, Tenant: "acme", Purpose: "marketing_email",
		Description: "Monthly news", PolicyVersion: 1, DefaultTTL: "8760h", Actor: "legal",
		OccurredAt: t0, RecordedAt: t0, Hash: first.Hash,
	}, first, "a first set without a version is version 1")
	assert.True(t, v1.Registered)
	assert.Equal(t, 1, v1.RequiredPolicyVersion())
	assert.Equal(t, uint64(1), v1.Seq)

	// Only the version: description and ttl are kept.
	second, v2 := setPurpose(t, v1, cmd(func(c *PurposeCommand) { c.PolicyVersion = 2 }), t0.Add(time.Hour))
	assert.Equal(t, first.Hash, second.PrevHash, "chained per purpose")
	assert.Equal(t, 2, v2.PolicyVersion)
	assert.Equal(t, "Monthly news", v2.Description)
	assert.Equal(t, "8760h", v2.DefaultTTL)

	// Empty strings clear; no version keeps the current one.
	_, v3 := setPurpose(t, v2, cmd(func(c *PurposeCommand) { c.Description = ptr(""); c.DefaultTTL = ptr("") }), t0.Add(2*time.Hour))
	assert.Equal(t, 2, v3.PolicyVersion)
	assert.Empty(t, v3.Description)
	assert.Empty(t, v3.DefaultTTL)

	t.Run("versions only go up", func(t *testing.T) {
		ev, err := DecidePurpose(v2, cmd(func(c *PurposeCommand) { c.PolicyVersion = 1 }), t0)
		require.ErrorIs(t, err, ErrPolicyDowngrade)
		require.ErrorIs(t, err, ErrForbidden)
		assert.Contains(t, err.Error(), "lower than the current 2")
		assert.Equal(t, PurposeEvent{}, ev)
		_, err = DecidePurpose(v2, cmd(func(c *PurposeCommand) { c.PolicyVersion = 2 }), t0)
		require.NoError(t, err, "setting the same version again is fine")
	})
}

func TestPurposeCommandValidate(t *testing.T) {
	tests := []struct {
		name  string
		c     PurposeCommand
		field string
	}{
		{"no purpose", PurposeCommand{}, "purpose"},
		{"bad tenant", PurposeCommand{Tenant: "Acme", Purpose: "p"}, "tenant"},
		{"bad purpose", PurposeCommand{Purpose: "a.b"}, "purpose"},
		{"negative version", PurposeCommand{Purpose: "p", PolicyVersion: -1}, "policy_version"},
		{"ttl not a duration", PurposeCommand{Purpose: "p", DefaultTTL: ptr("a year")}, "default_ttl"},
		{"ttl zero", PurposeCommand{Purpose: "p", DefaultTTL: ptr("0s")}, "default_ttl"},
		{"ttl negative", PurposeCommand{Purpose: "p", DefaultTTL: ptr("-1h")}, "default_ttl"},
		{"ttl over 100 years", PurposeCommand{Purpose: "p", DefaultTTL: ptr("876001h")}, "default_ttl"},
		{"retention not a duration", PurposeCommand{Purpose: "p", Retention: ptr("2y")}, "retention"},
		{"retention zero", PurposeCommand{Purpose: "p", Retention: ptr("0s")}, "retention"},
		{"retention negative", PurposeCommand{Purpose: "p", Retention: ptr("-720h")}, "retention"},
		{"retention over 100 years", PurposeCommand{Purpose: "p", Retention: ptr("876001h")}, "retention"},
		{"description with control characters", PurposeCommand{Purpose: "p", Description: ptr("a\x00b")}, "description"},
		{"description too long", PurposeCommand{Purpose: "p", Description: ptr(strings.Repeat("x", MaxDescriptionLen+1))}, "description"},
		{"actor with newline", PurposeCommand{Purpose: "p", Actor: "a\nb"}, "actor"},
		{"idempotency key too long", PurposeCommand{Purpose: "p", IdempotencyKey: strings.Repeat("k", 129)}, "idempotency_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertFieldError(t, tt.c.Validate(), tt.field)
		})
	}
	ok := PurposeCommand{Purpose: "p", Description: ptr("multi\nline"), DefaultTTL: ptr("720h"), PolicyVersion: 3}
	require.NoError(t, ok.Validate())
}

func TestApplyPurposeDefaults(t *testing.T) {
	_, registered := setPurpose(t, NewPurpose(testPurpose), PurposeCommand{Tenant: "acme", Purpose: "marketing_email",
		PolicyVersion: 3, DefaultTTL: ptr("720h")}, t0)
	expires := t0.Add(time.Hour)
	tests := []struct {
		name    string
		purpose Purpose
		kind    Kind
		in      Command
		policy  int
		ttl     string
	}{
		{"unregistered changes nothing", NewPurpose(testPurpose), KindGrant, Command{}, 0, ""},
		{"grant gets version and ttl", registered, KindGrant, Command{}, 3, "720h"},
		{"explicit version wins", registered, KindGrant, Command{PolicyVersion: 2}, 2, "720h"},
		{"explicit ttl wins", registered, KindGrant, Command{TTL: "1h"}, 3, "1h"},
		{"expires_at wins over the ttl", registered, KindGrant, Command{ExpiresAt: &expires}, 3, ""},
		{"request gets the version only", registered, KindRequest, Command{}, 3, ""},
		{"revoke gets the version only", registered, KindRevoke, Command{}, 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.in
			tt.purpose.ApplyDefaults(tt.kind, &c)
			assert.Equal(t, tt.policy, c.PolicyVersion)
			assert.Equal(t, tt.ttl, c.TTL)
		})
	}
}

// TestOutdatedGrant: a grant below the required version is outdated and
// not allowed; a grant that is not live is never outdated.
func TestOutdatedGrant(t *testing.T) {
	granted := consentIn(t, StateGranted) // policy version 2
	tests := []struct {
		name     string
		c        Consent
		min      int
		allowed  bool
		outdated bool
	}{
		{"no minimum", granted, 0, true, false},
		{"at the minimum", granted, 2, true, false},
		{"below the minimum", granted, 3, false, true},
		{"expired below the minimum", consentIn(t, StateExpired), 3, false, false},
		{"revoked below the minimum", consentIn(t, StateRevoked), 3, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.c.View(t0, tt.min)
			assert.Equal(t, tt.allowed, st.Allowed)
			assert.Equal(t, tt.outdated, st.Outdated)
			assert.Equal(t, tt.min, st.RequiredPolicyVersion)
			raw, err := json.Marshal(st)
			require.NoError(t, err)
			assert.Equal(t, tt.outdated, strings.Contains(string(raw), `"outdated":true`))
		})
	}
}

func TestDecodePurposeEvent(t *testing.T) {
	ev, _ := setPurpose(t, NewPurpose(testPurpose), PurposeCommand{Tenant: "acme", Purpose: "marketing_email",
		Description: ptr("News"), DefaultTTL: ptr("24h")}, t0)
	payload, err := ev.Seal()
	require.NoError(t, err)
	got, err := DecodePurposeEvent(payload)
	require.NoError(t, err)
	require.NoError(t, VerifyHash(payload, &Event{Hash: got.Hash}))
	assert.Equal(t, ev, *got)

	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		require.NoError(t, json.Unmarshal(payload, &m))
		f(m)
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	t.Run("newer schema", func(t *testing.T) {
		_, err := DecodePurposeEvent(mutate(func(m map[string]any) { m["v"] = 2 }))
		require.ErrorIs(t, err, ErrNewerSchema)
	})
	t.Run("a consent type on a purpose subject", func(t *testing.T) {
		_, err := DecodePurposeEvent(mutate(func(m map[string]any) { m["type"] = string(TypeGranted) }))
		require.ErrorIs(t, err, ErrUnknownType)
	})
	for field, value := range map[string]any{"policy_version": 0, "default_ttl": "soon", "id": "", "purpose": "A", "hash": "", "type": ""} {
		t.Run(field, func(t *testing.T) {
			_, err := DecodePurposeEvent(mutate(func(m map[string]any) { m[field] = value }))
			assertFieldError(t, err, field)
		})
	}
	t.Run("not a consent event", func(t *testing.T) {
		_, err := Decode(payload)
		require.Error(t, err, "Decode refuses purpose events")
	})
}

// TestGoldenPurposeSet pins the bytes and hash of a purpose.set event.
func TestGoldenPurposeSet(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	ev, err := DecidePurpose(NewPurpose(testPurpose), PurposeCommand{Tenant: "acme", Purpose: "marketing_email",
		Description: ptr("Monthly product news by e-mail."), PolicyVersion: 2, DefaultTTL: ptr("8760h"), Actor: "legal-team"}, at)
	require.NoError(t, err)
	ev.ID = "019cab00-1a2b-7c3d-8e4f-5a6b7c8d9e00"
	payload, err := ev.Seal()
	require.NoError(t, err)
	path := filepath.Join("testdata", "golden", "purpose_set.v1.json")
	if *update {
		require.NoError(t, os.WriteFile(path, payload, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(payload))
	assert.Equal(t, "e6e78c001bbf4850c1b70a138ba3f9d10f1ac7dbf03f4023d86897ecb1bd2b2d", ev.Hash, "pinned hash")
}

func FuzzDecodePurposeEvent(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"x","type":"purpose.set","tenant":"a","purpose":"b","policy_version":1,"occurred_at":"2026-01-01T00:00:00Z","recorded_at":"2026-01-01T00:00:00Z","prev_hash":"","hash":"h"}`))
	f.Add([]byte(`{"default_ttl":"-1h"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := DecodePurposeEvent(data)
		if err != nil {
			require.Nil(t, ev)
			return
		}
		require.Equal(t, TypePurposeSet, ev.Type)
		require.NoError(t, ev.Key().Validate())
		require.GreaterOrEqual(t, ev.PolicyVersion, 1)
	})
}

func TestPurposeRetention(t *testing.T) {
	_, v1 := setPurpose(t, NewPurpose(testPurpose), PurposeCommand{Tenant: "acme", Purpose: "marketing_email",
		Retention: ptr("720h")}, t0)
	assert.Equal(t, "720h", v1.Retention)
	d, ok := v1.RetentionPeriod()
	require.True(t, ok)
	assert.Equal(t, 30*24*time.Hour, d)

	// Absent keeps it, as for default_ttl; "" clears it.
	_, v2 := setPurpose(t, v1, PurposeCommand{Tenant: "acme", Purpose: "marketing_email", PolicyVersion: 2}, t0.Add(time.Hour))
	assert.Equal(t, "720h", v2.Retention)
	_, v3 := setPurpose(t, v2, PurposeCommand{Tenant: "acme", Purpose: "marketing_email", Retention: ptr("")}, t0.Add(2*time.Hour))
	assert.Empty(t, v3.Retention)
	_, ok = v3.RetentionPeriod()
	assert.False(t, ok, "a purpose without retention keeps its records")
	unregistered := NewPurpose(testPurpose)
	_, ok = unregistered.RetentionPeriod()
	assert.False(t, ok)

	// The field is part of the stored event, and a bad stored value is
	// refused naming it.
	ev, err := DecidePurpose(NewPurpose(testPurpose), PurposeCommand{Tenant: "acme", Purpose: "marketing_email", Retention: ptr("17520h")}, t0)
	require.NoError(t, err)
	ev.ID = "01J00000000000000000000000"
	raw, err := ev.Seal()
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"retention":"17520h"`)
	back, err := DecodePurposeEvent(raw)
	require.NoError(t, err)
	assert.Equal(t, "17520h", back.Retention)
	bad := strings.Replace(string(raw), `"retention":"17520h"`, `"retention":"forever"`, 1)
	_, err = DecodePurposeEvent([]byte(bad))
	assertFieldError(t, err, "retention")
}
