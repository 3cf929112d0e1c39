package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSealHashesTheCanonicalEncodingWithoutHash(t *testing.T) {
	ev, err := Decide(NewConsent(testKey), KindGrant, command(func(c *Command) {
		c.Evidence = json.RawMessage(`{"b": 2.0, "a": "<&>"}`)
	}), t0)
	require.NoError(t, err)
	ev.ID = "id-1"
	payload, err := ev.Seal()
	require.NoError(t, err)

	canon, err := Canonical(payload)
	require.NoError(t, err)
	assert.Equal(t, string(canon), string(payload), "Seal publishes canonical bytes")
	assert.Contains(t, string(payload), `"evidence":{"a":"<&>","b":2}`, "no HTML escaping, sorted, shortest numbers")
	assert.Contains(t, string(payload), `"prev_hash":""`, "the first event has an empty prev_hash, present")
	assert.Regexp(t, `^[0-9a-f]{64}$`, ev.Hash)

	withoutHash, err := Canonical(payload, "hash")
	require.NoError(t, err)
	assert.NotContains(t, string(withoutHash), `"hash"`)
	sum, err := HashOf(payload)
	require.NoError(t, err)
	assert.Equal(t, ev.Hash, sum)
	assert.Equal(t, sha256Hex(withoutHash), sum)

	// Sealing again gives the same bytes: the old hash is not hashed.
	again, err := ev.Seal()
	require.NoError(t, err)
	assert.Equal(t, string(payload), string(again))
}

func TestVerifyHash(t *testing.T) {
	payload := validEventPayload(t)
	ev, err := Decode(payload)
	require.NoError(t, err)
	require.NoError(t, VerifyHash(payload, ev))

	t.Run("reordered and reformatted but equal", func(t *testing.T) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(payload, &m))
		pretty, err := json.MarshalIndent(m, "", "  ") // same order, with whitespace
		require.NoError(t, err)
		// Reverse the member order by hand so it differs from canonical.
		var parts []string
		for name, v := range m {
			b, err := json.Marshal(v)
			require.NoError(t, err)
			n, _ := json.Marshal(name)
			parts = append([]string{string(n) + " : " + string(b)}, parts...)
		}
		reordered := []byte("{\n" + strings.Join(parts, ",\n") + "\n}")
		for _, p := range [][]byte{pretty, reordered} {
			require.NotEqual(t, string(payload), string(p))
			got, err := Decode(p)
			require.NoError(t, err)
			assert.NoError(t, VerifyHash(p, got))
		}
	})

	changes := []struct {
		name string
		edit func(m map[string]any)
	}{
		{"subject", func(m map[string]any) { m["subject"] = "zoe@example.com" }},
		{"purpose", func(m map[string]any) { m["purpose"] = "analytics" }},
		{"type", func(m map[string]any) { m["type"] = "consent.denied" }},
		{"policy_version", func(m map[string]any) { m["policy_version"] = 3 }},
		{"expires_at", func(m map[string]any) { m["expires_at"] = "2099-03-02T07:59:58Z" }},
		{"expires_at removed", func(m map[string]any) { delete(m, "expires_at") }},
		{"prev_hash", func(m map[string]any) { m["prev_hash"] = "" }},
		{"evidence member", func(m map[string]any) { m["evidence"].(map[string]any)["checkbox"] = false }},
		{"member added", func(m map[string]any) { m["reason"] = "x" }},
		{"hash itself", func(m map[string]any) { m["hash"] = strings.Repeat("0", 64) }},
	}
	for _, tt := range changes {
		t.Run("detects a changed "+tt.name, func(t *testing.T) {
			changed := editEvent(t, tt.edit)
			got, err := Decode(changed)
			require.NoError(t, err, "still a well-formed event")
			require.ErrorIs(t, VerifyHash(changed, got), ErrBadHash)
		})
	}

	t.Run("re-encoded by encoding/json, as in a history reply", func(t *testing.T) {
		for _, file := range []string{"requested", "denied", "granted", "revoked"} {
			payload, err := os.ReadFile(filepath.Join("testdata", "golden", file+".v1.json"))
			require.NoError(t, err)
			ev, err := Decode(payload)
			require.NoError(t, err)
			reencoded, err := json.Marshal(struct {
				Seq   uint64 `json:"seq"`
				Event *Event `json:"event"`
			}{7, ev})
			require.NoError(t, err)
			var record struct {
				Event json.RawMessage `json:"event"`
			}
			require.NoError(t, json.Unmarshal(reencoded, &record))
			got, err := Decode(record.Event)
			require.NoError(t, err)
			assert.NoError(t, VerifyHash(record.Event, got), file)
		}
	})
	t.Run("a payload that is not canonicalizable", func(t *testing.T) {
		require.ErrorIs(t, VerifyHash([]byte(`{"a":1,"a":1}`), ev), ErrBadHash)
		require.ErrorIs(t, VerifyHash([]byte(`[]`), ev), ErrBadHash)
	})
	t.Run("equal numbers spelled differently verify", func(t *testing.T) {
		respelled := []byte(strings.Replace(string(payload), `"policy_version":2`, `"policy_version":2.0e0`, 1))
		require.NotEqual(t, string(payload), string(respelled))
		// Decode wants an integer, but the hash covers the value.
		sum, err := HashOf(respelled)
		require.NoError(t, err)
		assert.Equal(t, ev.Hash, sum)
	})
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
