package projector

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"

	"github.com/consentledger/consent/events"
)

// Key layout of the index. Every key starts with one kind byte; variable
// parts are escaped (see appendEscaped) so that no key is a prefix of
// another by accident and byte order equals the order of the decoded
// tuples; integers are fixed-width big-endian so byte order is numeric
// order.
//
//	kindMeta      escaped(name)                                -> meta value
//	kindConsent   escaped(tenant) escaped(token) escaped(purpose) -> encoded events.Consent
//	kindViolation uint64(seq)                                  -> JSON Violation
//
// The token is the consent's subject key (events.Key.Token: the subject
// key a v2 event carries, or events.SubjectKey of tenant and subject id
// for v1), never the subject id: the index holds no raw id. One person's
// consents share the prefix kindConsent+tenant+token, so Consents is one
// prefix scan and returns them ordered by purpose.
const (
	kindMeta      byte = 0x01
	kindConsent   byte = 0x02
	kindViolation byte = 0x03
)

// Names of the meta keys.
const (
	metaFormat     = "format"     // uvarint index format version
	metaCheckpoint = "checkpoint" // uint64: last stream sequence applied
	metaViolations = "violations" // uint64: number of violation records
	metaStream     = "stream"     // identity of the stream the index folds
)

// Escaping of variable-length parts: 0x00 is written as 0x00 0xFF and the
// part ends with 0x00 0x01. The terminator sorts before every escaped or
// plain byte, so "a" < "a\x00" < "ab" holds for the encodings too, and an
// encoded part is never a prefix of another encoded part.
const (
	escByte  byte = 0x00
	escZero  byte = 0xFF
	escEnd   byte = 0x01
	escBytes      = 2
)

var errBadKey = errors.New("projector: malformed index key")

// appendEscaped appends the escaped form of s to dst.
func appendEscaped[S string | []byte](dst []byte, s S) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == escByte {
			dst = append(dst, s[start:i]...)
			dst = append(dst, escByte, escZero)
			start = i + 1
		}
	}
	dst = append(dst, s[start:]...)
	return append(dst, escByte, escEnd)
}

// decodeEscaped reads one escaped part from the front of b and returns it
// with the rest of b.
func decodeEscaped(b []byte) (string, []byte, error) {
	var out []byte
	for {
		i := bytes.IndexByte(b, escByte)
		if i < 0 || i+1 >= len(b) {
			return "", nil, errBadKey
		}
		out = append(out, b[:i]...)
		switch b[i+1] {
		case escEnd:
			return string(out), b[i+escBytes:], nil
		case escZero:
			out = append(out, 0)
			b = b[i+escBytes:]
		default:
			return "", nil, errBadKey
		}
	}
}

// appendPersonPrefix appends the prefix shared by every consent of one
// person, token being the person's subject key (events.Key.Token).
func appendPersonPrefix[S string | []byte](dst []byte, tenant string, token S) []byte {
	dst = append(dst, kindConsent)
	dst = appendEscaped(dst, tenant)
	return appendEscaped(dst, token)
}

// appendConsentKey appends the key under which k's folded state is stored:
// tenant, k.Token() and purpose.
func appendConsentKey(dst []byte, k events.Key) []byte {
	var buf [64]byte
	token := k.AppendToken(buf[:0])
	// One allocation for the common key (no escape bytes inside): the
	// kind byte and two terminator bytes per part.
	dst = slices.Grow(dst, 7+len(k.Tenant)+len(token)+len(k.Purpose))
	dst = appendPersonPrefix(dst, k.Tenant, token)
	return appendEscaped(dst, k.Purpose)
}

// decodeConsentKey is the inverse of appendConsentKey: the key it returns
// has the token as its SubjectKey and no SubjectID.
func decodeConsentKey(b []byte) (events.Key, error) {
	if len(b) == 0 || b[0] != kindConsent {
		return events.Key{}, errBadKey
	}
	var k events.Key
	var err error
	rest := b[1:]
	if k.Tenant, rest, err = decodeEscaped(rest); err != nil {
		return events.Key{}, err
	}
	if k.SubjectKey, rest, err = decodeEscaped(rest); err != nil {
		return events.Key{}, err
	}
	if k.Purpose, rest, err = decodeEscaped(rest); err != nil {
		return events.Key{}, err
	}
	if len(rest) != 0 {
		return events.Key{}, errBadKey
	}
	return k, nil
}

// appendViolationKey appends the key of the violation record at seq.
func appendViolationKey(dst []byte, seq uint64) []byte {
	dst = append(dst, kindViolation)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// decodeViolationKey is the inverse of appendViolationKey.
func decodeViolationKey(b []byte) (uint64, error) {
	if len(b) != 9 || b[0] != kindViolation {
		return 0, errBadKey
	}
	return binary.BigEndian.Uint64(b[1:]), nil
}

// metaKey returns the key of a meta value.
func metaKey(name string) []byte {
	return appendEscaped([]byte{kindMeta}, name)
}

// prefixEnd returns the smallest key greater than every key that starts
// with prefix (the upper bound of a prefix scan), or nil when there is none.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
