package events

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxCanonicalDepth is how deeply arrays and objects may nest in a document
// given to Canonical (the top-level object is depth 1): in an event, the
// event object is level 1.
const MaxCanonicalDepth = 64

// MaxEvidenceDepth is how deeply arrays and objects may nest in a
// command's evidence, counted from the evidence object as level 1. The
// evidence is a member of the event, one level down, so this is
// MaxCanonicalDepth - 1: evidence that passes Command.Validate fits in an
// event that Seal writes and Decode reads. It is the only depth limit a
// caller meets.
const MaxEvidenceDepth = MaxCanonicalDepth - 1

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
	c := canonicalizer{data: data, out: make([]byte, 0, len(data)), omit: omit}
	return c.topObject()
}

// CanonicalEvidence returns the canonical encoding of a command's evidence,
// as Canonical does, with two more refusals (errors matching
// ErrNotCanonicalizable): nesting deeper than MaxEvidenceDepth, counted
// from the evidence object, which is one level down in the event; and a
// number whose canonical form is a different value, so that what is
// stored and hashed means what the caller sent. Canonical form writes
// every number as the nearest IEEE 754 double: 4.50 becomes 4.5 (the same
// value, accepted), but 9007199254740993 (2^53+1) would become
// 9007199254740992, 1.00000000000000001 would become 1 and 1e-400 would
// become 0 (different values, refused). So integers are exact up to 2^53
// in magnitude, and a fraction is accepted when its shortest round-trip
// form is the number as written (0.1, 4.5, 1e-7, 5e-324).
func CanonicalEvidence(evidence []byte) ([]byte, error) {
	if !utf8.Valid(evidence) {
		return nil, fmt.Errorf("%w: invalid UTF-8", ErrNotCanonicalizable)
	}
	c := canonicalizer{data: evidence, out: make([]byte, 0, len(evidence)), maxDepth: MaxEvidenceDepth, exact: true}
	return c.topObject()
}

// topObject canonicalizes the one object that c.data must hold.
func (c *canonicalizer) topObject() ([]byte, error) {
	c.skipSpace()
	if c.peek() != '{' {
		return nil, c.fail("not a JSON object")
	}
	if err := c.object(1); err != nil {
		return nil, err
	}
	c.skipSpace()
	if c.pos != len(c.data) {
		return nil, c.fail("trailing data after the object")
	}
	return c.out, nil
}

// canonicalizer parses JSON and writes its canonical form in one pass.
type canonicalizer struct {
	data     []byte
	pos      int    // next byte of data to read
	out      []byte // canonical output so far
	omit     []string
	scratch  []byte // decoded bytes of the string being read
	maxDepth int    // MaxCanonicalDepth when 0
	exact    bool   // refuse numbers whose canonical form is another value
}

// tooDeep reports whether depth is beyond the nesting c allows.
func (c *canonicalizer) tooDeep(depth int) error {
	limit := c.maxDepth
	if limit == 0 {
		limit = MaxCanonicalDepth
	}
	if depth > limit {
		return c.fail(fmt.Sprintf("nested deeper than %d levels", limit))
	}
	return nil
}

func (c *canonicalizer) fail(problem string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrNotCanonicalizable, problem, c.pos)
}

// peek returns the next byte, or 0 at the end of the input.
func (c *canonicalizer) peek() byte {
	if c.pos < len(c.data) {
		return c.data[c.pos]
	}
	return 0
}

func (c *canonicalizer) skipSpace() {
	for c.pos < len(c.data) {
		switch c.data[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *canonicalizer) value(depth int) error {
	c.skipSpace()
	switch b := c.peek(); {
	case b == '{':
		return c.object(depth + 1)
	case b == '[':
		return c.array(depth + 1)
	case b == '"':
		if err := c.str(); err != nil {
			return err
		}
		c.out = appendCanonicalString(c.out, c.scratch)
		return nil
	case b == '-' || (b >= '0' && b <= '9'):
		return c.number()
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if bytes.HasPrefix(c.data[c.pos:], []byte(lit)) {
			c.pos += len(lit)
			c.out = append(c.out, lit...)
			return nil
		}
	}
	if c.pos >= len(c.data) {
		return c.fail("unexpected end of input")
	}
	return c.fail(fmt.Sprintf("unexpected character %q", c.data[c.pos]))
}

// member is one written member of the object being read: its decoded name
// and where `"name":value` sits in out.
type member struct {
	name       string
	start, end int
}

func (c *canonicalizer) object(depth int) error {
	if err := c.tooDeep(depth); err != nil {
		return err
	}
	c.pos++ // '{'
	start := len(c.out)
	c.out = append(c.out, '{')
	var buf [24]member
	members := buf[:0]
	c.skipSpace()
	if c.peek() == '}' {
		c.pos++
		c.out = append(c.out, '}')
		return nil
	}
	for {
		c.skipSpace()
		if c.peek() != '"' {
			return c.fail("expected a member name")
		}
		if err := c.str(); err != nil {
			return err
		}
		m := member{name: string(c.scratch), start: len(c.out)}
		c.out = appendCanonicalString(c.out, c.scratch)
		c.skipSpace()
		if c.peek() != ':' {
			return c.fail("expected ':' after a member name")
		}
		c.pos++
		c.out = append(c.out, ':')
		if err := c.value(depth); err != nil {
			return err
		}
		m.end = len(c.out)
		members = append(members, m)
		c.skipSpace()
		switch c.peek() {
		case ',':
			c.pos++
			c.out = append(c.out, ',')
			continue
		case '}':
			c.pos++
		default:
			return c.fail("expected ',' or '}' in an object")
		}
		break
	}

	sorted := slices.IsSortedFunc(members, compareMembers)
	if !sorted {
		slices.SortFunc(members, compareMembers)
	}
	for i := 1; i < len(members); i++ {
		if members[i].name == members[i-1].name {
			return c.fail(fmt.Sprintf("duplicate member %.40q", members[i].name))
		}
	}
	omitting := depth == 1 && slices.ContainsFunc(members, func(m member) bool { return slices.Contains(c.omit, m.name) })
	if sorted && !omitting {
		c.out = append(c.out, '}')
		return nil
	}
	// Rewrite the members in canonical order from a copy.
	written := slices.Clone(c.out[start:])
	c.out = append(c.out[:start], '{')
	first := true
	for _, m := range members {
		if depth == 1 && slices.Contains(c.omit, m.name) {
			continue
		}
		if !first {
			c.out = append(c.out, ',')
		}
		first = false
		c.out = append(c.out, written[m.start-start:m.end-start]...)
	}
	c.out = append(c.out, '}')
	return nil
}

func compareMembers(a, b member) int { return compareUTF16(a.name, b.name) }

func (c *canonicalizer) array(depth int) error {
	if err := c.tooDeep(depth); err != nil {
		return err
	}
	c.pos++ // '['
	c.out = append(c.out, '[')
	c.skipSpace()
	if c.peek() == ']' {
		c.pos++
		c.out = append(c.out, ']')
		return nil
	}
	for {
		if err := c.value(depth); err != nil {
			return err
		}
		c.skipSpace()
		switch c.peek() {
		case ',':
			c.pos++
			c.out = append(c.out, ',')
		case ']':
			c.pos++
			c.out = append(c.out, ']')
			return nil
		default:
			return c.fail("expected ',' or ']' in an array")
		}
	}
}

// str reads the string at pos into c.scratch, decoded. The input is known
// to be valid UTF-8.
func (c *canonicalizer) str() error {
	c.pos++ // '"'
	c.scratch = c.scratch[:0]
	for {
		run := c.pos
		for c.pos < len(c.data) && c.data[c.pos] != '"' && c.data[c.pos] != '\\' && c.data[c.pos] >= 0x20 {
			c.pos++
		}
		c.scratch = append(c.scratch, c.data[run:c.pos]...)
		switch c.peek() {
		case '"':
			c.pos++
			return nil
		case '\\':
			if err := c.escape(); err != nil {
				return err
			}
		default:
			if c.pos >= len(c.data) {
				return c.fail("unterminated string")
			}
			return c.fail("control character in a string")
		}
	}
}

// escape decodes the escape sequence at pos into c.scratch.
func (c *canonicalizer) escape() error {
	if c.pos+1 >= len(c.data) {
		return c.fail("unterminated string")
	}
	e := c.data[c.pos+1]
	c.pos += 2
	switch e {
	case '"', '\\', '/':
		c.scratch = append(c.scratch, e)
	case 'b':
		c.scratch = append(c.scratch, '\b')
	case 'f':
		c.scratch = append(c.scratch, '\f')
	case 'n':
		c.scratch = append(c.scratch, '\n')
	case 'r':
		c.scratch = append(c.scratch, '\r')
	case 't':
		c.scratch = append(c.scratch, '\t')
	case 'u':
		r, ok := c.hex4()
		if !ok {
			return c.fail("bad \\u escape")
		}
		if utf16.IsSurrogate(r) {
			lo, ok := rune(0), r < 0xdc00 && bytes.HasPrefix(c.data[c.pos:], []byte(`\u`))
			if ok {
				c.pos += 2
				lo, ok = c.hex4()
			}
			if r = utf16.DecodeRune(r, lo); !ok || r == utf8.RuneError {
				return c.fail("lone UTF-16 surrogate in a \\u escape")
			}
		}
		c.scratch = utf8.AppendRune(c.scratch, r)
	default:
		return c.fail(fmt.Sprintf("bad escape \\%c", e))
	}
	return nil
}

// hex4 reads four hex digits at pos.
func (c *canonicalizer) hex4() (rune, bool) {
	if c.pos+4 > len(c.data) {
		return 0, false
	}
	var r rune
	for _, h := range c.data[c.pos : c.pos+4] {
		switch {
		case h >= '0' && h <= '9':
			r = r<<4 | rune(h-'0')
		case h >= 'a' && h <= 'f':
			r = r<<4 | rune(h-'a'+10)
		case h >= 'A' && h <= 'F':
			r = r<<4 | rune(h-'A'+10)
		default:
			return 0, false
		}
	}
	c.pos += 4
	return r, true
}

// number reads a number at pos (JSON grammar) and writes it canonically.
func (c *canonicalizer) number() error {
	start := c.pos
	digits := func() int {
		n := 0
		for c.pos < len(c.data) && c.data[c.pos] >= '0' && c.data[c.pos] <= '9' {
			c.pos++
			n++
		}
		return n
	}
	if c.peek() == '-' {
		c.pos++
	}
	intStart := c.pos
	n := digits()
	if n == 0 || (n > 1 && c.data[intStart] == '0') {
		return c.fail("malformed number")
	}
	integer := true
	if c.peek() == '.' {
		c.pos++
		integer = false
		if digits() == 0 {
			return c.fail("malformed number")
		}
	}
	if b := c.peek(); b == 'e' || b == 'E' {
		c.pos++
		integer = false
		if b := c.peek(); b == '+' || b == '-' {
			c.pos++
		}
		if digits() == 0 {
			return c.fail("malformed number")
		}
	}
	lit := c.data[start:c.pos]
	// Integers of up to 15 digits are exact in float64 and ECMAScript
	// writes them as they are.
	if integer && n <= 15 {
		if string(lit) == "-0" {
			lit = lit[1:]
		}
		c.out = append(c.out, lit...)
		return nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) {
		return c.fail("number " + shorten(lit) + " is out of the float64 range")
	}
	start = len(c.out)
	c.out = appendCanonicalNumber(c.out, f)
	if c.exact && !sameNumber(lit, f, c.out[start:]) {
		return c.fail("number " + shorten(lit) + " would be stored as " + string(c.out[start:]) + ", another value (integers are exact up to 2^53)")
	}
	return nil
}

// sameNumber reports whether the number literal lit has the same value as
// canon, the canonical form of f, the double nearest to lit.
func sameNumber(lit []byte, f float64, canon []byte) bool {
	if f == 0 {
		// Zero, unless lit underflowed: any nonzero digit before the
		// exponent means it did.
		mantissa, _, _ := bytes.Cut(bytes.ToLower(lit), []byte("e"))
		return len(bytes.Trim(mantissa, "-0.")) == 0
	}
	// f is finite and not zero, so lit's exponent is bounded by its length:
	// exact rationals stay small.
	var a, b big.Rat
	if _, ok := a.SetString(string(lit)); !ok {
		return false
	}
	if _, ok := b.SetString(string(canon)); !ok {
		return false
	}
	return a.Cmp(&b) == 0
}

// shorten cuts a number literal to fit in an error message.
func shorten(lit []byte) string {
	if len(lit) > 40 {
		return string(lit[:40]) + "..."
	}
	return string(lit)
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

func appendCanonicalString[T string | []byte](buf []byte, s T) []byte {
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
