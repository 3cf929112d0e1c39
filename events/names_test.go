package events

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// subjectKeyVector is one entry of testdata/subject-keys.json, a copy of the
// contract's vectors/subject-keys.json.
type subjectKeyVector struct {
	Tenant      string `json:"tenant"`
	SubjectID   string `json:"subject"`
	SubjectKey  string `json:"subject_key"`
	NATSSubject string `json:"nats_subject_for_purpose_marketing_email"`
}

func TestSubjectKeyVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "subject-keys.json"))
	require.NoError(t, err)
	var vectors []subjectKeyVector
	require.NoError(t, json.Unmarshal(raw, &vectors))
	require.NotEmpty(t, vectors)
	for _, v := range vectors {
		t.Run(v.Tenant+"/"+v.SubjectID, func(t *testing.T) {
			require.NoError(t, ValidateSubjectID(v.SubjectID))
			normalized, err := NormalizeSubjectID(v.SubjectID)
			require.NoError(t, err)
			assert.Equal(t, v.SubjectID, normalized, "the contract's vectors are in NFC")
			assert.Equal(t, v.SubjectKey, SubjectKey(v.Tenant, v.SubjectID))
			k := Key{Tenant: v.Tenant, SubjectID: v.SubjectID, Purpose: "marketing_email"}
			require.NoError(t, k.Validate())
			assert.Equal(t, v.NATSSubject, k.NATSSubject())
			assert.Equal(t, "consent.events."+v.Tenant+".*."+v.SubjectKey, PersonFilter(v.Tenant, v.SubjectID))
		})
	}
}

func TestSubjectKeyShape(t *testing.T) {
	subjects := []string{"a", "a.b", "*", ">", "with space", "🎉", strings.Repeat("é", 128)}
	seen := map[string]string{}
	for _, s := range subjects {
		key := SubjectKey(DefaultTenant, s)
		assert.Regexp(t, `^[0-9a-f]{32}$`, key, "one NATS token: no dots, wildcards or spaces")
		assert.NotContains(t, seen, key, "%q collides with %q", s, seen[key])
		seen[key] = s
		natsSubject := Key{Tenant: DefaultTenant, SubjectID: s, Purpose: "p"}.NATSSubject()
		assert.Equal(t, []string{"consent", "events", DefaultTenant, "p", key}, strings.Split(natsSubject, "."),
			"the raw subject id never appears")
	}
	// The zero byte separates tenant and subject: moving bytes across the
	// boundary changes the key.
	assert.NotEqual(t, SubjectKey("ab", "c"), SubjectKey("a", "bc"))
	assert.NotEqual(t, SubjectKey("t1", "x"), SubjectKey("t2", "x"))
}

func TestOrDefaultTenant(t *testing.T) {
	assert.Equal(t, DefaultTenant, OrDefaultTenant(""))
	assert.Equal(t, "acme", OrDefaultTenant("acme"))
}

func TestKindEventType(t *testing.T) {
	want := map[Kind]Type{KindRequest: TypeRequested, KindGrant: TypeGranted, KindDeny: TypeDenied, KindRevoke: TypeRevoked}
	require.Len(t, Kinds, 4)
	for _, k := range Kinds {
		assert.Equal(t, want[k], k.EventType())
		assert.True(t, k.EventType().Known())
	}
	assert.Equal(t, Type(""), Kind("approve").EventType())
	assert.False(t, Type("consent.paused").Known())
}

func TestIsNATSSubject(t *testing.T) {
	k := Key{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "newsletter"}
	assert.True(t, k.IsNATSSubject(k.NATSSubject()))
	long := Key{Tenant: "acme", SubjectID: strings.Repeat("ü", 300), Purpose: "newsletter"} // past the stack buffer
	assert.True(t, long.IsNATSSubject(long.NATSSubject()))
	for _, other := range []Key{
		{Tenant: "acme", SubjectID: "bob@example.com", Purpose: "newsletter"},
		{Tenant: "acm", SubjectID: "alice@example.com", Purpose: "newsletter"},
		{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "newsletters"},
		{Tenant: "default", SubjectID: "alice@example.com", Purpose: "newsletter"},
	} {
		assert.False(t, k.IsNATSSubject(other.NATSSubject()), "%+v", other)
	}
	subj := k.NATSSubject()
	for _, bad := range []string{"", subj[:len(subj)-1], subj + "0", "x" + subj, strings.Replace(subj, "consent.events.", "consent.event.", 1)} {
		assert.False(t, k.IsNATSSubject(bad), bad)
	}
}

// subjectIDVectors is testdata/subject-ids.json: how subject ids are
// normalised and which are refused, computed independently of this code
// (Python's unicodedata and hashlib).
type subjectIDVectors struct {
	Accepted []struct {
		Tenant     string `json:"tenant"`
		GivenHex   string `json:"given_hex"`
		Subject    string `json:"subject"`
		SubjectKey string `json:"subject_key"`
		Note       string `json:"note"`
	} `json:"accepted"`
	Refused []struct {
		GivenHex string `json:"given_hex"`
		Note     string `json:"note"`
	} `json:"refused"`
}

func TestSubjectIDVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "subject-ids.json"))
	require.NoError(t, err)
	var vectors subjectIDVectors
	require.NoError(t, json.Unmarshal(raw, &vectors))
	require.NotEmpty(t, vectors.Accepted)
	require.NotEmpty(t, vectors.Refused)
	keys := map[string]string{} // subject key -> subject
	for _, v := range vectors.Accepted {
		given, err := hex.DecodeString(v.GivenHex)
		require.NoError(t, err)
		t.Run(v.Note, func(t *testing.T) {
			got, err := NormalizeSubjectID(string(given))
			require.NoError(t, err)
			assert.Equal(t, v.Subject, got)
			assert.Equal(t, v.SubjectKey, SubjectKey(v.Tenant, got))
			// The same through a command, as every endpoint takes it.
			body, err := json.Marshal(map[string]string{"tenant": v.Tenant, "subject": string(given), "purpose": "p"})
			require.NoError(t, err)
			c, err := DecodeCommand(body)
			require.NoError(t, err)
			require.NoError(t, c.Validate(KindGrant))
			assert.Equal(t, v.Subject, c.SubjectID)
			assert.Equal(t, "consent.events."+v.Tenant+".p."+v.SubjectKey, c.Key().NATSSubject())
		})
		if other, ok := keys[v.SubjectKey]; ok {
			assert.Equal(t, other, v.Subject, "one key, one subject")
		}
		keys[v.SubjectKey] = v.Subject
	}
	for _, v := range vectors.Refused {
		given, err := hex.DecodeString(v.GivenHex)
		require.NoError(t, err)
		t.Run("refused "+v.Note, func(t *testing.T) {
			_, err := NormalizeSubjectID(string(given))
			assertFieldError(t, err, "subject")
			c := Command{SubjectID: string(given), Purpose: "p"}
			assertFieldError(t, c.Validate(KindRevoke), "subject")
			_, err = Key{Tenant: "t", SubjectID: string(given), Purpose: "p"}.Normalize()
			assertFieldError(t, err, "subject")
		})
	}
}

// TestSubjectIDEscapedSurrogate: encoding/json decodes the escape of a
// lone surrogate to U+FFFD, so that "\ud800" and "\udfff" (or invalid
// UTF-8) would land on one person; such an id is refused instead.
func TestSubjectIDEscapedSurrogate(t *testing.T) {
	for _, body := range []string{
		`{"subject":"alice\ud800","purpose":"p"}`,
		`{"subject":"alice\udfff","purpose":"p"}`,
		`{"subject":"alice\ufffd","purpose":"p"}`,
		"{\"subject\":\"alice\xff\",\"purpose\":\"p\"}",
	} {
		c, err := DecodeCommand([]byte(body))
		require.NoError(t, err, body)
		assertFieldError(t, c.Validate(KindGrant), "subject")
	}
	// A real astral character, escaped as a surrogate pair, is fine.
	c, err := DecodeCommand([]byte(`{"subject":"party \ud83c\udf89","purpose":"p"}`))
	require.NoError(t, err)
	require.NoError(t, c.Validate(KindGrant))
	assert.Equal(t, "party \U0001F389", c.SubjectID)
}

// TestStoredSubjectIDsStillDecode: the normalisation applies to what
// callers send, not to what is stored; an event written before it, with an
// id in NFD or with a leading space, still decodes as it is.
func TestStoredSubjectIDsStillDecode(t *testing.T) {
	for _, subject := range []string{"cafe\u0301", " alice ", "a\u200bb"} {
		ev := Event{V: 1, ID: "e1", Type: TypeGranted, Tenant: "t", SubjectID: subject, Purpose: "p",
			OccurredAt: t0, RecordedAt: t0, PolicyVersion: 1}
		payload, err := ev.Seal()
		require.NoError(t, err)
		got, err := Decode(payload)
		require.NoError(t, err, "%q", subject)
		assert.Equal(t, subject, got.SubjectID)
		require.NoError(t, VerifyHash(payload, got))
	}
}

func TestAppendTokenIsToken(t *testing.T) {
	for _, k := range []Key{
		{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "p"},
		{Tenant: "acme", SubjectKey: "0123456789abcdef0123456789abcdef", Purpose: "p"},
		{Tenant: "acme", SubjectID: "alice@example.com", SubjectKey: "0123456789abcdef0123456789abcdef", Purpose: "p"},
	} {
		assert.Equal(t, "x"+k.Token(), string(k.AppendToken([]byte("x"))), "%+v", k)
	}
}
