package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testDataKey is a published test key: the v2 golden files and vectors are
// sealed under it.
func testDataKey() DataKey {
	k := sha256.Sum256([]byte("consent ledger test data key: published, never use it"))
	return DataKey{ID: "dk-test-1", Key: k[:]}
}

// testSubjectKey stands for the subject key a caller computes (a keyed
// hash in production): any 32 lowercase hex digits.
const testSubjectKey = "5e1f0c2a9b7d4e3f8a6c1b0d2e4f6a8c"

// fixedNonce returns a reproducible nonce for an event id (tests only: a
// real seal draws a random one).
func fixedNonce(id string) *bytes.Reader {
	sum := sha256.Sum256([]byte("nonce " + id))
	return bytes.NewReader(sum[:nonceSize])
}

// sealedGrant is a v2 grant with every personal field set, sealed under
// testDataKey with a fixed nonce.
func sealedGrant(t *testing.T) (Event, []byte) {
	t.Helper()
	c := command(func(c *Command) {
		c.Actor = "subject"
		c.Method = "dialog"
		c.Evidence = json.RawMessage(`{"ip": "203.0.113.7", "ui": "form-v3", "score": 4.50}`)
		c.TTL = "8760h"
	})
	require.NoError(t, c.Validate(KindGrant))
	ev, err := Decide(NewConsent(testKey), KindGrant, c, t0)
	require.NoError(t, err)
	ev.ID = "ev-grant-1"
	ev.SubjectKey = testSubjectKey
	payload, err := ev.sealWith(testDataKey(), fixedNonce(ev.ID))
	require.NoError(t, err)
	return ev, payload
}

func TestSealWithStoresNoPersonalFieldInTheClear(t *testing.T) {
	ev, payload := sealedGrant(t)
	for _, plain := range []string{"alice@example.com", "203.0.113.7", "form-v3", `"subject":`, `"actor":`, `"evidence":`} {
		assert.NotContains(t, string(payload), plain)
	}
	for _, member := range []string{`"v":2`, `"subject_key":"` + testSubjectKey + `"`, `"key_id":"dk-test-1"`, `"sealed":"`, `"method":"dialog"`, `"type":"consent.granted"`} {
		assert.Contains(t, string(payload), member)
	}
	canonical, err := Canonical(payload)
	require.NoError(t, err)
	assert.Equal(t, string(canonical), string(payload), "stored in canonical form")

	// e is the event as stored and opened.
	assert.Equal(t, SchemaVersion, ev.V)
	assert.Equal(t, "alice@example.com", ev.SubjectID)
	assert.Equal(t, `{"ip":"203.0.113.7","score":4.5,"ui":"form-v3"}`, string(ev.Evidence))
}

func TestSealedEventRoundTrips(t *testing.T) {
	ev, payload := sealedGrant(t)

	got, err := Decode(payload)
	require.NoError(t, err)
	assert.Equal(t, testSubjectKey, got.SubjectKey)
	assert.Equal(t, "dk-test-1", got.KeyID)
	assert.Equal(t, ev.Sealed, got.Sealed)
	assert.Empty(t, got.SubjectID, "personal fields stay sealed until Open")
	assert.Empty(t, got.Actor)
	assert.Empty(t, got.Evidence)
	assert.True(t, got.IsSealed())

	again, err := got.Seal()
	require.NoError(t, err)
	assert.Equal(t, string(payload), string(again), "resealing a decoded v2 event gives its stored bytes")

	require.NoError(t, got.Open(testDataKey()))
	assert.Equal(t, &ev, got, "Open gives back the event SealWith wrote")
	again, err = got.Seal()
	require.NoError(t, err)
	assert.Equal(t, string(payload), string(again), "and so does resealing it opened")
}

func TestSealDoesNotWriteV2WithoutASealedBlob(t *testing.T) {
	ev, err := Decide(NewConsent(testKey), KindGrant, command(nil), t0)
	require.NoError(t, err)
	ev.ID, ev.V, ev.SubjectKey = "ev-1", SchemaVersion, testSubjectKey
	_, err = ev.Seal()
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "sealed", fe.Field)
}

// Seal never writes what Decode refuses: v2's members on a v1 event (as
// Decide gives for a consent folded from v2 events, when no key is at
// hand) are refused rather than written on the wrong subject.
func TestSealRefusesV2MembersOnV1(t *testing.T) {
	cur := NewConsent(Key{Tenant: testKey.Tenant, Purpose: testKey.Purpose, SubjectKey: testSubjectKey})
	ev, err := Decide(cur, KindGrant, command(nil), t0)
	require.NoError(t, err)
	assert.Equal(t, testSubjectKey, ev.SubjectKey, "Decide keeps the consent's subject key")
	ev.ID = "ev-1"
	_, err = ev.Seal()
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "subject_key", fe.Field)
	_, err = ev.SealWith(testDataKey())
	require.NoError(t, err, "SealWith writes it as v2")
}

func TestSealStillWritesV1(t *testing.T) {
	ev, err := Decide(NewConsent(testKey), KindGrant, command(nil), t0)
	require.NoError(t, err)
	ev.ID = "ev-1"
	assert.Equal(t, SchemaVersionClear, ev.V)
	payload, err := ev.Seal()
	require.NoError(t, err)
	assert.Contains(t, string(payload), `"subject":"alice@example.com"`)
	assert.Contains(t, string(payload), `"v":1`)
	assert.NotContains(t, string(payload), `"subject_key"`)
	got, err := Decode(payload)
	require.NoError(t, err)
	assert.Equal(t, &ev, got)
	require.NoError(t, got.Open(DataKey{ID: "any", Key: make([]byte, DataKeySize)}), "nothing to open in v1")
	assert.Equal(t, &ev, got)
}

func TestSealWithRefuses(t *testing.T) {
	base, err := Decide(NewConsent(testKey), KindGrant, command(nil), t0)
	require.NoError(t, err)
	base.ID, base.SubjectKey = "ev-1", testSubjectKey
	tests := []struct {
		name  string
		edit  func(e *Event, dk *DataKey)
		field string
	}{
		{"no subject key", func(e *Event, _ *DataKey) { e.SubjectKey = "" }, "subject_key"},
		{"subject key not hex", func(e *Event, _ *DataKey) { e.SubjectKey = strings.ToUpper(testSubjectKey) }, "subject_key"},
		{"no subject", func(e *Event, _ *DataKey) { e.SubjectID = "" }, "subject"},
		{"no key id", func(_ *Event, dk *DataKey) { dk.ID = "" }, "key_id"},
		{"erased", func(e *Event, _ *DataKey) { e.Type = TypeErased }, "type"},
		{"short key", func(_ *Event, dk *DataKey) { dk.Key = dk.Key[:16] }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, dk := base, testDataKey()
			tt.edit(&ev, &dk)
			before := ev
			_, err := ev.SealWith(dk)
			require.Error(t, err)
			var fe *FieldError
			if tt.field != "" {
				require.ErrorAs(t, err, &fe)
				assert.Equal(t, tt.field, fe.Field)
			} else {
				assert.Contains(t, err.Error(), "16 bytes, want 32")
			}
			assert.Equal(t, before, ev, "unchanged on error")
		})
	}
}

func TestSealWithDrawsAFreshNonce(t *testing.T) {
	ev, err := Decide(NewConsent(testKey), KindGrant, command(nil), t0)
	require.NoError(t, err)
	ev.ID, ev.SubjectKey = "ev-1", testSubjectKey
	a, b := ev, ev
	_, err = a.SealWith(testDataKey())
	require.NoError(t, err)
	_, err = b.SealWith(testDataKey())
	require.NoError(t, err)
	assert.NotEqual(t, a.Sealed, b.Sealed)
	assert.NotEqual(t, a.Hash, b.Hash)
}

func TestOpenRefusesWrongKeysAndTampering(t *testing.T) {
	ev, payload := sealedGrant(t)
	stored, err := Decode(payload)
	require.NoError(t, err)

	otherBytes := testDataKey()
	otherBytes.Key = bytes.Repeat([]byte{7}, DataKeySize)
	otherID := testDataKey()
	otherID.ID = "dk-test-2"

	blob, err := base64.StdEncoding.DecodeString(stored.Sealed)
	require.NoError(t, err)
	flip := func(i int) string {
		b := bytes.Clone(blob)
		b[i] ^= 1
		return base64.StdEncoding.EncodeToString(b)
	}
	// Another event of the same person, sealed under the same key.
	other := ev
	other.ID = "ev-grant-2"
	_, err = other.sealWith(testDataKey(), fixedNonce(other.ID))
	require.NoError(t, err)

	tests := []struct {
		name string
		edit func(e *Event)
		key  DataKey
	}{
		{"another key with the same id", nil, otherBytes},
		{"another key id", nil, otherID},
		{"a flipped ciphertext byte", func(e *Event) { e.Sealed = flip(nonceSize + 3) }, testDataKey()},
		{"a flipped tag byte", func(e *Event) { e.Sealed = flip(len(blob) - 1) }, testDataKey()},
		{"a flipped nonce byte", func(e *Event) { e.Sealed = flip(0) }, testDataKey()},
		{"a truncated blob", func(e *Event) { e.Sealed = base64.StdEncoding.EncodeToString(blob[:nonceSize+4]) }, testDataKey()},
		{"not base64", func(e *Event) { e.Sealed = "!!" }, testDataKey()},
		{"the blob moved to another event", func(e *Event) { e.Sealed = other.Sealed }, testDataKey()},
		{"another id (AAD)", func(e *Event) { e.ID = other.ID }, testDataKey()},
		{"another subject key (AAD)", func(e *Event) { e.SubjectKey = "00000000000000000000000000000000" }, testDataKey()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := *stored
			if tt.edit != nil {
				tt.edit(&e)
			}
			before := e
			err := e.Open(tt.key)
			require.ErrorIs(t, err, ErrSealedOpen)
			assert.Equal(t, before, e, "unchanged on error")
		})
	}
	// The other event itself opens: it is only the move that fails.
	moved := *stored
	moved.ID, moved.Sealed = other.ID, other.Sealed
	require.NoError(t, moved.Open(testDataKey()))
	assert.Equal(t, "alice@example.com", moved.SubjectID)

	short := testDataKey()
	short.Key = short.Key[:31]
	err = stored.Open(short)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrSealedOpen, "a malformed key is the caller's error")
}

// A v2 event verifies with no key at all: the hash is over the stored
// bytes, as docs/verify_hash.py computes it.
func TestSealedEventVerifiesWithoutKeys(t *testing.T) {
	ev, payload := sealedGrant(t)
	sum, err := HashOf(payload)
	require.NoError(t, err)
	assert.Equal(t, ev.Hash, sum)
	canonical, err := Canonical(payload, "hash")
	require.NoError(t, err)
	assert.Equal(t, ev.Hash, sha256Hex(canonical), "SHA-256 of the canonical payload without hash, as verify_hash.py computes it")

	subj := "consent.events.acme.marketing_email." + testSubjectKey
	assert.Equal(t, subj, ev.Key().NATSSubject())
	for _, owned := range []bool{false, true} {
		got, check, err := CheckMessage(subj, string(TypeGranted), bytes.Clone(payload), owned)
		require.NoError(t, err)
		assert.Empty(t, check)
		assert.Empty(t, got.SubjectID)
	}
	_, check, _ := CheckMessage(testKey.NATSSubject(), string(TypeGranted), payload, false)
	assert.Equal(t, CheckSubject, check, "on the v1 subject of the same person: not its subject")

	tampered := bytes.Replace(payload, []byte(`"method":"dialog"`), []byte(`"method":"phone"`), 1)
	_, check, err = CheckMessage(subj, string(TypeGranted), tampered, false)
	assert.Equal(t, CheckHash, check)
	require.ErrorIs(t, err, ErrBadHash)

	// The hash does not depend on the data key: only on the stored bytes.
	other := ev
	dk := testDataKey()
	dk.Key = bytes.Repeat([]byte{1}, DataKeySize)
	_, err = other.sealWith(dk, fixedNonce(ev.ID))
	require.NoError(t, err)
	assert.NotEqual(t, ev.Sealed, other.Sealed)
	assert.NotEqual(t, ev.Hash, other.Hash)
	resealed, err := Decode(payload)
	require.NoError(t, err)
	require.NoError(t, VerifyHash(payload, resealed))
}

func TestDecodeChecksTheSchemaVersion(t *testing.T) {
	_, v2 := sealedGrant(t)
	v1 := validEventPayload(t)
	edit := func(payload []byte, f func(m map[string]any)) []byte {
		var m map[string]any
		require.NoError(t, json.Unmarshal(payload, &m))
		f(m)
		return sealedMap(t, m)
	}
	tests := []struct {
		name    string
		payload []byte
		field   string
	}{
		{"v2 with the subject in the clear", edit(v2, func(m map[string]any) { m["subject"] = "alice@example.com" }), "subject"},
		{"v2 with the actor in the clear", edit(v2, func(m map[string]any) { m["actor"] = "subject" }), "actor"},
		{"v2 with evidence in the clear", edit(v2, func(m map[string]any) { m["evidence"] = map[string]any{"ip": "x"} }), "evidence"},
		{"v2 with a reason in the clear", edit(v2, func(m map[string]any) { m["reason"] = "x" }), "reason"},
		{"v2 without subject_key", edit(v2, func(m map[string]any) { delete(m, "subject_key") }), "subject_key"},
		{"v2 with a subject_key not hex", edit(v2, func(m map[string]any) { m["subject_key"] = "alice@example.com" }), "subject_key"},
		{"v2 without key_id", edit(v2, func(m map[string]any) { delete(m, "key_id") }), "key_id"},
		{"v2 without sealed", edit(v2, func(m map[string]any) { delete(m, "sealed") }), "sealed"},
		{"v2 with sealed not base64", edit(v2, func(m map[string]any) { m["sealed"] = "not base64!" }), "sealed"},
		{"v2 with sealed too short", edit(v2, func(m map[string]any) { m["sealed"] = "AAAA" }), "sealed"},
		{"v2 with sealed in the URL alphabet", edit(v2, func(m map[string]any) {
			m["sealed"] = strings.Repeat("-_", 30)
		}), "sealed"},
		{"v2 with sealed unpadded", edit(v2, func(m map[string]any) { m["sealed"] = strings.Repeat("A", 43) }), "sealed"},
		{"v1 with sealed", edit(v1, func(m map[string]any) { m["sealed"] = "AAAA" }), "sealed"},
		{"v1 with key_id", edit(v1, func(m map[string]any) { m["key_id"] = "k" }), "key_id"},
		{"v1 with subject_key", edit(v1, func(m map[string]any) { m["subject_key"] = testSubjectKey }), "subject_key"},
		{"v1 erased", edit(v1, func(m map[string]any) { m["type"] = string(TypeErased) }), "v"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.payload)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field, "%v", err)
		})
	}
}

func TestFastPathsTakeV2(t *testing.T) {
	ev, payload := sealedGrant(t)
	fast, _, ok := decodeCanonicalEvent(payload, string(payload))
	require.True(t, ok, "a sealed payload takes the fast decode path")
	var slow Event
	require.NoError(t, DecodeStrict(payload, &slow))
	assert.Equal(t, &slow, fast)
	checkFastPaths(t, payload)

	stored := ev
	stored.clearPersonal()
	general := stored
	want, err := general.sealGeneral()
	require.NoError(t, err)
	got, ok := stored.sealFast()
	require.True(t, ok, "a v2 event takes the direct seal path")
	assert.Equal(t, string(want), string(got))
	assert.Equal(t, string(payload), string(got))
}

// erasedHistory is a consent granted (v2), erased, and requested again.
func erasedHistory(t *testing.T) (grant, erased, again Event) {
	t.Helper()
	grant, _ = sealedGrant(t)
	cur := Evolve(NewConsent(testKey), &grant, 1)
	assert.Equal(t, testSubjectKey, cur.SubjectKey)

	var err error
	erased, err = DecideErase(cur, Erase{Reason: "erasure requested (ticket 4711)", RecordedBy: "dpo@acme"}, t0.Add(time.Hour))
	require.NoError(t, err)
	erased.ID = "ev-erased-1"
	payload, err := erased.Seal()
	require.NoError(t, err)
	got, err := Decode(payload)
	require.NoError(t, err)
	require.Equal(t, &erased, got)
	cur = Evolve(cur, got, 2)

	again, err = Decide(cur, KindRequest, command(nil), t0.Add(2*time.Hour))
	require.NoError(t, err)
	again.ID = "ev-request-2"
	_, err = again.sealWith(testDataKey(), fixedNonce(again.ID))
	require.NoError(t, err)
	return grant, erased, again
}

func TestErasedEvent(t *testing.T) {
	grant, erased, _ := erasedHistory(t)
	assert.Equal(t, SchemaVersion, erased.V)
	assert.Equal(t, TypeErased, erased.Type)
	assert.Equal(t, testSubjectKey, erased.SubjectKey)
	assert.Equal(t, grant.Hash, erased.PrevHash, "the erasure links to the consent's last event")
	assert.Equal(t, grant.PolicyVersion, erased.PolicyVersion)
	assert.Empty(t, erased.SubjectID+erased.Actor+erased.KeyID+erased.Sealed)
	assert.Empty(t, erased.Evidence)

	payload, err := erased.Seal()
	require.NoError(t, err)
	assert.NotContains(t, string(payload), "alice")
	assert.Contains(t, string(payload), `"reason":"erasure requested (ticket 4711)"`, "the operator's reason is in the clear")
	_, check, err := CheckMessage("consent.events.acme.marketing_email."+testSubjectKey, string(TypeErased), payload, false)
	require.NoError(t, err)
	assert.Empty(t, check)

	c := Evolve(Consent{}, &erased, 2)
	assert.Equal(t, StateErased, c.State)
	assert.Equal(t, testSubjectKey, c.SubjectKey)
	st := c.View(t0.Add(3*time.Hour), 0)
	assert.Equal(t, StateErased, st.State)
	assert.False(t, st.Allowed)
	assert.False(t, st.Outdated)

	_, err = erased.SealWith(testDataKey())
	require.Error(t, err, "an erasure has nothing to seal")
}

func TestErasedEventRefusesPersonalMembers(t *testing.T) {
	_, erased, _ := erasedHistory(t)
	payload, err := erased.Seal()
	require.NoError(t, err)
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		require.NoError(t, json.Unmarshal(payload, &m))
		f(m)
		return sealedMap(t, m)
	}
	for field, p := range map[string][]byte{
		"key_id":  edit(func(m map[string]any) { m["key_id"] = "dk-test-1" }),
		"sealed":  edit(func(m map[string]any) { m["sealed"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }),
		"subject": edit(func(m map[string]any) { m["subject"] = "alice@example.com" }),
		"actor":   edit(func(m map[string]any) { m["actor"] = "x" }),
		"reason":  edit(func(m map[string]any) { delete(m, "reason") }),
	} {
		_, err := Decode(p)
		var fe *FieldError
		require.ErrorAs(t, err, &fe, field)
		assert.Equal(t, field, fe.Field)
	}
}

func TestAfterAnErasureANewConsentStartsAFreshChain(t *testing.T) {
	_, erased, again := erasedHistory(t)
	assert.Empty(t, again.PrevHash, "a fresh chain")
	assert.Equal(t, testSubjectKey, again.SubjectKey, "on the same subject")

	cur := Evolve(Consent{}, &erased, 2)
	assert.Empty(t, cur.NextPrevHash())
	_, err := Decide(cur, KindRevoke, command(nil), t0.Add(2*time.Hour))
	var te *TransitionError
	require.ErrorAs(t, err, &te, "nothing to revoke after an erasure")
	assert.Equal(t, StateErased, te.From)
	for _, kind := range []Kind{KindRequest, KindGrant, KindDeny} {
		ev, err := Decide(cur, kind, command(nil), t0.Add(2*time.Hour))
		require.NoError(t, err, kind)
		assert.Empty(t, ev.PrevHash, kind)
	}
	_, err = DecideExpiry(cur, t0.Add(2*time.Hour))
	require.ErrorIs(t, err, ErrForbidden)
	q := DecideQuarantine(cur, Quarantine{Seq: 9, Reason: "stray", Actor: "ops"}, t0.Add(2*time.Hour))
	assert.Equal(t, StateErased, q.State, "a quarantine resumes the erased state")
	assert.Empty(t, q.PrevHash, "and starts from the end of the chain")

	next := Evolve(cur, &again, 3)
	assert.Equal(t, StateRequested, next.State)
	assert.Equal(t, again.Hash, next.NextPrevHash())
}

func TestDecideEraseRefuses(t *testing.T) {
	granted, _ := sealedGrant(t)
	cur := Evolve(NewConsent(testKey), &granted, 1)
	_, err := DecideErase(NewConsent(testKey), Erase{Reason: "r"}, t0)
	require.ErrorIs(t, err, ErrForbidden, "nothing to erase")
	erased, err := DecideErase(cur, Erase{Reason: "r"}, t0)
	require.NoError(t, err)
	_, err = DecideErase(Evolve(cur, &erased, 2), Erase{Reason: "r"}, t0)
	var te *TransitionError
	require.ErrorAs(t, err, &te, "erased already")
	assert.Equal(t, StateErased, te.From)

	for field, x := range map[string]Erase{
		"reason":      {},
		"recorded_by": {Reason: "r", RecordedBy: "a\x01b"},
	} {
		_, err := DecideErase(cur, x, t0)
		var fe *FieldError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, field, fe.Field)
	}
	_, err = DecideErase(cur, Erase{Reason: strings.Repeat("x", MaxReasonLen+1)}, t0)
	require.ErrorIs(t, err, ErrInvalid)
}

// A consent of v1 events is erased on its own (unkeyed) subject: the
// erasure names the subject key, never the id.
func TestDecideEraseOfAV1Consent(t *testing.T) {
	ev, err := Decide(NewConsent(testKey), KindGrant, command(nil), t0)
	require.NoError(t, err)
	ev.ID = "ev-1"
	_, err = ev.Seal()
	require.NoError(t, err)
	cur := Evolve(NewConsent(testKey), &ev, 1)
	erased, err := DecideErase(cur, Erase{Reason: "asked"}, t0.Add(time.Minute))
	require.NoError(t, err)
	erased.ID = "ev-2"
	payload, err := erased.Seal()
	require.NoError(t, err)
	assert.NotContains(t, string(payload), testKey.SubjectID)
	assert.Equal(t, SubjectKey(testKey.Tenant, testKey.SubjectID), erased.SubjectKey)
	_, check, err := CheckMessage(testKey.NATSSubject(), string(TypeErased), payload, false)
	require.NoError(t, err)
	assert.Empty(t, check, "on the consent's own subject")
}

func TestKeyBySubjectKey(t *testing.T) {
	k := Key{Tenant: "acme", Purpose: "marketing_email", SubjectKey: testSubjectKey}
	require.NoError(t, k.Validate())
	assert.Equal(t, "consent.events.acme.marketing_email."+testSubjectKey, k.NATSSubject())
	assert.True(t, k.IsNATSSubject(k.NATSSubject()))
	assert.Equal(t, k.NATSSubject(), string(k.AppendNATSSubject(nil)))
	assert.False(t, k.IsNATSSubject(testKey.NATSSubject()))
	assert.Equal(t, SubjectKey(testKey.Tenant, testKey.SubjectID), testKey.Token(), "v1: the unkeyed subject key")

	k.SubjectKey = "not-hex"
	var fe *FieldError
	require.ErrorAs(t, k.Validate(), &fe)
	assert.Equal(t, "subject_key", fe.Field)
	k.SubjectKey = ""
	require.ErrorAs(t, k.Validate(), &fe, "no subject at all")
	assert.Equal(t, "subject", fe.Field)
}

func TestSealedAAD(t *testing.T) {
	assert.Equal(t, `{"id":"ev-1","subject_key":"`+testSubjectKey+`"}`, string(SealedAAD("ev-1", testSubjectKey)))
	aad := SealedAAD("é\"\n", testSubjectKey)
	c, err := Canonical(aad)
	require.NoError(t, err)
	assert.Equal(t, string(c), string(aad), "the AAD is canonical JSON")
	assert.False(t, errors.Is(nil, ErrSealedOpen))
}

// The plaintext written directly is the canonical JSON of the personal
// fields, as encoding/json followed by Canonical writes it.
func TestPersonalPlaintextIsCanonical(t *testing.T) {
	for _, ev := range []Event{
		{SubjectID: "zoë 🎉@example.com", Actor: "a \"quoted\"\n\u2028 <&>", Reason: "r\x7f\t", Evidence: json.RawMessage(` {"b": 4.50, "a": ["\u00e9", 1e21]} `)},
		{SubjectID: "s"},
		{SubjectID: "s", Reason: "only a reason"},
		{SubjectID: "bad \xff utf-8", Actor: "x"},
	} {
		plain, _, err := ev.personalPlaintext()
		require.NoError(t, err)
		raw, err := json.Marshal(personal{Subject: ev.SubjectID, Actor: ev.Actor, Evidence: ev.Evidence, Reason: ev.Reason})
		require.NoError(t, err)
		want, err := Canonical(raw)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(plain))
	}
}
