package events

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var updateHMACVectors = flag.Bool("update-hmac-vectors", false, "rewrite testdata/subject-keys-hmac.json from the code")

// hmacSubjectKeyVectors is testdata/subject-keys-hmac.json.
type hmacSubjectKeyVectors struct {
	Comment string                 `json:"comment"`
	Vectors []hmacSubjectKeyVector `json:"vectors"`
}

type hmacSubjectKeyVector struct {
	SecretHex  string `json:"secret_hex"`
	Tenant     string `json:"tenant"`
	Subject    string `json:"subject"`
	SubjectKey string `json:"subject_key"`
	Note       string `json:"note"`
}

const hmacVectorsComment = "Keyed subject keys (scheme hmac-sha256-16, docs/hashing.md): subject_key = lowercase hex of the first 16 bytes of HMAC-SHA-256(key = the tenant's secret, secret_hex decoded; message = the UTF-8 bytes of subject, already in NFC). The tenant is not part of the message: each tenant has its own secret. Checked by events/subjectkey_hmac_test.go (Go, and Python's hmac independently); the secrets are test values."

// hmacVectorInputs are the cases of the vectors file; the keys are computed
// by KeyedSubjectKey when the file is written (-update-hmac-vectors) and
// checked against it otherwise.
var hmacVectorInputs = []hmacSubjectKeyVector{
	{SecretHex: strings.Repeat("00", 32), Tenant: "default", Subject: "alice@example.com", Note: "all-zero secret"},
	{SecretHex: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", Tenant: "default", Subject: "alice@example.com", Note: "worked example in docs/hashing.md"},
	{SecretHex: "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100", Tenant: "acme", Subject: "alice@example.com", Note: "same id, another tenant's secret: another key"},
	{SecretHex: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", Tenant: "default", Subject: "café@example.com", Note: "NFC, precomposed e-acute (c3 a9)"},
	{SecretHex: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", Tenant: "default", Subject: "a.b.c", Note: "dots stay out of the NATS subject"},
	{SecretHex: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", Tenant: "default", Subject: "ünïcødé 🎉", Note: "astral character"},
	{SecretHex: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" + "2021222324252627", Tenant: "default", Subject: "alice@example.com", Note: "a 40-byte secret is used as given (HMAC accepts any length)"},
}

func TestKeyedSubjectKeyVectors(t *testing.T) {
	path := filepath.Join("testdata", "subject-keys-hmac.json")
	if *updateHMACVectors {
		out := hmacSubjectKeyVectors{Comment: hmacVectorsComment}
		for _, v := range hmacVectorInputs {
			secret, err := hex.DecodeString(v.SecretHex)
			require.NoError(t, err)
			v.SubjectKey = KeyedSubjectKey(secret, v.Subject)
			out.Vectors = append(out.Vectors, v)
		}
		raw, err := json.MarshalIndent(out, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, append(raw, '\n'), 0o644))
	}
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var file hmacSubjectKeyVectors
	require.NoError(t, json.Unmarshal(raw, &file))
	require.Len(t, file.Vectors, len(hmacVectorInputs), "run go test ./events -run TestKeyedSubjectKeyVectors -update-hmac-vectors")
	seen := map[string]string{}
	for i, v := range file.Vectors {
		t.Run(v.Note, func(t *testing.T) {
			assert.Equal(t, hmacVectorInputs[i].Subject, v.Subject)
			normalized, err := NormalizeSubjectID(v.Subject)
			require.NoError(t, err)
			assert.Equal(t, v.Subject, normalized, "the vectors are in NFC")
			secret, err := hex.DecodeString(v.SecretHex)
			require.NoError(t, err)
			assert.Equal(t, v.SubjectKey, KeyedSubjectKey(secret, v.Subject))
			assert.Regexp(t, `^[0-9a-f]{32}$`, v.SubjectKey)
			assert.NotEqual(t, SubjectKey(v.Tenant, v.Subject), v.SubjectKey, "differs from the sha256-16 key")
		})
		assert.NotContains(t, seen, v.SubjectKey, "%q collides with %q", v.Note, seen[v.SubjectKey])
		seen[v.SubjectKey] = v.Note
	}
}

func TestKeyedSubjectKeyDependsOnSecretAndID(t *testing.T) {
	a := []byte(strings.Repeat("a", 32))
	b := []byte(strings.Repeat("b", 32))
	assert.Equal(t, KeyedSubjectKey(a, "x"), KeyedSubjectKey(a, "x"))
	assert.NotEqual(t, KeyedSubjectKey(a, "x"), KeyedSubjectKey(b, "x"))
	assert.NotEqual(t, KeyedSubjectKey(a, "x"), KeyedSubjectKey(a, "y"))
	// The id is taken as given: NFD and NFC of one id differ, so callers
	// normalise first.
	assert.NotEqual(t, KeyedSubjectKey(a, "caf\u00e9"), KeyedSubjectKey(a, "cafe\u0301"))
}

func TestSubjectKeyScheme(t *testing.T) {
	assert.Equal(t, SubjectKeyScheme("sha256-16"), SubjectKeySHA256)
	assert.Equal(t, SubjectKeyScheme("hmac-sha256-16"), SubjectKeyHMAC)
	assert.Equal(t, "consent_subject_key_scheme", SubjectKeySchemeMetadata)
	assert.True(t, SubjectKeySHA256.Known())
	assert.True(t, SubjectKeyHMAC.Known())
	assert.False(t, SubjectKeyScheme("").Known())
	assert.False(t, SubjectKeyScheme("hmac").Known())
}

// TestKeyedSubjectKeyVectorsWithPython checks the vectors independently of
// this code, with Python's hmac, hashlib and unicodedata.
func TestKeyedSubjectKeyVectorsWithPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	const script = `
import hashlib, hmac, json, sys, unicodedata
vectors = json.load(open(sys.argv[1], encoding="utf-8"))["vectors"]
for v in vectors:
    assert unicodedata.normalize("NFC", v["subject"]) == v["subject"], v["note"]
    key = hmac.new(bytes.fromhex(v["secret_hex"]), v["subject"].encode("utf-8"), hashlib.sha256).hexdigest()[:32]
    assert key == v["subject_key"], (v["note"], key)
print("vectors ok", len(vectors))
`
	out, err := exec.Command(python, "-c", script, filepath.Join("testdata", "subject-keys-hmac.json")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "vectors ok 7")
}
