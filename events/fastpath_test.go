package events

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fast paths must agree with the general ones on every input they
// accept, and accept the payloads Seal writes.

func goldenPayloads(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	require.NoError(tb, err)
	require.NotEmpty(tb, files)
	var out [][]byte
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "purpose") {
			continue // not a consent event
		}
		b, err := os.ReadFile(f)
		require.NoError(tb, err)
		out = append(out, bytes.TrimSpace(b))
	}
	return out
}

func TestFastPathsTakeSealedPayloads(t *testing.T) {
	for _, payload := range goldenPayloads(t) {
		_, _, ok := decodeCanonicalEvent(payload, string(payload))
		assert.True(t, ok, "%s", payload)
		_, ok = appendCanonicalHash(nil, payload)
		assert.True(t, ok, "%s", payload)
		checkFastPaths(t, payload)
	}
}

func TestFastPathsDeclineWhatIsNotCanonical(t *testing.T) {
	base := goldenPayloads(t)[0]
	tests := map[string][]byte{
		"whitespace":           bytes.Replace(base, []byte(`,"id"`), []byte(`, "id"`), 1),
		"escape":               bytes.Replace(base, []byte(`"actor":"`), []byte(`"actor":"\u0041`), 1),
		"members out of order": bytes.Replace(base, []byte(`{"actor":"subject",`), []byte(`{"zz":1,"actor":"subject",`), 1),
		"duplicate":            bytes.Replace(base, []byte(`"actor":"subject",`), []byte(`"actor":"subject","actor":"x",`), 1),
		"unknown field":        bytes.Replace(base, []byte(`"actor":"subject",`), []byte(`"actor":"subject","b":1,`), 1),
		"trailing data":        append(bytes.Clone(base), ' '),
		"non-canonical number": bytes.Replace(base, []byte(`"policy_version":2`), []byte(`"policy_version":2.0`), 1),
		"null":                 bytes.Replace(base, []byte(`"actor":"subject"`), []byte(`"actor":null`), 1),
		"invalid UTF-8":        bytes.Replace(base, []byte(`"actor":"subject"`), []byte("\"actor\":\"\xff\""), 1),
	}
	for name, payload := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, ok := decodeCanonicalEvent(payload, string(payload))
			assert.False(t, ok)
			checkFastPaths(t, payload)
		})
	}
}

// checkFastPaths holds the fast paths to the general ones on payload.
func checkFastPaths(t *testing.T, payload []byte) {
	t.Helper()
	if before, after, ok := canonicalHashInput(payload); ok {
		c, err := Canonical(payload, "hash")
		require.NoError(t, err, "the fast hash path took a payload Canonical refuses")
		assert.Equal(t, string(c), string(before)+string(after))
		sum, ok := appendCanonicalHash(nil, payload)
		require.True(t, ok)
		slow, err := canonicalSum(payload)
		require.NoError(t, err)
		assert.Equal(t, slow, string(sum))
	}
	if fast, hash, ok := decodeCanonicalEvent(payload, string(payload)); ok {
		var slow Event
		require.NoError(t, DecodeStrict(payload, &slow), "the fast decode path took a payload DecodeStrict refuses")
		assert.Equal(t, &slow, fast)
		if len(fast.Evidence) > 0 {
			_, err := Canonical(fast.Evidence)
			assert.NoError(t, err, "evidence taken without the object check")
		}
		before, after, ok := canonicalHashInput(payload)
		require.True(t, ok, "the fast decode path took a payload the hash scan finds not canonical")
		cutBefore, cutAfter := hash.cut(payload)
		assert.Equal(t, string(before)+"|"+string(after), string(cutBefore)+"|"+string(cutAfter))
	}
	checkDecodeOwnedVerified(t, payload)
}

// checkDecodeOwnedVerified holds DecodeOwnedVerified to Decode followed
// by VerifyHash.
func checkDecodeOwnedVerified(t *testing.T, payload []byte) {
	t.Helper()
	want, wantErr := Decode(payload)
	if wantErr == nil {
		wantErr = VerifyHash(payload, want)
	}
	got, err := DecodeOwnedVerified(bytes.Clone(payload))
	assert.Equal(t, want, got)
	if wantErr == nil {
		assert.NoError(t, err)
	} else {
		assert.EqualError(t, err, wantErr.Error())
	}
}

func canonicalSum(payload []byte) (string, error) {
	c, err := Canonical(payload, "hash")
	if err != nil {
		return "", err
	}
	return sha256Hex(c), nil
}

func FuzzFastPaths(f *testing.F) {
	for _, p := range goldenPayloads(f) {
		f.Add(p)
	}
	f.Add([]byte(`{"evidence":{"a":[1,-2,0.5,1e+21,true,null,{"b":"c"}]},"v":1}`))
	f.Add([]byte(`{"hash":"x"}`))
	f.Add([]byte(`{"a":1,"hash":"x"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkFastPaths(t, payload)
	})
}

func TestDecodeOwnedVerifiedTellsATamperedEventFromABrokenOne(t *testing.T) {
	sealed := goldenPayloads(t)[0]
	ev, err := DecodeOwnedVerified(bytes.Clone(sealed))
	require.NoError(t, err)
	require.NotNil(t, ev)

	tampered := bytes.Replace(sealed, []byte(`"policy_version":2`), []byte(`"policy_version":3`), 1)
	require.NotEqual(t, sealed, tampered)
	ev, err = DecodeOwnedVerified(tampered)
	require.ErrorIs(t, err, ErrBadHash)
	require.NotNil(t, ev, "a tampered event still decodes")
	assert.Equal(t, 3, ev.PolicyVersion)

	spaced := bytes.Replace(sealed, []byte(`,"id"`), []byte(`, "id"`), 1)
	ev, err = DecodeOwnedVerified(spaced)
	require.NoError(t, err, "whitespace does not change the canonical content")
	require.NotNil(t, ev)

	broken := bytes.Replace(sealed, []byte(`"policy_version":2`), []byte(`"policy_version":"2"`), 1)
	ev, err = DecodeOwnedVerified(broken)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrBadHash)
	assert.Nil(t, ev)
}
