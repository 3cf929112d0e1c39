package wirecodec

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var statusQuerySeeds = []string{
	`{"subject":"person-1@example.com","purpose":"marketing_email"}`,
	`{"tenant":"acme","subject":"p","purpose":"x","min_seq":42,"min_policy_version":3}`,
	` { "purpose" : "x" , "subject" : "p" } `,
	`{}`,
	`{"subject":"p","purpose":"x","min_seq":0}`,
	`{"subject":"p","purpose":"x","min_policy_version":0}`,
	`{"subject":"p","purpose":"x","min_policy_version":2147483648}`,
	`{"subject":"p","purpose":"x","min_policy_version":2147483647}`,
	`{"subject":"p","subject":"q","purpose":"x"}`,
	`{"Subject":"p","purpose":"x"}`,
	`{"subject":"p","purpose":"x","extra":1}`,
	`{"subject":"p\u0041","purpose":"x"}`,
	`{"subject":"p","purpose":"x","min_seq":-1}`,
	`{"subject":"p","purpose":"x","min_seq":1.5}`,
	`{"subject":"p","purpose":"x","min_seq":1e3}`,
	`{"subject":"p","purpose":"x","min_seq":01}`,
	`{"subject":"p","purpose":"x","min_seq":99999999999999999999}`,
	`{"subject":"p","purpose":"x","min_policy_version":-2}`,
	`{"subject":null,"purpose":"x"}`,
	`{"subject":"p","purpose":"x"} x`,
	`{"subject":"p","purpose":"x",}`,
	`{"subject":"p" "purpose":"x"}`,
	`{"subject":"p","purpose":"x"`,
	`[]`,
	``,
	`{"subject":"péter","purpose":"x"}`,
	`{"subject":"p","purpose":"x","min_seq":"1"}`,
}

// TestDecodeStatusQueryMatchesDecodeStrict holds the fast decoder to
// events.DecodeStrict: same value, same error, on plain and odd requests.
func TestDecodeStatusQueryMatchesDecodeStrict(t *testing.T) {
	for _, in := range statusQuerySeeds {
		t.Run(in, func(t *testing.T) { checkStatusQueryDecode(t, []byte(in)) })
	}
	var q wire.StatusQuery
	assert.True(t, decodeStatusQueryFast([]byte(statusQuerySeeds[1]), statusQuerySeeds[1], &q), "the plain shape takes the fast path")
	assert.Equal(t, wire.StatusQuery{Tenant: "acme", SubjectID: "p", Purpose: "x", MinSeq: 42, MinPolicyVersion: 3}, q)
}

func FuzzDecodeStatusQuery(f *testing.F) {
	for _, in := range statusQuerySeeds {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkStatusQueryDecode(t, data) })
}

func checkStatusQueryDecode(t *testing.T, data []byte) {
	var want wire.StatusQuery
	wantErr := events.DecodeStrict(data, &want)
	var got, owned wire.StatusQuery
	gotErr := decodeStatusQuery(data, &got)
	require.Equal(t, wantErr, gotErr)
	require.Equal(t, wantErr, DecodeOwnedStatusQuery(bytes.Clone(data), &owned))
	if wantErr == nil {
		require.Equal(t, want, got)
		require.Equal(t, want, owned)
		encoded, err := json.Marshal(&got)
		require.NoError(t, err)
		require.Equal(t, string(encoded), string(AppendStatusQuery(nil, &got)), "request encoding")
	}
}

func statusSeeds() []events.Status {
	at := time.Date(2026, 11, 25, 20, 50, 53, 123456789, time.UTC)
	later := at.Add(90 * 24 * time.Hour).In(time.FixedZone("x", 5*3600+30*60))
	return []events.Status{
		{},
		{Tenant: "default", SubjectID: "person-1@example.com", Purpose: "marketing_email", State: events.StateGranted, Allowed: true,
			PolicyVersion: 3, UpdatedAt: &at, ExpiresAt: &later, Seq: 17, EventID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", IndexSeq: 99,
			RequiredPolicyVersion: 4, Outdated: true, SubjectKey: "a59fc578d4cb46faab1d6eb348e7c74b"},
		{Tenant: "t", SubjectID: "<a&b>", Purpose: "p\"q\\r\n", State: "none", UpdatedAt: &at, SubjectKey: "<&>\u00e9"},
		{SubjectID: "péter\u2028\xff", PolicyVersion: -1, RequiredPolicyVersion: -5},
	}
}

// TestStatusCodecMatchesEncodingJSON holds the status encoder to
// json.Marshal byte for byte, and the decoder to json.Unmarshal.
func TestStatusCodecMatchesEncodingJSON(t *testing.T) {
	for _, st := range statusSeeds() {
		checkStatusCodec(t, st)
	}
	bad := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	_, wantErr := json.Marshal(&events.Status{UpdatedAt: &bad})
	_, gotErr := MarshalStatus(&events.Status{UpdatedAt: &bad})
	require.Error(t, wantErr)
	assert.Equal(t, wantErr.Error(), gotErr.Error(), "a time encoding/json refuses is refused alike")

	var st events.Status
	data, err := MarshalStatus(&statusSeeds()[1])
	require.NoError(t, err)
	assert.True(t, unmarshalStatusFast(data, string(data), &st), "what the service writes takes the fast path")
}

func FuzzStatusCodec(f *testing.F) {
	for _, st := range statusSeeds() {
		f.Add(st.Tenant, st.SubjectID, string(st.State), st.Allowed, st.PolicyVersion, int64(0), true, uint64(17), "id", uint64(9), 2, false)
	}
	f.Add("", "p", "granted", true, 1, int64(-62135596800), false, uint64(0), "", uint64(0), 0, true)
	f.Fuzz(func(t *testing.T, tenant, subjectID, state string, allowed bool, policyVersion int, unixNano int64, withExpiry bool,
		seq uint64, eventID string, indexSeq uint64, required int, outdated bool) {
		at := time.Unix(0, unixNano).In(time.FixedZone("z", int(unixNano%(30*3600))))
		st := events.Status{Tenant: tenant, SubjectID: subjectID, Purpose: state + "p", State: events.State(state), Allowed: allowed,
			PolicyVersion: policyVersion, UpdatedAt: &at, Seq: seq, EventID: eventID, IndexSeq: indexSeq,
			RequiredPolicyVersion: required, Outdated: outdated}
		if withExpiry {
			st.ExpiresAt = &at
		}
		checkStatusCodec(t, st)
	})
}

// FuzzUnmarshalStatus holds the status decoder to json.Unmarshal on any
// input.
func FuzzUnmarshalStatus(f *testing.F) {
	for _, st := range statusSeeds() {
		data, err := json.Marshal(&st)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte(`{"seq":1,"seq":2,"allowed":true,"updated_at":null,"expires_at":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"STATE":"granted","unknown":[1,2]}`))
	f.Add([]byte(`{"updated_at":"2026-13-02T03:04:05Z"}`))
	f.Add([]byte(`{"policy_version":12345678901234567890}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var want, got events.Status
		wantErr := json.Unmarshal(data, &want)
		gotErr := unmarshalStatus(data, &got)
		if wantErr != nil {
			require.Error(t, gotErr)
			require.Equal(t, wantErr.Error(), gotErr.Error())
			return
		}
		require.NoError(t, gotErr)
		requireSameStatus(t, want, got)
	})
}

func checkStatusCodec(t *testing.T, st events.Status) {
	want, wantErr := json.Marshal(&st)
	got, gotErr := MarshalStatus(&st)
	if wantErr != nil {
		require.Error(t, gotErr)
		require.Equal(t, wantErr.Error(), gotErr.Error())
		return
	}
	require.NoError(t, gotErr)
	require.Equal(t, string(want), string(got))

	var wantSt, gotSt events.Status
	require.NoError(t, json.Unmarshal(got, &wantSt))
	require.NoError(t, unmarshalStatus(got, &gotSt))
	requireSameStatus(t, wantSt, gotSt)
}

// requireSameStatus compares statuses with their times as instants and
// offsets (time.Time's location pointer may differ between decodes).
func requireSameStatus(t *testing.T, want, got events.Status) {
	for _, pair := range [][2]**time.Time{{&want.UpdatedAt, &got.UpdatedAt}, {&want.ExpiresAt, &got.ExpiresAt}} {
		w, g := *pair[0], *pair[1]
		require.Equal(t, w == nil, g == nil)
		if w != nil {
			require.True(t, w.Equal(*g), "%v != %v", w, g)
			require.Equal(t, w.Format(time.RFC3339Nano), g.Format(time.RFC3339Nano))
		}
		*pair[0], *pair[1] = nil, nil
	}
	require.Equal(t, want, got)
}

// BenchmarkStatusCodec measures the status reply's codecs, as the service
// encodes and the client decodes it, against encoding/json doing the same
// in the same run: ns per encode and decode, and x_json = codec time /
// encoding/json time (below 1 is faster).
func BenchmarkStatusCodec(b *testing.B) {
	st := &statusSeeds()[1]
	st.ExpiresAt, st.RequiredPolicyVersion, st.Outdated = nil, 0, false
	data, err := MarshalStatus(st)
	require.NoError(b, err)
	for _, c := range []struct {
		name        string
		codec, json func() error
	}{
		{"encode", func() error { _, err := MarshalStatus(st); return err }, func() error { _, err := json.Marshal(st); return err }},
		{"decode", func() error { var out events.Status; return UnmarshalOwnedStatus(data, &out) },
			func() error { var out events.Status; return json.Unmarshal(data, &out) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.codec(); err != nil {
					b.Fatal(err)
				}
			}
			codecTime, n := b.Elapsed(), b.N
			start := time.Now()
			for range n {
				if err := c.json(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(codecTime)/float64(time.Since(start)), "x_json")
		})
	}
}
