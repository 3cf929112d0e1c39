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

// hmacSubjectKeyVector is one entry of testdata/subject-keys-hmac.json,
// in the style of the contract's vectors/subject-keys.json (the same
// members) with the tenant's secret: subject_key is lowercase hex of the
// first 16 bytes of HMAC-SHA-256(key = secret_hex decoded, message = the
// UTF-8 bytes of subject, in NFC), see docs/hashing.md. The secrets are
// test values.
type hmacSubjectKeyVector struct {
	SecretHex   string `json:"secret_hex"`
	Tenant      string `json:"tenant"`
	SubjectID   string `json:"subject"`
	SubjectKey  string `json:"subject_key"`
	NATSSubject string `json:"nats_subject_for_purpose_marketing_email"`
}

// testSecret is the test secret of docs/hashing.md's worked example: the
// bytes 0 to 31.
const testSecret = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// hmacVectorInputs are the cases of the vectors file; the keys are computed
// by KeyedSubjectKey when the file is written (-update-hmac-vectors) and
// checked against it otherwise.
var hmacVectorInputs = []hmacSubjectKeyVector{
	{SecretHex: testSecret, Tenant: "default", SubjectID: "alice@example.com"}, // the worked example of docs/hashing.md
	{SecretHex: strings.Repeat("00", 32), Tenant: "default", SubjectID: "alice@example.com"},
	{SecretHex: "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100", Tenant: "acme", SubjectID: "alice@example.com"}, // another tenant's secret
	{SecretHex: testSecret, Tenant: "default", SubjectID: "café@example.com"},                                                       // NFC, precomposed e-acute (c3 a9)
	{SecretHex: testSecret, Tenant: "default", SubjectID: "a.b.c"},                                                                  // dots stay out of the NATS subject
	{SecretHex: testSecret, Tenant: "default", SubjectID: "ünïcødé 🎉"},                                                              // an astral character
	{SecretHex: testSecret + "2021222324252627", Tenant: "default", SubjectID: "alice@example.com"},                                 // a 40-byte secret, used as given
}

func TestKeyedSubjectKeyVectors(t *testing.T) {
	path := filepath.Join("testdata", "subject-keys-hmac.json")
	if *updateHMACVectors {
		var out []hmacSubjectKeyVector
		for _, v := range hmacVectorInputs {
			secret, err := hex.DecodeString(v.SecretHex)
			require.NoError(t, err)
			v.SubjectKey = KeyedSubjectKey(secret, v.SubjectID)
			v.NATSSubject = Key{Tenant: v.Tenant, SubjectID: v.SubjectID, Purpose: "marketing_email", SubjectKey: v.SubjectKey}.NATSSubject()
			out = append(out, v)
		}
		raw, err := json.MarshalIndent(out, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, append(raw, '\n'), 0o644))
	}
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var vectors []hmacSubjectKeyVector
	require.NoError(t, json.Unmarshal(raw, &vectors))
	require.Len(t, vectors, len(hmacVectorInputs), "run go test ./events -run TestKeyedSubjectKeyVectors -update-hmac-vectors")
	seen := map[string]string{}
	for i, v := range vectors {
		t.Run(v.Tenant+"/"+v.SubjectID, func(t *testing.T) {
			assert.Equal(t, hmacVectorInputs[i].SubjectID, v.SubjectID)
			normalized, err := NormalizeSubjectID(v.SubjectID)
			require.NoError(t, err)
			assert.Equal(t, v.SubjectID, normalized, "the vectors are in NFC")
			secret, err := hex.DecodeString(v.SecretHex)
			require.NoError(t, err)
			assert.Equal(t, v.SubjectKey, KeyedSubjectKey(secret, v.SubjectID))
			assert.Regexp(t, `^[0-9a-f]{32}$`, v.SubjectKey)
			assert.NotEqual(t, SubjectKey(v.Tenant, v.SubjectID), v.SubjectKey, "differs from the sha256-16 key")
			k := Key{Tenant: v.Tenant, SubjectID: v.SubjectID, Purpose: "marketing_email", SubjectKey: v.SubjectKey}
			require.NoError(t, k.Validate())
			assert.Equal(t, v.NATSSubject, k.NATSSubject())
		})
		key := v.SecretHex + "/" + v.SubjectKey
		assert.NotContains(t, seen, v.SubjectKey, "%s collides with %s", key, seen[v.SubjectKey])
		seen[v.SubjectKey] = key
	}
}

// TestHashingDocSubjectKeys checks the subject keys docs/hashing.md shows
// against the code: the sha256-16 key of alice@example.com in default,
// and the worked example of keyed subject keys (its test secret, its
// key, its NATS subject), which is the first entry of the HMAC vectors.
func TestHashingDocSubjectKeys(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "docs", "hashing.md"))
	require.NoError(t, err)
	doc := string(raw)
	assert.Contains(t, doc, "For\n  `alice@example.com` in `default` it is `"+SubjectKey("default", "alice@example.com")+"`.")

	_, example, ok := strings.Cut(doc, "### Keyed subject keys (`hmac-sha256-16`)")
	require.True(t, ok, "the section of keyed subject keys")
	secret, err := hex.DecodeString(testSecret)
	require.NoError(t, err)
	key := KeyedSubjectKey(secret, "alice@example.com")
	assert.Contains(t, example, "`000102…1e1f` (the bytes 0 to 31)")
	assert.Contains(t, example, "hmac.new(bytes(range(32)), \"alice@example.com\".encode(), hashlib.sha256).hexdigest()[:32])'\n"+key+"\n")
	assert.Contains(t, example, "`consent.events.default.marketing_email."+key+"`")
	assert.Equal(t, key, hmacVectorInputsKey(t, 0), "the worked example is the first vector")
}

// hmacVectorInputsKey is the subject key of the i-th vector of the file.
func hmacVectorInputsKey(t *testing.T, i int) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "subject-keys-hmac.json"))
	require.NoError(t, err)
	var vectors []hmacSubjectKeyVector
	require.NoError(t, json.Unmarshal(raw, &vectors))
	require.Greater(t, len(vectors), i)
	return vectors[i].SubjectKey
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
vectors = json.load(open(sys.argv[1], encoding="utf-8"))
for v in vectors:
    assert unicodedata.normalize("NFC", v["subject"]) == v["subject"], v["subject"]
    key = hmac.new(bytes.fromhex(v["secret_hex"]), v["subject"].encode("utf-8"), hashlib.sha256).hexdigest()[:32]
    assert key == v["subject_key"], (v["subject"], key)
    subject = "consent.events." + v["tenant"] + ".marketing_email." + key
    assert subject == v["nats_subject_for_purpose_marketing_email"], subject
print("vectors ok", len(vectors))
`
	out, err := exec.Command(python, "-c", script, filepath.Join("testdata", "subject-keys-hmac.json")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "vectors ok 7")
}
