package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Fast paths for the payloads the ledger writes: Seal publishes the
// canonical encoding (RFC 8785) of an event, so a stored payload has no
// whitespace, its members are in order and its strings carry no escapes.
// For such a payload the canonical encoding without "hash" is the payload
// with that member cut out, and its fields can be read in one pass without
// reflection. The fast paths recognise exactly that shape and decline
// anything else, which then takes the general path; so they never accept
// what the general path refuses, and return what it returns (a
// differential fuzz test holds them to that).

// canonicalHashInput returns the canonical encoding of payload without its
// top-level "hash" member as the two pieces around that member, when
// payload is already in canonical form; ok is false otherwise.
func canonicalHashInput(payload []byte) (before, after []byte, ok bool) {
	if !utf8.Valid(payload) {
		return nil, nil, false
	}
	s := canonScanner{data: payload}
	hash := memberSpan{start: -1}
	if !s.object(1, func(name []byte, start, end int) {
		if string(name) == "hash" {
			hash = memberSpan{start, end}
		}
	}) || s.pos != len(payload) {
		return nil, nil, false
	}
	before, after = hash.cut(payload)
	return before, after, true
}

// memberSpan is where a top-level member, `"name":value`, is in a payload
// in canonical form; start is -1 when there is no such member.
type memberSpan struct{ start, end int }

// cut returns payload without the member, as the two pieces around it.
func (m memberSpan) cut(payload []byte) (before, after []byte) {
	if m.start < 0 {
		return payload, nil
	}
	// Cut the member and one comma next to it.
	start, end := m.start, m.end
	switch {
	case payload[start-1] == ',':
		start--
	case payload[end] == ',':
		end++
	}
	return payload[:start], payload[end:]
}

// appendCanonicalHash appends the hex hash of a payload in canonical form
// to dst.
func appendCanonicalHash(dst, payload []byte) ([]byte, bool) {
	before, after, ok := canonicalHashInput(payload)
	if !ok {
		return dst, false
	}
	return appendSum(dst, before, after), true
}

// appendSum appends the hex SHA-256 of before and after, in that order,
// to dst.
func appendSum(dst, before, after []byte) []byte {
	h := sha256.New()
	h.Write(before)
	h.Write(after)
	var sum [sha256.Size]byte
	return hex.AppendEncode(dst, h.Sum(sum[:0]))
}

// canonScanner checks that JSON text is in canonical form: no whitespace,
// object member names plain ASCII without escapes in strictly increasing
// order (UTF-16 order is byte order for ASCII), strings without escapes or
// control characters, integers of at most 15 digits without leading zeros
// or a negative zero, nesting within MaxCanonicalDepth. The text must be
// valid UTF-8 (the caller checks).
type canonScanner struct {
	data []byte
	pos  int
}

// object scans an object at pos; member, when not nil, is told each
// top-level member's name and the span of `"name":value`.
func (s *canonScanner) object(depth int, member func(name []byte, start, end int)) bool {
	if depth > MaxCanonicalDepth || s.peek() != '{' {
		return false
	}
	s.pos++
	if s.peek() == '}' {
		s.pos++
		return true
	}
	var prev []byte
	for {
		start := s.pos
		name, ok := s.name()
		if !ok || (prev != nil && bytes.Compare(prev, name) >= 0) || s.peek() != ':' {
			return false
		}
		prev = name
		s.pos++
		if !s.value(depth) {
			return false
		}
		if member != nil {
			member(name, start, s.pos)
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return true
		default:
			return false
		}
	}
}

func (s *canonScanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// name scans a member name: a string of printable ASCII without escapes.
func (s *canonScanner) name() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '"':
			s.pos = i + 1
			return s.data[start:i], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// str scans a string in canonical form (no control characters, only the
// escapes appendCanonicalString writes) and returns its contents as
// written, and whether they hold escapes.
func (s *canonScanner) str() (raw []byte, escaped, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '"':
			s.pos = i + 1
			return s.data[start:i], escaped, true
		case c < 0x20:
			return nil, false, false
		case c == '\\':
			n := canonicalEscapeLen(s.data[i:])
			if n == 0 {
				return nil, false, false
			}
			escaped = true
			i += n - 1
		}
	}
	return nil, false, false
}

// canonicalEscapeLen returns the length of the escape sequence at the
// start of b when it is one appendCanonicalString writes, else 0.
func canonicalEscapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		const hex = "0123456789abcdef"
		if len(b) < 6 || b[2] != '0' || b[3] != '0' || (b[4] != '0' && b[4] != '1') {
			return 0
		}
		lo := strings.IndexByte(hex, b[5])
		if lo < 0 {
			return 0
		}
		switch c := (b[4]-'0')<<4 | byte(lo); c {
		case '\b', '\f', '\n', '\r', '\t':
			return 0 // these have short forms
		}
		return 6
	}
	return 0
}

// unescapeCanonical decodes string contents that str accepted.
func unescapeCanonical(raw []byte) string {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			v, _ := strconv.ParseUint(string(raw[i+1:i+5]), 16, 8)
			out = append(out, byte(v))
			i += 4
		default: // '"' or '\\'
			out = append(out, raw[i])
		}
	}
	return string(out)
}

func (s *canonScanner) value(depth int) bool {
	switch c := s.peek(); {
	case c == '{':
		return s.object(depth+1, nil)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
			s.pos += len(lit)
			return true
		}
	}
	return false
}

func (s *canonScanner) array(depth int) bool {
	if depth > MaxCanonicalDepth {
		return false
	}
	s.pos++ // '['
	if s.peek() == ']' {
		s.pos++
		return true
	}
	for {
		if !s.value(depth) {
			return false
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return true
		default:
			return false
		}
	}
}

// number scans a number in canonical form: an integer as integer does, or
// another number written exactly as appendCanonicalNumber writes it.
func (s *canonScanner) number() bool {
	start := s.pos
	if _, ok := s.integer(); ok {
		return true
	}
	s.pos = start
	if s.peek() == '-' {
		s.pos++
	}
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if (c < '0' || c > '9') && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' {
			break
		}
		s.pos++
	}
	lit := s.data[start:s.pos]
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) || f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return false // integers take the integer form above
	}
	var buf [32]byte
	return bytes.Equal(appendCanonicalNumber(buf[:0], f), lit)
}

// integer scans an integer in canonical form and returns its value.
func (s *canonScanner) integer() (int64, bool) {
	neg := s.peek() == '-'
	if neg {
		s.pos++
	}
	start := s.pos
	var v int64
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		v = v*10 + int64(s.data[s.pos]-'0')
		s.pos++
	}
	n := s.pos - start
	if n == 0 || n > 15 || (n > 1 && s.data[start] == '0') || (neg && v == 0) {
		return 0, false
	}
	switch s.peek() {
	case '.', 'e', 'E':
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// eventField numbers the members of an event.
type eventField int

const (
	fieldUnknown eventField = iota
	fieldActor
	fieldDescription
	fieldEvidence
	fieldExpiresAt
	fieldHash
	fieldID
	fieldKeyID
	fieldMethod
	fieldOccurredAt
	fieldPolicyVersion
	fieldPrevHash
	fieldPurpose
	fieldReason
	fieldRecordedAt
	fieldRecordedBy
	fieldSealed
	fieldSubject
	fieldSubjectKey
	fieldTenant
	fieldType
	fieldV
)

func lookupEventField(name []byte) eventField {
	switch string(name) {
	case "actor":
		return fieldActor
	case "description":
		return fieldDescription
	case "evidence":
		return fieldEvidence
	case "expires_at":
		return fieldExpiresAt
	case "hash":
		return fieldHash
	case "id":
		return fieldID
	case "key_id":
		return fieldKeyID
	case "method":
		return fieldMethod
	case "occurred_at":
		return fieldOccurredAt
	case "policy_version":
		return fieldPolicyVersion
	case "prev_hash":
		return fieldPrevHash
	case "purpose":
		return fieldPurpose
	case "reason":
		return fieldReason
	case "recorded_at":
		return fieldRecordedAt
	case "recorded_by":
		return fieldRecordedBy
	case "sealed":
		return fieldSealed
	case "subject":
		return fieldSubject
	case "subject_key":
		return fieldSubjectKey
	case "tenant":
		return fieldTenant
	case "type":
		return fieldType
	case "v":
		return fieldV
	}
	return fieldUnknown
}

// decodeCanonicalEvent reads an event payload in canonical form whose
// members are all event fields; ok is false for any other payload. It does
// not validate the values (decodeEvent does). It also returns where the
// "hash" member is, so that the hash of the content needs no second scan:
// whatever it reads, canonicalHashInput would find canonical. text holds
// payload's bytes, and the event's strings share it instead of one
// allocation each (a state folded from the event keeps it, a few hundred
// bytes, alive while it is held).
func decodeCanonicalEvent(payload []byte, text string) (e *Event, hash memberSpan, ok bool) {
	hash.start = -1
	if !utf8.Valid(payload) {
		return nil, hash, false
	}
	s := canonScanner{data: payload}
	if s.peek() != '{' {
		return nil, hash, false
	}
	s.pos++
	e = new(Event)
	if s.peek() == '}' {
		s.pos++
		return e, hash, s.pos == len(payload)
	}
	var prev []byte
	for {
		start := s.pos
		name, ok := s.name()
		if !ok || (prev != nil && bytes.Compare(prev, name) >= 0) || s.peek() != ':' {
			return nil, hash, false
		}
		prev = name
		s.pos++
		f := lookupEventField(name)
		if !e.readField(&s, text, f) {
			return nil, hash, false
		}
		if f == fieldHash {
			hash = memberSpan{start, s.pos}
		}
		switch s.peek() {
		case ',':
			s.pos++
			continue
		case '}':
			s.pos++
		default:
			return nil, hash, false
		}
		return e, hash, s.pos == len(payload)
	}
}

// readField reads the value of field f at the scanner's position into e;
// text is s.data as a string, for its strings to share.
func (e *Event) readField(s *canonScanner, text string, f eventField) bool {
	switch f {
	case fieldV, fieldPolicyVersion:
		v, ok := s.integer()
		if !ok || v != int64(int(v)) {
			return false
		}
		if f == fieldV {
			e.V = int(v)
		} else {
			e.PolicyVersion = int(v)
		}
		return true
	case fieldOccurredAt, fieldRecordedAt, fieldExpiresAt:
		start := s.pos
		if _, escaped, ok := s.str(); !ok || escaped {
			return false
		}
		var t time.Time
		// Exactly what encoding/json does with a time.Time field.
		if t.UnmarshalJSON(s.data[start:s.pos]) != nil {
			return false
		}
		switch f {
		case fieldOccurredAt:
			e.OccurredAt = t
		case fieldRecordedAt:
			e.RecordedAt = t
		default:
			expires := t // only this time needs a heap copy
			e.ExpiresAt = &expires
		}
		return true
	case fieldEvidence:
		start := s.pos
		if !s.object(2, nil) {
			return false
		}
		e.Evidence = json.RawMessage(bytes.Clone(s.data[start:s.pos]))
		return true
	case fieldUnknown:
		return false
	}
	start := s.pos + 1 // past the opening quote
	v, escaped, ok := s.str()
	if !ok {
		return false
	}
	str := text[start : start+len(v)]
	if escaped {
		str = unescapeCanonical(v)
	}
	switch f {
	case fieldActor:
		e.Actor = str
	case fieldDescription:
		e.Description = str
	case fieldHash:
		e.Hash = str
	case fieldID:
		e.ID = str
	case fieldKeyID:
		e.KeyID = str
	case fieldMethod:
		e.Method = str
	case fieldPrevHash:
		e.PrevHash = str
	case fieldPurpose:
		e.Purpose = str
	case fieldReason:
		e.Reason = str
	case fieldRecordedBy:
		e.RecordedBy = str
	case fieldSealed:
		e.Sealed = str
	case fieldSubject:
		e.SubjectID = str
	case fieldSubjectKey:
		e.SubjectKey = str
	case fieldTenant:
		e.Tenant = str
	case fieldType:
		e.Type = Type(str)
	}
	return true
}

// sealFast is Seal writing the canonical encoding directly: members in
// their canonical order, strings escaped as Canonical escapes them, times
// as encoding/json writes them (RFC 3339 text, which canonical form keeps
// as it is), small integers as digits. It declines (ok false, e
// untouched) what it would have to write differently or refuse: strings
// that are not valid UTF-8 (encoding/json replaces their bytes), integers
// beyond 15 digits, times encoding/json refuses, and evidence that is not
// canonicalizable (which the general path reports). Evidence is
// canonicalized in place, as the general path does.
func (e *Event) sealFast() ([]byte, bool) {
	if !plainInt(e.V) || !plainInt(e.PolicyVersion) || !utf8.Valid(e.Evidence) || e.State != "" || e.QuarantinedSeq != 0 {
		// A quarantine's own members are left to sealGeneral.
		return nil, false
	}
	for _, s := range [...]string{e.ID, string(e.Type), e.Tenant, e.SubjectID, e.Purpose, e.Description, e.Actor, e.RecordedBy, e.Method, e.Reason, e.PrevHash, e.SubjectKey, e.KeyID, e.Sealed} {
		if !utf8.ValidString(s) {
			return nil, false
		}
	}
	w := sealWriter{b: make([]byte, 0, 512)}
	w.b = append(w.b, '{')
	w.optString("actor", e.Actor)
	w.optString("description", e.Description)
	var evidence []byte
	if len(e.Evidence) > 0 {
		evidence = w.json("evidence", e.Evidence)
	}
	if e.ExpiresAt != nil {
		w.time("expires_at", *e.ExpiresAt)
	}
	// "hash" goes here, before "id": split is where "id" starts.
	split := len(w.b)
	if w.members > 0 {
		split++ // the comma name writes
	}
	w.string("id", e.ID)
	w.optString("key_id", e.KeyID)
	w.optString("method", e.Method)
	w.time("occurred_at", e.OccurredAt)
	w.int("policy_version", e.PolicyVersion)
	w.string("prev_hash", e.PrevHash)
	w.string("purpose", e.Purpose)
	w.optString("reason", e.Reason)
	w.time("recorded_at", e.RecordedAt)
	w.optString("recorded_by", e.RecordedBy)
	w.optString("sealed", e.Sealed)
	w.optString("subject", e.SubjectID) // v2: sealed
	w.optString("subject_key", e.SubjectKey)
	w.string("tenant", e.Tenant)
	w.string("type", string(e.Type))
	w.int("v", e.V)
	w.b = append(w.b, '}')
	if w.failed {
		return nil, false
	}

	// w.b is the canonical encoding without "hash": what the hash is of.
	var sum [2 * sha256.Size]byte
	e.Hash = string(appendSum(sum[:0], w.b, nil))
	if evidence != nil {
		e.Evidence = bytes.Clone(evidence) // as stored
	}
	out := make([]byte, 0, len(w.b)+len(`"hash":"",`)+len(e.Hash))
	out = append(out, w.b[:split]...)
	out = append(out, `"hash":"`...)
	out = append(out, e.Hash...)
	out = append(out, '"', ',')
	return append(out, w.b[split:]...), true
}

// plainInt reports whether n is written the same by encoding/json and in
// canonical form, which reads numbers as float64: at most 15 digits.
func plainInt(n int) bool { return n > -1e15 && n < 1e15 }

// sealWriter appends the members of a canonical object; failed records a
// value it cannot write.
type sealWriter struct {
	b       []byte
	members int
	failed  bool
}

func (w *sealWriter) name(name string) {
	if w.members > 0 {
		w.b = append(w.b, ',')
	}
	w.members++
	w.b = append(w.b, '"')
	w.b = append(w.b, name...)
	w.b = append(w.b, '"', ':')
}

func (w *sealWriter) string(name, s string) {
	w.name(name)
	w.b = appendCanonicalString(w.b, s)
}

// optString writes s unless it is empty (omitempty).
func (w *sealWriter) optString(name, s string) {
	if s != "" {
		w.string(name, s)
	}
}

func (w *sealWriter) int(name string, n int) {
	w.name(name)
	w.b = strconv.AppendInt(w.b, int64(n), 10)
}

// json writes the canonical form of a JSON value, as Canonical writes it
// for a member of the top-level object, failing where it fails, and
// returns what it wrote of the value (sharing w.b).
func (w *sealWriter) json(name string, value []byte) []byte {
	w.name(name)
	start := len(w.b)
	var err error
	if w.b, err = appendCanonicalMember(w.b, value); err != nil {
		w.failed = true
	}
	return w.b[start:]
}

// appendCanonicalMember appends the canonical form of a JSON value, as
// Canonical writes it for a member of the top-level object (depth counted
// from the top-level object), to dst.
func appendCanonicalMember(dst, value []byte) ([]byte, error) {
	c := canonicalizer{data: value, out: dst}
	c.skipSpace()
	err := c.value(1)
	c.skipSpace()
	if err == nil && c.pos != len(value) {
		err = c.fail("trailing data after the value")
	}
	return c.out, err
}

// canonicalMember is appendCanonicalMember into a new slice.
func canonicalMember(value []byte) ([]byte, error) {
	return appendCanonicalMember(make([]byte, 0, len(value)), value)
}

// time writes t as Time.MarshalJSON does, failing where it fails.
func (w *sealWriter) time(name string, t time.Time) {
	w.name(name)
	w.b = append(w.b, '"')
	var err error
	if w.b, err = t.AppendText(w.b); err != nil {
		w.failed = true
	}
	w.b = append(w.b, '"')
}
