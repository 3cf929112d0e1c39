package projector

import (
	"bytes"
	"cmp"
	"strings"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEscapedPartsKeepOrderAndDoNotInterleave(t *testing.T) {
	// Sorted as strings; their encodings must sort the same way.
	sorted := []string{"", "\x00", "\x00\x00", "\x00\x01", "\x00\xff", "a", "a\x00", "a\x00b", "a\x01", "ab", "b", "\xff"}
	for i := 1; i < len(sorted); i++ {
		a, b := appendEscaped(nil, sorted[i-1]), appendEscaped(nil, sorted[i])
		assert.Negative(t, bytes.Compare(a, b), "%q < %q", sorted[i-1], sorted[i])
	}

	// Without escaping, (tenant "a", subject "bc") and (tenant "ab",
	// subject "c") would share a prefix.
	k1 := appendPersonPrefix(nil, "a", "bc")
	k2 := appendPersonPrefix(nil, "ab", "c")
	assert.False(t, bytes.HasPrefix(k2, k1))
	assert.False(t, bytes.HasPrefix(k1, k2))
	assert.False(t, bytes.HasPrefix(appendConsentKey(nil, events.Key{Tenant: "a", SubjectID: "b.c", Purpose: "p"}),
		appendPersonPrefix(nil, "a", "b")), "a person's prefix covers no other person")
}

func TestDecodeConsentKeyRefusesMalformedKeys(t *testing.T) {
	good := appendConsentKey(nil, events.Key{Tenant: "t", SubjectID: "s", Purpose: "p"})
	tests := map[string][]byte{
		"empty":            nil,
		"other kind":       append([]byte{kindViolation}, good[1:]...),
		"truncated":        good[:len(good)-1],
		"trailing bytes":   append(bytes.Clone(good), 'x'),
		"bad escape":       {kindConsent, 't', 0x00, 0x02},
		"missing parts":    appendPersonPrefix(nil, "t", "s"),
		"lone escape byte": {kindConsent, 0x00},
	}
	for name, key := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := decodeConsentKey(key)
			require.ErrorIs(t, err, errBadKey)
		})
	}
}

func TestPrefixEnd(t *testing.T) {
	assert.Equal(t, []byte{0x02}, prefixEnd([]byte{0x01}))
	assert.Equal(t, []byte{0x01, 0x03}, prefixEnd([]byte{0x01, 0x02, 0xff, 0xff}))
	assert.Nil(t, prefixEnd([]byte{0xff, 0xff}))
}

func TestViolationKeysSortBySeq(t *testing.T) {
	seqs := []uint64{1, 2, 255, 256, 1 << 32, 1<<64 - 1}
	for i := 1; i < len(seqs); i++ {
		assert.Negative(t, bytes.Compare(appendViolationKey(nil, seqs[i-1]), appendViolationKey(nil, seqs[i])))
	}
	for _, seq := range seqs {
		got, err := decodeViolationKey(appendViolationKey(nil, seq))
		require.NoError(t, err)
		assert.Equal(t, seq, got)
	}
}

// FuzzConsentKey checks the round trip (to the token, not the id), that
// byte order is the order of (tenant, token, purpose), and that a person's
// prefix covers exactly that person's consents.
func FuzzConsentKey(f *testing.F) {
	f.Add("acme", "alice@example.com", "marketing_email", "acme", "alice@example.com.evil", "a")
	f.Add("a", "bc", "p", "ab", "c", "p")
	f.Add("a\x00", "", "\x00\xff", "a", "\x00", "\x01")
	f.Fuzz(func(t *testing.T, t1, s1, p1, t2, s2, p2 string) {
		k1 := events.Key{Tenant: t1, SubjectID: s1, Purpose: p1}
		k2 := events.Key{Tenant: t2, SubjectID: s2, Purpose: p2}
		b1, b2 := appendConsentKey(nil, k1), appendConsentKey(nil, k2)

		tok1, tok2 := k1.Token(), k2.Token()
		require.Equal(t, b1, appendConsentKey(nil, events.Key{Tenant: t1, SubjectKey: tok1, Purpose: p1}), "a v2 key of the same person")

		got, err := decodeConsentKey(b1)
		require.NoError(t, err)
		require.Equal(t, events.Key{Tenant: t1, SubjectKey: tok1, Purpose: p1}, got)

		want := cmp.Or(strings.Compare(t1, t2), strings.Compare(tok1, tok2), strings.Compare(p1, p2))
		require.Equal(t, want, bytes.Compare(b1, b2), "%q vs %q", k1, k2)

		samePerson := t1 == t2 && s1 == s2
		require.Equal(t, samePerson, bytes.HasPrefix(b2, appendPersonPrefix(nil, t1, tok1)))
	})
}
