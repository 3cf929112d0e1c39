package events

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sealedMap seals a map as the ledger would seal an event: "hash" set to
// HashOf the rest.
func sealedMap(t *testing.T, m map[string]any) []byte {
	t.Helper()
	delete(m, "hash")
	raw, err := json.Marshal(m)
	require.NoError(t, err)
	sum, err := HashOf(raw)
	require.NoError(t, err)
	m["hash"] = sum
	raw, err = json.Marshal(m)
	require.NoError(t, err)
	out, err := Canonical(raw)
	require.NoError(t, err)
	return out
}

func TestCheckMessageStopsOnlyForAVerifiedNewerEvent(t *testing.T) {
	subj := testKey.NATSSubject()
	newer := func(f func(m map[string]any)) []byte {
		var m map[string]any
		require.NoError(t, json.Unmarshal(validEventPayload(t), &m))
		m["tenant"], m["subject"], m["purpose"] = testKey.Tenant, testKey.SubjectID, testKey.Purpose
		f(m)
		return sealedMap(t, m)
	}
	v2 := newer(func(m map[string]any) { m["v"] = SchemaVersion + 1; m["colour"] = "blue" })
	erased := newer(func(m map[string]any) { m["type"] = "consent.shredded" })

	tests := []struct {
		name, subj string
		payload    []byte
		check      string
	}{
		{"7 bytes", "consent.events.x.y.z", []byte(`{"v":2}`), CheckDecode},
		{"7 bytes on a consent subject", subj, []byte(`{"v":2}`), CheckDecode},
		{"not JSON", subj, []byte(`garbage`), CheckDecode},
		{"newer schema, verified", subj, v2, CheckNewer},
		{"unknown type, verified", subj, erased, CheckNewer},
		{"newer schema on a subject that does not parse", "consent.events.x.y.z", v2, CheckDecode},
		{"newer schema with a wrong hash", subj, []byte(string(v2[:len(v2)-2]) + `0"}`), CheckDecode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, check, err := CheckMessage(tt.subj, "", tt.payload, false)
			assert.Nil(t, ev)
			assert.Equal(t, tt.check, check)
			require.Error(t, err)
			if tt.check == CheckNewer {
				var ne *NewerEventError
				require.ErrorAs(t, err, &ne)
				assert.True(t, errors.Is(err, ErrNewerSchema) || errors.Is(err, ErrUnknownType))
			}
		})
	}
	var ne *NewerEventError
	_, _, err := CheckMessage(subj, "", v2, true)
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, SchemaVersion+1, ne.Version)
	assert.Contains(t, err.Error(), "v=3")
}

func TestCheckMessageNamesTheFailedCheck(t *testing.T) {
	grant := command(nil)
	ev, err := Decide(NewConsent(testKey), KindGrant, grant, t0)
	require.NoError(t, err)
	ev.ID = "ev-1"
	payload, err := ev.Seal()
	require.NoError(t, err)
	subj := testKey.NATSSubject()

	got, check, err := CheckMessage(subj, string(TypeGranted), payload, false)
	require.NoError(t, err)
	assert.Equal(t, "", check)
	assert.Equal(t, ev.Hash, got.Hash)

	_, check, _ = CheckMessage(subj, string(TypeDenied), payload, false)
	assert.Equal(t, CheckHeader, check)
	other := Key{Tenant: "acme", SubjectID: "bob", Purpose: "marketing_email"}
	_, check, _ = CheckMessage(other.NATSSubject(), string(TypeGranted), payload, false)
	assert.Equal(t, CheckSubject, check)
	var m map[string]any
	require.NoError(t, json.Unmarshal(payload, &m))
	m["policy_version"] = 7 // still a valid event, no longer the one hashed
	tampered, err := json.Marshal(m)
	require.NoError(t, err)
	evT, check, err := CheckMessage(subj, string(TypeGranted), tampered, false)
	assert.Equal(t, CheckHash, check)
	assert.ErrorIs(t, err, ErrBadHash)
	assert.NotNil(t, evT)
}

func TestParseConsentSubject(t *testing.T) {
	tenant, purpose, key, ok := ParseConsentSubject(testKey.NATSSubject())
	require.True(t, ok)
	assert.Equal(t, []string{"acme", "marketing_email", SubjectKey("acme", testKey.SubjectID)}, []string{tenant, purpose, key})
	for _, s := range []string{"consent.events.x.y.z", "consent.events.acme.p", "consent.purposes.acme.p",
		"consent.events.acme.p." + "DAB6CACA511CD6A9F2DEE90C3F74677B", "consent.events.Acme.p.dab6caca511cd6a9f2dee90c3f74677b",
		"consent.events.acme.p.dab6caca511cd6a9f2dee90c3f74677b.x"} {
		_, _, _, ok := ParseConsentSubject(s)
		assert.False(t, ok, s)
	}
}

func TestQuarantineEvent(t *testing.T) {
	granted := consentIn(t, StateGranted)
	granted.ExpiresAt = ptr(t0.Add(24 * time.Hour))
	ev := DecideQuarantine(granted, Quarantine{Seq: 7, Reason: "stray publish", Actor: "ops"}, t0)
	ev.ID = "q-1"
	payload, err := ev.Seal()
	require.NoError(t, err)
	assert.Contains(t, string(payload), `"quarantined_seq":7`)
	assert.Contains(t, string(payload), `"state":"granted"`)

	back, err := Decode(payload)
	require.NoError(t, err)
	require.NoError(t, VerifyHash(payload, back))
	assert.Equal(t, TypeQuarantined, back.Type)
	assert.Equal(t, uint64(7), back.QuarantinedSeq)
	assert.Equal(t, granted.Hash, back.PrevHash, "it links to the last good event")
	assert.True(t, back.Resumes(granted))
	assert.False(t, back.Resumes(consentIn(t, StateRevoked)))

	// The state it resumes follows from the event alone.
	next := Evolve(NewConsent(testKey), back, 9)
	assert.Equal(t, StateGranted, next.State)
	assert.Equal(t, granted.PolicyVersion, next.PolicyVersion)
	assert.Equal(t, *granted.ExpiresAt, *next.ExpiresAt)
	assert.Equal(t, uint64(9), next.Seq)
	assert.Equal(t, back.Hash, next.Hash, "the next event links to the quarantine")

	// Its members are its own.
	for field, edit := range map[string]func(m map[string]any){
		"quarantined_seq": func(m map[string]any) { m["quarantined_seq"] = 3 },
		"state":           func(m map[string]any) { m["state"] = "granted" },
	} {
		_, err := Decode(editEvent(t, edit))
		assertFieldError(t, err, field)
	}
	var m map[string]any
	require.NoError(t, json.Unmarshal(payload, &m))
	for field, edit := range map[string]func(){
		"quarantined_seq": func() { delete(m, "quarantined_seq") },
		"state":           func() { m["quarantined_seq"] = 7; m["state"] = "allowed" },
		"reason":          func() { m["state"] = "granted"; delete(m, "reason") },
	} {
		edit()
		raw, err := json.Marshal(m)
		require.NoError(t, err)
		_, err = Decode(raw)
		assertFieldError(t, err, field)
	}
}

func TestViewOfAConsentWithAViolation(t *testing.T) {
	c := consentIn(t, StateGranted)
	c.ViolationSeq = 5
	st := c.View(t0, 0)
	assert.Equal(t, StateIntegrityViolation, st.State)
	assert.False(t, st.Allowed)
	assert.False(t, st.Outdated)
	assert.Equal(t, uint64(5), st.ViolationSeq)
	assert.Equal(t, c.Seq, st.Seq, "the rest describes the last good state")
	raw, err := json.Marshal(st)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"state":"integrity_violation"`)
	assert.Contains(t, string(raw), `"violation_seq":5`)
}

func TestQuarantineValidate(t *testing.T) {
	ok := Quarantine{Seq: 3, Reason: "r", Actor: "ops"}
	require.NoError(t, ok.Validate())
	for field, q := range map[string]Quarantine{
		"seq":     {Reason: "r", Actor: "a"},
		"reason":  {Seq: 1, Actor: "a"},
		"actor":   {Seq: 1, Reason: "r"},
		"tenant":  {Seq: 1, Reason: "r", Actor: "a", Tenant: "A"},
		"purpose": {Seq: 1, Reason: "r", Actor: "a", SubjectID: "s"},
	} {
		assertFieldError(t, q.Validate(), field)
	}
}

func TestAppendNATSSubject(t *testing.T) {
	assert.Equal(t, testKey.NATSSubject(), string(testKey.AppendNATSSubject(nil)))
	var buf [192]byte
	assert.Zero(t, testing.AllocsPerRun(10, func() { _ = testKey.AppendNATSSubject(buf[:0]) }))
}
