package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxCanonicalDepth is how deeply arrays and objects may nest in a document
// given to Canonical (the top-level object is depth 1).
const MaxCanonicalDepth = 64

// ErrNotCanonicalizable is matched by every error Canonical returns: the
// input is not an I-JSON object (RFC 7493) that RFC 8785 can canonicalize.
var ErrNotCanonicalizable = errors.New("not canonicalizable JSON")

// Canonical returns the canonical encoding of a JSON object, as RFC 8785
// (the JSON Canonicalization Scheme, JCS) defines it: no whitespace, object
// members sorted by the UTF-16 code units of their names, strings with only
// the mandatory escapes, numbers in their shortest round-trip form. The
// members named in omit are left out of the top-level object (the event
// hash is computed with omit = "hash").
//
// JCS works on I-JSON, so Canonical refuses, with an error matching
// ErrNotCanonicalizable, what another implementation could read
// differently: anything but exactly one JSON object, invalid UTF-8, escaped
// lone surrogates, duplicate member names, numbers beyond float64, and
// nesting deeper than MaxCanonicalDepth.
//
// JCS has implementations in most languages, which is what lets an auditor
// recompute an event hash without this code (see docs/hashing.md).
func Canonical(data []byte, omit ...string) ([]byte, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: invalid UTF-8", ErrNotCanonicalizable)
	}
	if err := checkSurrogates(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCanonicalizable, err)
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: not a JSON object", ErrNotCanonicalizable)
	}
	obj, err := parseObject(dec, 1)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the object", ErrNotCanonicalizable)
	}
	for _, name := range omit {
		delete(obj, name)
	}
	buf := make([]byte, 0, len(data))
	return appendCanonical(buf, obj), nil
}

// parseObject reads the members of an object whose '{' has been read.
func parseObject(dec *json.Decoder, depth int) (map[string]any, error) {
	if depth > MaxCanonicalDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", ErrNotCanonicalizable, MaxCanonicalDepth)
	}
	obj := make(map[string]any)
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotCanonicalizable, err)
		}
		if tok == json.Delim('}') {
			return obj, nil
		}
		name := tok.(string) // the decoder only yields strings in name position
		if _, dup := obj[name]; dup {
			return nil, fmt.Errorf("%w: duplicate member %q", ErrNotCanonicalizable, name)
		}
		v, err := parseValue(dec, depth)
		if err != nil {
			return nil, err
		}
		obj[name] = v
	}
}

// parseValue reads one value inside a container at the given depth.
func parseValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCanonicalizable, err)
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '{':
			return parseObject(dec, depth+1)
		case '[':
			return parseArray(dec, depth+1)
		}
		return nil, fmt.Errorf("%w: unexpected %q", ErrNotCanonicalizable, tok)
	case json.Number:
		f, err := tok.Float64()
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: number %s is out of the float64 range", ErrNotCanonicalizable, tok)
		}
		return f, nil
	default: // string, bool, nil
		return tok, nil
	}
}

// parseArray reads the elements of an array whose '[' has been read.
func parseArray(dec *json.Decoder, depth int) ([]any, error) {
	if depth > MaxCanonicalDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", ErrNotCanonicalizable, MaxCanonicalDepth)
	}
	arr := []any{}
	for dec.More() {
		v, err := parseValue(dec, depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, fmt.Errorf("%w: %v", ErrNotCanonicalizable, err)
	}
	return arr, nil
}

func appendCanonical(buf []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(buf, "null"...)
	case bool:
		return strconv.AppendBool(buf, v)
	case float64:
		return appendCanonicalNumber(buf, v)
	case string:
		return appendCanonicalString(buf, v)
	case []any:
		buf = append(buf, '[')
		for i, e := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendCanonical(buf, e)
		}
		return append(buf, ']')
	case map[string]any:
		names := make([]string, 0, len(v))
		for name := range v {
			names = append(names, name)
		}
		slices.SortFunc(names, compareUTF16)
		buf = append(buf, '{')
		for i, name := range names {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendCanonicalString(buf, name)
			buf = append(buf, ':')
			buf = appendCanonical(buf, v[name])
		}
		return append(buf, '}')
	}
	panic(fmt.Sprintf("events: unexpected JSON value %T", v)) // parseValue yields only the types above
}

// appendCanonicalNumber formats f as ECMAScript's Number.prototype.toString
// does (RFC 8785 section 3.2.2.3): the shortest digits that round-trip,
// plain notation for 1e-6 <= |f| < 1e21, else exponent notation without
// leading zeros in the exponent, and 0 for negative zero.
func appendCanonicalNumber(buf []byte, f float64) []byte {
	if f == 0 {
		return append(buf, '0') // also -0
	}
	if abs := math.Abs(f); abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(buf, f, 'f', -1, 64)
	}
	start := len(buf)
	buf = strconv.AppendFloat(buf, f, 'e', -1, 64)
	// Go writes at least two exponent digits (1e-07); ECMAScript does not.
	if n := len(buf); n-start >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
		buf[n-2] = buf[n-1]
		buf = buf[:n-1]
	}
	return buf
}

func appendCanonicalString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			buf = append(buf, `\"`...)
		case c == '\\':
			buf = append(buf, `\\`...)
		case c == '\b':
			buf = append(buf, `\b`...)
		case c == '\f':
			buf = append(buf, `\f`...)
		case c == '\n':
			buf = append(buf, `\n`...)
		case c == '\r':
			buf = append(buf, `\r`...)
		case c == '\t':
			buf = append(buf, `\t`...)
		case c < 0x20:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			// Every other byte, including all of multi-byte UTF-8
			// sequences, is written as it is.
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}

// compareUTF16 orders strings by their UTF-16 code units, as JCS sorts
// member names. It differs from byte order only for characters above U+FFFF
// against those in U+E000..U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			return slices.Compare(utf16.AppendRune(nil, ra), utf16.AppendRune(nil, rb))
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

// checkSurrogates refuses \u escapes that encode a lone UTF-16 surrogate,
// which encoding/json would silently turn into U+FFFD while other parsers
// keep or reject them: the same bytes would hash differently.
func checkSurrogates(data []byte) error {
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 < len(data) && data[i+1] == 'u' {
				u, ok := hex4(data, i+2)
				if !ok {
					return nil // malformed; the parser reports it
				}
				switch {
				case u >= 0xdc00 && u <= 0xdfff:
					return fmt.Errorf("%w: lone surrogate \\u%04x", ErrNotCanonicalizable, u)
				case u >= 0xd800 && u <= 0xdbff:
					lo, ok := uint16(0), i+11 < len(data) && data[i+6] == '\\' && data[i+7] == 'u'
					if ok {
						lo, ok = hex4(data, i+8)
					}
					if !ok || lo < 0xdc00 || lo > 0xdfff {
						return fmt.Errorf("%w: lone surrogate \\u%04x", ErrNotCanonicalizable, u)
					}
					i += 6 // the low half is consumed below with the high one
				}
				i += 5
			} else {
				i++ // skip the escaped character
			}
		}
	}
	return nil
}

// hex4 decodes the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (uint16, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(data[i:i+4]), 16, 16)
	return uint16(v), err == nil
}
