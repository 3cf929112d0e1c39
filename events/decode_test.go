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

func TestDecodeCommand(t *testing.T) {
	c, err := DecodeCommand([]byte(`{
		"tenant": "acme", "subject": "a.*.> 🎉", "purpose": "p", "policy_version": 3,
		"description": "d", "expires_at": "2027-01-01T01:00:00+01:00", "ttl": "", "actor": "a",
		"method": "api", "evidence": {"x": [1, 2]}, "reason": "", "occurred_at": "2026-03-01T12:00:00Z",
		"idempotency_key": "k", "expected_seq": 0}`))
	require.NoError(t, err)
	assert.Equal(t, "acme", c.Tenant)
	assert.Equal(t, "a.*.> 🎉", c.SubjectID)
	assert.Equal(t, 3, c.PolicyVersion)
	require.NotNil(t, c.ExpiresAt)
	assert.True(t, c.ExpiresAt.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)))
	require.NotNil(t, c.OccurredAt)
	assert.Equal(t, t0, *c.OccurredAt)
	assert.JSONEq(t, `{"x":[1,2]}`, string(c.Evidence))
	require.NotNil(t, c.ExpectedSeq, "expected_seq 0 is present, not absent")
	assert.Equal(t, uint64(0), *c.ExpectedSeq)

	c, err = DecodeCommand([]byte(`{"subject":"s","purpose":"p","evidence":null,"expires_at":null,"expected_seq":null}`))
	require.NoError(t, err)
	assert.Nil(t, c.Evidence, "null evidence is absent")
	assert.Nil(t, c.ExpiresAt)
	assert.Nil(t, c.ExpectedSeq)
	assert.NoError(t, c.Validate(KindGrant))
}

func TestDecodeCommandNamesTheField(t *testing.T) {
	tests := []struct {
		name, body, field string
	}{
		{"empty body", ``, "(body)"},
		{"whitespace body", "  \n", "(body)"},
		{"null", `null`, "(body)"},
		{"array", `[{"subject":"s"}]`, "(body)"},
		{"string", `"s"`, "(body)"},
		{"malformed", `{"subject":`, "(body)"},
		{"not JSON", `subject=s`, "(body)"},
		{"two objects", `{"subject":"s"}{"subject":"t"}`, "(body)"},
		{"trailing brace", `{"subject":"s"}}`, "(body)"},
		{"trailing bracket", `{"subject":"s"}]`, "(body)"},
		{"trailing garbage", `{"subject":"s"} x`, "(body)"},
		{"unknown field", `{"subject":"s","colour":"red"}`, "colour"},
		{"unknown field after a bad one", `{"colour":"red","subject":1}`, "colour"},
		{"name in another case", `{"Subject":"s","purpose":"p"}`, "Subject"},
		{"name in upper case", `{"subject":"s","PURPOSE":"p"}`, "PURPOSE"},
		{"duplicate member", `{"subject":"s","purpose":"p","subject":"t"}`, "subject"},
		{"duplicate member with a bad value", `{"subject":"s","subject":1}`, "subject"},
		{"duplicate member escaped", `{"subject":"s","subj\u0065ct":"t"}`, "subject"},
		{"subject a number", `{"subject":42,"purpose":"p"}`, "subject"},
		{"purpose an array", `{"subject":"s","purpose":["p"]}`, "purpose"},
		{"policy_version a string", `{"subject":"s","policy_version":"2"}`, "policy_version"},
		{"policy_version fractional", `{"subject":"s","policy_version":1.5}`, "policy_version"},
		{"policy_version huge", `{"subject":"s","policy_version":1e30}`, "policy_version"},
		{"expected_seq negative", `{"subject":"s","expected_seq":-1}`, "expected_seq"},
		{"expires_at not RFC 3339", `{"subject":"s","expires_at":"2027-01-01"}`, "expires_at"},
		{"expires_at a number", `{"subject":"s","expires_at":1767225600}`, "expires_at"},
		{"occurred_at without zone", `{"subject":"s","occurred_at":"2026-03-01T12:00:00"}`, "occurred_at"},
		{"ttl a number", `{"subject":"s","ttl":3600}`, "ttl"},
		{"evidence malformed", `{"subject":"s","evidence":{"a":}}`, "(body)"},
		{"empty member name", `{"":""}`, `""`},
		{"member name with a newline", `{"a\nb":1}`, `"a\nb"`},
		{"member name with a quote", `{"a\"b":1}`, `"a\"b"`},
		{"non-ASCII member name", `{"sübject":1}`, `"s\u00fcbject"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeCommand([]byte(tt.body))
			assertFieldError(t, err, tt.field)
		})
	}
}

// The errors of the strict decoder name the first problem in document
// order, so the same body always gets the same answer.
func TestDecodeStrictIsDeterministic(t *testing.T) {
	body := []byte(`{"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"subject":7}`)
	for range 20 {
		_, err := DecodeCommand(body)
		assertFieldError(t, err, "a1")
	}
}

func validEventPayload(t *testing.T) []byte {
	t.Helper()
	payload, err := os.ReadFile(filepath.Join("testdata", "golden", "granted.v1.json"))
	require.NoError(t, err)
	return payload
}

// editEvent decodes the golden grant into a map, lets f change it, and
// encodes it again.
func editEvent(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(validEventPayload(t), &m))
	f(m)
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

func TestDecodeEvent(t *testing.T) {
	ev, err := Decode(validEventPayload(t))
	require.NoError(t, err)
	assert.Equal(t, TypeGranted, ev.Type)
	assert.Equal(t, Key{Tenant: "acme", SubjectID: "zoë@example.com", Purpose: "marketing_email"}, ev.Key())
	assert.Equal(t, 2, ev.PolicyVersion)
	require.NotNil(t, ev.ExpiresAt)
	assert.Equal(t, time.Date(2027, 3, 2, 7, 59, 58, 0, time.UTC), *ev.ExpiresAt)
	assert.Equal(t, time.Date(2026, 3, 2, 8, 0, 0, 123456789, time.UTC), ev.RecordedAt)
}

func TestDecodeEventRefuses(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		field   string // a *FieldError naming this field, or
		is      error  // an error matching this
	}{
		{name: "newer schema", payload: editEvent(t, func(m map[string]any) { m["v"] = SchemaVersion + 1 }), is: ErrNewerSchema},
		{name: "v zero", payload: editEvent(t, func(m map[string]any) { m["v"] = 0 }), field: "v"},
		{name: "v missing", payload: editEvent(t, func(m map[string]any) { delete(m, "v") }), field: "v"},
		{name: "v a string", payload: editEvent(t, func(m map[string]any) { m["v"] = "1" }), field: "v"},
		{name: "unknown type", payload: editEvent(t, func(m map[string]any) { m["type"] = "consent.paused" }), is: ErrUnknownType},
		{name: "type missing", payload: editEvent(t, func(m map[string]any) { delete(m, "type") }), field: "type"},
		{name: "id missing", payload: editEvent(t, func(m map[string]any) { delete(m, "id") }), field: "id"},
		{name: "occurred_at missing", payload: editEvent(t, func(m map[string]any) { delete(m, "occurred_at") }), field: "occurred_at"},
		{name: "occurred_at malformed", payload: editEvent(t, func(m map[string]any) { m["occurred_at"] = "yesterday" }), field: "occurred_at"},
		{name: "recorded_at missing", payload: editEvent(t, func(m map[string]any) { delete(m, "recorded_at") }), field: "recorded_at"},
		{name: "policy_version missing", payload: editEvent(t, func(m map[string]any) { delete(m, "policy_version") }), field: "policy_version"},
		{name: "hash missing", payload: editEvent(t, func(m map[string]any) { delete(m, "hash") }), field: "hash"},
		{name: "tenant invalid", payload: editEvent(t, func(m map[string]any) { m["tenant"] = "ACME" }), field: "tenant"},
		{name: "tenant missing", payload: editEvent(t, func(m map[string]any) { delete(m, "tenant") }), field: "tenant"},
		{name: "subject with control", payload: editEvent(t, func(m map[string]any) { m["subject"] = "a\u0000" }), field: "subject"},
		{name: "purpose missing", payload: editEvent(t, func(m map[string]any) { delete(m, "purpose") }), field: "purpose"},
		{name: "evidence not an object", payload: editEvent(t, func(m map[string]any) { m["evidence"] = []int{1} }), field: "evidence"},
		{name: "evidence null", payload: editEvent(t, func(m map[string]any) { m["evidence"] = nil }), field: "evidence"},
		{name: "unknown field", payload: editEvent(t, func(m map[string]any) { m["state"] = "granted" }), field: "state"},
		{name: "field in another case", payload: editEvent(t, func(m map[string]any) { m["Subject"] = m["subject"]; delete(m, "subject") }), field: "Subject"},
		{name: "duplicate member", payload: []byte(strings.Replace(string(validEventPayload(t)), `"actor":"subject",`, `"actor":"subject","actor":"mallory",`, 1)), field: "actor"},
		{name: "duplicate evidence member", payload: []byte(strings.Replace(string(validEventPayload(t)), `"checkbox":true,`, `"checkbox":true,"checkbox":false,`, 1)), field: "evidence"},
		{name: "trailing data", payload: append(validEventPayload(t), '}'), field: "(body)"},
		{name: "not an object", payload: []byte(`[]`), field: "(body)"},
		{name: "empty", payload: nil, field: "(body)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Decode(tt.payload)
			assert.Nil(t, ev)
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
				return
			}
			assertFieldError(t, err, tt.field)
		})
	}
}

// Errors go into a NATS header (Nats-Service-Error): whatever the caller
// sends, the text is one short line.
func TestFieldErrorsAreHeaderSafe(t *testing.T) {
	long := strings.Repeat("x\r\n", 20000)
	bodies := []string{
		`{"` + long + `":1}`,
		`{"\r\nNats-Service-Error-Code: 200":1}`,
		`{"subject":"s","purpose":"p","ttl":"` + long + `"}`,
		`{"subject":"s","purpose":"` + long + `"}`,
		`{"tenant":"` + long + `","subject":"s","purpose":"p"}`,
		`{"subject":"` + long + `","purpose":"p"}`,
		`{"subject":"s","purpose":"p","evidence":{"` + long + `":1,"` + long + `":1}}`,
		`{"subject":"s","purpose":"p","occurred_at":"` + long + `"}`,
		`{"subject":"s","purpose":"p","evidence":{"` + strings.Repeat(`\n`, 1000) + `":1,"` + strings.Repeat(`\n`, 1000) + `":2}}`,
		"{\"subject\":\"s\",\"purpose\":\"p\"} \r\n" + long,
	}
	// The same with newlines escaped in JSON, so the decoded names and
	// values really hold them.
	esc := strings.Repeat(`x\r\n`, 20000)
	for _, body := range bodies {
		bodies = append(bodies, strings.ReplaceAll(body, long, esc))
	}
	for i, body := range bodies {
		c, err := DecodeCommand([]byte(body))
		if err == nil {
			err = c.Validate(KindGrant)
		}
		require.Error(t, err, "body %d", i)
		msg := err.Error()
		assert.LessOrEqual(t, len(msg), 300, "body %d: %.80q", i, msg)
		assert.NotContains(t, msg, "\r", "body %d", i)
		assert.NotContains(t, msg, "\n", "body %d", i)
	}
}
