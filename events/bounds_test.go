package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPolicyVersionBounds: a policy_version on the wire is 1 to 2^31-1; an
// explicit 0, which omitempty cannot tell from an absent one in Go, is
// refused at decoding, and so is anything out of range.
func TestPolicyVersionBounds(t *testing.T) {
	body := func(v string) []byte {
		return []byte(`{"subject":"s","purpose":"p","policy_version":` + v + `}`)
	}
	for _, v := range []string{"0", "-1", "2147483648", "9223372036854775807", "-9223372036854775808"} {
		c, err := DecodeCommand(body(v))
		if err == nil {
			err = c.Validate(KindRequest)
		}
		assertFieldError(t, err, "policy_version")

		var pc PurposeCommand
		err = DecodeStrict([]byte(`{"purpose":"p","policy_version":`+v+`}`), &pc)
		if err == nil {
			err = pc.Validate()
		}
		assertFieldError(t, err, "policy_version")
	}
	for _, v := range []string{"1", "2147483647"} {
		c, err := DecodeCommand(body(v))
		require.NoError(t, err)
		require.NoError(t, c.Validate(KindRequest))
		want, _ := strconv.Atoi(v)
		assert.Equal(t, want, c.PolicyVersion)
	}
	for _, absent := range []string{`{"subject":"s","purpose":"p"}`, `{"subject":"s","purpose":"p","policy_version":null}`} {
		c, err := DecodeCommand([]byte(absent))
		require.NoError(t, err)
		require.NoError(t, c.Validate(KindRequest))
		assert.Zero(t, c.PolicyVersion, "absent: the default applies")
	}
	// Go callers: 0 is absent; out of range is refused by Validate.
	for _, v := range []int{-1, MaxPolicyVersion + 1} {
		c := command(func(c *Command) { c.PolicyVersion = v })
		assertFieldError(t, c.Validate(KindGrant), "policy_version")
		pc := PurposeCommand{Purpose: "p", PolicyVersion: v}
		assertFieldError(t, pc.Validate(), "policy_version")
	}
	// Other member errors are still named as before.
	_, err := DecodeCommand([]byte(`{"subject":"s","purpose":"p","policy_version":"2"}`))
	assertFieldError(t, err, "policy_version")
	_, err = DecodeCommand([]byte(`{"subject":"s","purpose":"p","policy_version":1,"bogus":1}`))
	assertFieldError(t, err, "bogus")
}

// TestStoredPolicyVersionBounds: what Seal writes at the bounds decodes,
// and a stored event (consent or purpose) out of range is refused by
// Decode rather than misread.
func TestStoredPolicyVersionBounds(t *testing.T) {
	for _, v := range []int{1, MaxPolicyVersion} {
		c := command(func(c *Command) { c.PolicyVersion = v })
		require.NoError(t, c.Validate(KindGrant))
		ev, err := Decide(NewConsent(testKey), KindGrant, c, t0)
		require.NoError(t, err)
		ev.ID = "e1"
		payload, err := ev.Seal()
		require.NoError(t, err)
		got, err := Decode(payload)
		require.NoError(t, err)
		assert.Equal(t, v, got.PolicyVersion)
		assert.Equal(t, &ev, got)

		pe, err := DecidePurpose(NewPurpose(PurposeKey{Tenant: "t", Purpose: "p"}), PurposeCommand{Purpose: "p", PolicyVersion: v}, t0)
		require.NoError(t, err)
		pe.ID = "p1"
		payload, err = pe.Seal()
		require.NoError(t, err)
		gotPurpose, err := DecodePurposeEvent(payload)
		require.NoError(t, err)
		assert.Equal(t, v, gotPurpose.PolicyVersion)
	}
	for _, v := range []int{0, MaxPolicyVersion + 1, 1<<53 + 1, 1<<63 - 1} {
		ev := Event{V: 1, ID: "e1", Type: TypeGranted, Tenant: "t", SubjectID: "s", Purpose: "p",
			OccurredAt: t0, RecordedAt: t0, PolicyVersion: v}
		payload, err := ev.Seal()
		require.NoError(t, err)
		_, err = Decode(payload)
		assertFieldError(t, err, "policy_version")

		pe := PurposeEvent{V: 1, ID: "p1", Type: TypePurposeSet, Tenant: "t", Purpose: "p", PolicyVersion: v, OccurredAt: t0, RecordedAt: t0}
		payload, err = pe.Seal()
		require.NoError(t, err)
		_, err = DecodePurposeEvent(payload)
		assertFieldError(t, err, "policy_version")
	}
}

// TestEvidenceNumbersKeepTheirValue: evidence is stored in canonical form,
// where every number is an IEEE 754 double; a number that would be stored
// as another value is refused, naming evidence.
func TestEvidenceNumbersKeepTheirValue(t *testing.T) {
	accepted := map[string]string{ // given -> as stored
		"9007199254740992":       "9007199254740992",
		"-9007199254740992":      "-9007199254740992",
		"4.50":                   "4.5",
		"0.1":                    "0.1",
		"1e-7":                   "1e-7",
		"1E21":                   "1e+21",
		"5e-324":                 "5e-324",
		"1.7976931348623157e308": "1.7976931348623157e+308",
		"-0":                     "0",
		"0.000e-999999":          "0",
		"100000000000000000000":  "100000000000000000000",
		"123456789012345":        "123456789012345",
	}
	for given, stored := range accepted {
		c := command(func(c *Command) { c.Evidence = json.RawMessage(`{"n":` + given + `}`) })
		require.NoError(t, c.Validate(KindGrant), given)
		ev, err := Decide(NewConsent(testKey), KindGrant, c, t0)
		require.NoError(t, err)
		ev.ID = "e1"
		payload, err := ev.Seal()
		require.NoError(t, err)
		assert.Equal(t, `{"n":`+stored+`}`, string(ev.Evidence), "Seal leaves the event as stored")
		got, err := Decode(payload)
		require.NoError(t, err)
		assert.Equal(t, string(ev.Evidence), string(got.Evidence))
	}
	for _, given := range []string{
		"9007199254740993",      // 2^53+1: would be 9007199254740992
		"-9007199254740993",     //
		"9223372036854775807",   // would be 9223372036854776000
		"12345678901234567890",  // would be 12345678901234567000
		"1.00000000000000001",   // would be 1
		"1e-400",                // underflows to 0
		"-2.5e-400",             //
		"0.1e-99999999999",      //
		"1e400",                 // beyond the double range
		"123456789012345678e-2", // 1234567890123456.78 would be 1234567890123456.8
	} {
		c := command(func(c *Command) { c.Evidence = json.RawMessage(`{"a":[{"n":` + given + `}]}`) })
		err := c.Validate(KindGrant)
		assertFieldError(t, err, "evidence")
		assert.Contains(t, err.Error(), strings.TrimPrefix(given, "-")[:5], "the number is named")
	}
}

// nested returns evidence whose objects nest depth levels deep, the
// evidence object being level 1.
func nested(depth int) json.RawMessage {
	return json.RawMessage(strings.Repeat(`{"a":`, depth-1) + `{}` + strings.Repeat(`}`, depth-1))
}

// TestEvidenceDepth: the depth limit is counted one way, from the evidence
// object; what Validate accepts at the limit is decided, sealed and
// decoded, and one level more is a *FieldError naming evidence.
func TestEvidenceDepth(t *testing.T) {
	c := command(func(c *Command) { c.Evidence = nested(MaxEvidenceDepth) })
	require.NoError(t, c.Validate(KindGrant))
	ev, err := Decide(NewConsent(testKey), KindGrant, c, t0)
	require.NoError(t, err)
	ev.ID = "e1"
	payload, err := ev.Seal()
	require.NoError(t, err)
	got, err := Decode(payload)
	require.NoError(t, err)
	require.NoError(t, VerifyHash(payload, got))
	assert.Equal(t, string(ev.Evidence), string(got.Evidence))
	// The same payload with whitespace takes the general decoder: same rule.
	var spaced map[string]any
	require.NoError(t, json.Unmarshal(payload, &spaced))
	indented, err := json.MarshalIndent(spaced, "", " ")
	require.NoError(t, err)
	_, err = Decode(indented)
	require.NoError(t, err)

	// Arrays count as objects do.
	arrays := json.RawMessage(`{"a":` + strings.Repeat(`[`, MaxEvidenceDepth-1) + strings.Repeat(`]`, MaxEvidenceDepth-1) + `}`)
	c = command(func(c *Command) { c.Evidence = arrays })
	require.NoError(t, c.Validate(KindGrant))

	for _, deep := range []json.RawMessage{nested(MaxEvidenceDepth + 1), nested(MaxCanonicalDepth + 10),
		json.RawMessage(`{"a":` + strings.Repeat(`[`, MaxEvidenceDepth) + strings.Repeat(`]`, MaxEvidenceDepth) + `}`)} {
		c := command(func(c *Command) { c.Evidence = deep })
		err := c.Validate(KindGrant)
		assertFieldError(t, err, "evidence")
		assert.Contains(t, err.Error(), fmt.Sprintf("nested deeper than %d levels", MaxEvidenceDepth))
	}
}
