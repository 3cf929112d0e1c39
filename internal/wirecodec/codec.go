// Package wirecodec encodes and decodes the hot messages of the consent
// service (the status and check query, the status reply) without
// reflection, byte for byte as encoding/json does; the server (ledger) and
// the Go client (client) share it.
package wirecodec

import (
	"encoding/json"
	"strconv"
	"time"
	"unsafe"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
)

// The codecs in this file are fast paths for the lookups' hot messages:
// the StatusQuery a caller sends and the events.Status it gets back. Each
// handles the plain shape those messages have in practice (flat objects,
// ASCII strings without escapes, small non-negative integers) in one pass
// without reflection, and hands anything else to encoding/json or
// events.DecodeStrict, so the bytes written and the values and errors
// read are exactly the ones the general code gives (codec_test.go holds
// them to it with differential fuzz tests).

// decodeStatusQuery decodes a status or check request as
// events.DecodeStrict does, with the same errors.
func decodeStatusQuery(data []byte, q *wire.StatusQuery) error {
	return decodeStatusQueryText(data, string(data), q)
}

// DecodeOwnedStatusQuery is decodeStatusQuery for a buffer handed over
// with the call, as a request's payload is (see UnmarshalOwnedStatus): q's
// strings share data.
func DecodeOwnedStatusQuery(data []byte, q *wire.StatusQuery) error {
	return decodeStatusQueryText(data, ownedText(data), q)
}

// ownedText is data as a string sharing its bytes, for a buffer handed
// over with the call that nothing writes to afterwards.
func ownedText(data []byte) string {
	return unsafe.String(unsafe.SliceData(data), len(data))
}

// decodeStatusQueryText is decodeStatusQuery with text holding data's
// bytes.
func decodeStatusQueryText(data []byte, text string, q *wire.StatusQuery) error {
	if decodeStatusQueryFast(data, text, q) {
		return nil
	}
	// Decoded into a variable of its own so that q, which the fast path
	// only writes, does not escape to the heap.
	var general wire.StatusQuery
	err := events.DecodeStrict(data, &general)
	*q = general
	return err
}

// decodeStatusQueryFast decodes a flat object of the StatusQuery fields,
// each at most once and spelled exactly, with plain strings and small
// unsigned integers, its strings taken from text, which holds data's
// bytes. It reports false, leaving q partly set, for anything else.
func decodeStatusQueryFast(data []byte, text string, q *wire.StatusQuery) bool {
	p := scanner{b: data, s: text}
	if !p.objectStart() {
		return false
	}
	var seen uint8
	for more := !p.objectEnd(); more; {
		name, ok := p.member()
		if !ok {
			return false
		}
		var bit uint8
		switch string(name) {
		case "tenant":
			bit = 1
			q.Tenant, ok = p.str()
		case "subject":
			bit = 2
			q.SubjectID, ok = p.str()
		case "purpose":
			bit = 4
			q.Purpose, ok = p.str()
		case "min_seq":
			bit = 8
			q.MinSeq, ok = p.uint()
		case "min_policy_version":
			bit = 16
			var n uint64
			n, ok = p.uint()
			// Out of range (an explicit 0 included): the general path
			// names the field.
			ok = ok && n >= 1 && n <= events.MaxPolicyVersion
			q.MinPolicyVersion = int(n)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if more, ok = p.next(); !ok {
			return false
		}
	}
	return p.end()
}

// AppendStatusQuery appends q as json.Marshal writes it.
func AppendStatusQuery(dst []byte, q *wire.StatusQuery) []byte {
	dst = append(dst, '{')
	if q.Tenant != "" {
		dst = append(dst, `"tenant":`...)
		dst = appendString(dst, q.Tenant)
		dst = append(dst, ',')
	}
	dst = append(dst, `"subject":`...)
	dst = appendString(dst, q.SubjectID)
	dst = append(dst, `,"purpose":`...)
	dst = appendString(dst, q.Purpose)
	if q.MinSeq != 0 {
		dst = append(dst, `,"min_seq":`...)
		dst = strconv.AppendUint(dst, q.MinSeq, 10)
	}
	if q.MinPolicyVersion != 0 {
		dst = append(dst, `,"min_policy_version":`...)
		dst = strconv.AppendInt(dst, int64(q.MinPolicyVersion), 10)
	}
	return append(dst, '}')
}

// MarshalStatus returns st as json.Marshal writes it, with the same error.
func MarshalStatus(st *events.Status) ([]byte, error) {
	if b, ok := AppendStatus(make([]byte, 0, 320), st); ok {
		return b, nil
	}
	return json.Marshal(st)
}

// AppendStatus appends st as json.Marshal writes it. It reports false when
// a time cannot be written (json.Marshal fails on it too).
func AppendStatus(dst []byte, st *events.Status) ([]byte, bool) {
	var ok bool
	dst = append(dst, `{"tenant":`...)
	dst = appendString(dst, st.Tenant)
	dst = append(dst, `,"subject":`...)
	dst = appendString(dst, st.SubjectID)
	dst = append(dst, `,"purpose":`...)
	dst = appendString(dst, st.Purpose)
	dst = append(dst, `,"state":`...)
	dst = appendString(dst, string(st.State))
	dst = append(dst, `,"allowed":`...)
	dst = strconv.AppendBool(dst, st.Allowed)
	dst = append(dst, `,"policy_version":`...)
	dst = strconv.AppendInt(dst, int64(st.PolicyVersion), 10)
	dst = append(dst, `,"updated_at":`...)
	if dst, ok = appendTime(dst, st.UpdatedAt); !ok {
		return dst, false
	}
	if st.ExpiresAt != nil {
		dst = append(dst, `,"expires_at":`...)
		if dst, ok = appendTime(dst, st.ExpiresAt); !ok {
			return dst, false
		}
	}
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, st.Seq, 10)
	dst = append(dst, `,"event_id":`...)
	dst = appendString(dst, st.EventID)
	dst = append(dst, `,"index_seq":`...)
	dst = strconv.AppendUint(dst, st.IndexSeq, 10)
	if st.RequiredPolicyVersion != 0 {
		dst = append(dst, `,"required_policy_version":`...)
		dst = strconv.AppendInt(dst, int64(st.RequiredPolicyVersion), 10)
	}
	if st.Outdated {
		dst = append(dst, `,"outdated":true`...)
	}
	if st.ViolationSeq != 0 {
		dst = append(dst, `,"violation_seq":`...)
		dst = strconv.AppendUint(dst, st.ViolationSeq, 10)
	}
	if st.SubjectKey != "" {
		dst = append(dst, `,"subject_key":`...)
		dst = appendString(dst, st.SubjectKey)
	}
	return append(dst, '}'), true
}

// appendTime appends t as encoding/json writes a *time.Time (null for
// nil), reporting false where Time.MarshalJSON fails.
func appendTime(dst []byte, t *time.Time) ([]byte, bool) {
	if t == nil {
		return append(dst, "null"...), true
	}
	dst = append(dst, '"')
	dst, err := t.AppendText(dst)
	return append(dst, '"'), err == nil
}

// appendString appends s as encoding/json writes a string: plain ASCII
// directly, anything that needs escaping (including <, > and &, which
// encoding/json escapes for HTML) through encoding/json.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if jsonByte[s[i]] != jsonPlain {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// jsonByte classes every byte for the codecs' string loops: one table load
// per byte instead of a handful of comparisons.
var jsonByte = func() (t [256]byte) {
	for c := range t {
		switch {
		case c == '"':
			t[c] = jsonQuote
		case c == '<' || c == '>' || c == '&':
			t[c] = jsonHTML
		case c >= 0x20 && c < 0x7f && c != '\\':
			t[c] = jsonPlain
		default:
			t[c] = jsonOther
		}
	}
	return t
}()

// The classes of jsonByte, in this order.
const (
	jsonPlain = iota // stands for itself inside a string, read and written
	jsonHTML         // stands for itself when read; encoding/json escapes it for HTML
	jsonQuote        // ends a string
	jsonOther        // escapes, control and non-ASCII bytes: not for the fast paths
)

// unmarshalStatus decodes a status reply as json.Unmarshal does into a
// zero events.Status.
func unmarshalStatus(data []byte, st *events.Status) error {
	return unmarshalStatusText(data, string(data), st)
}

// UnmarshalOwnedStatus is unmarshalStatus for a buffer handed over with
// the call: st's strings share data instead of a copy of it, so nothing
// may write to data afterwards. A reply's payload qualifies: nats.go gives
// every delivered message a buffer of its own.
func UnmarshalOwnedStatus(data []byte, st *events.Status) error {
	return unmarshalStatusText(data, ownedText(data), st)
}

// unmarshalStatusText is unmarshalStatus with text holding data's bytes.
func unmarshalStatusText(data []byte, text string, st *events.Status) error {
	if unmarshalStatusFast(data, text, st) {
		return nil
	}
	// Decoded into a variable of its own so that st, which the fast path
	// only writes, does not escape to the heap.
	var general events.Status
	err := json.Unmarshal(data, &general)
	*st = general
	return err
}

// unmarshalStatusFast decodes the status as AppendStatus writes it (its
// members in any order, each once), its strings taken from text, which
// holds data's bytes. It reports false, leaving st partly set, for
// anything else.
func unmarshalStatusFast(data []byte, text string, st *events.Status) bool {
	p := scanner{b: data, s: text}
	if !p.objectStart() {
		return false
	}
	var seen uint16
	for more := !p.objectEnd(); more; {
		name, ok := p.member()
		if !ok {
			return false
		}
		var bit uint16
		var n uint64
		switch string(name) {
		case "tenant":
			bit = 1 << 0
			st.Tenant, ok = p.str()
		case "subject":
			bit = 1 << 1
			st.SubjectID, ok = p.str()
		case "purpose":
			bit = 1 << 2
			st.Purpose, ok = p.str()
		case "state":
			bit = 1 << 3
			var s string
			s, ok = p.str()
			st.State = events.State(s)
		case "allowed":
			bit = 1 << 4
			st.Allowed, ok = p.bool()
		case "policy_version":
			bit = 1 << 5
			n, ok = p.uint()
			st.PolicyVersion = int(n)
		case "updated_at":
			bit = 1 << 6
			st.UpdatedAt, ok = p.time()
		case "expires_at":
			bit = 1 << 7
			st.ExpiresAt, ok = p.time()
		case "seq":
			bit = 1 << 8
			st.Seq, ok = p.uint()
		case "event_id":
			bit = 1 << 9
			st.EventID, ok = p.str()
		case "index_seq":
			bit = 1 << 10
			st.IndexSeq, ok = p.uint()
		case "required_policy_version":
			bit = 1 << 11
			n, ok = p.uint()
			st.RequiredPolicyVersion = int(n)
		case "outdated":
			bit = 1 << 12
			st.Outdated, ok = p.bool()
		case "violation_seq":
			bit = 1 << 13
			st.ViolationSeq, ok = p.uint()
		case "subject_key":
			bit = 1 << 14
			st.SubjectKey, ok = p.str()
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if more, ok = p.next(); !ok {
			return false
		}
	}
	return p.end()
}

// MarshalReply encodes a service reply; a status takes the fast path.
func MarshalReply(body any) ([]byte, error) {
	if st, ok := body.(*events.Status); ok {
		return MarshalStatus(st)
	}
	return json.Marshal(body)
}

// scanner reads the plain JSON the fast paths accept. s holds b's bytes
// (a copy, or b itself when b is handed over): the strings it returns
// share it, one allocation at most for all of them.
type scanner struct {
	b []byte
	s string
	i int
}

func (p *scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *scanner) consume(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *scanner) objectStart() bool { return p.consume('{') }

// objectEnd consumes a '}' right after '{' (an empty object).
func (p *scanner) objectEnd() bool { return p.consume('}') }

// member reads a member name and its colon.
func (p *scanner) member() ([]byte, bool) {
	name, ok := p.raw()
	return name, ok && p.consume(':')
}

// next consumes the ',' before another member (true) or the closing '}'
// (false); ok is false for anything else.
func (p *scanner) next() (more, ok bool) {
	if p.consume(',') {
		return true, true
	}
	return false, p.consume('}')
}

// end reports whether only whitespace is left.
func (p *scanner) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// raw reads a string of plain ASCII characters and returns its contents.
func (p *scanner) raw() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch jsonByte[p.b[p.i]] {
		case jsonPlain, jsonHTML:
		case jsonQuote:
			p.i++
			return p.b[start : p.i-1], true
		default:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

func (p *scanner) str() (string, bool) {
	s, ok := p.raw()
	if !ok {
		return "", false
	}
	end := p.i - 1 // the closing quote
	return p.s[end-len(s) : end], true
}

// uint reads an unsigned integer of at most 18 digits, without leading
// zeros, so it fits every integer field it is read into.
func (p *scanner) uint() (uint64, bool) {
	p.ws()
	start := p.i
	var n uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		n = n*10 + uint64(p.b[p.i]-'0')
		p.i++
	}
	digits := p.i - start
	if digits == 0 || digits > 18 || (digits > 1 && p.b[start] == '0') {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	return n, true
}

func (p *scanner) bool() (bool, bool) {
	p.ws()
	rest := p.b[p.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		p.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		p.i += 5
		return false, true
	}
	return false, false
}

// time reads null (nil) or a plain string, decoded as Time.UnmarshalJSON
// decodes it.
func (p *scanner) time() (*time.Time, bool) {
	p.ws()
	if len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return nil, true
	}
	start := p.i
	if _, ok := p.raw(); !ok {
		return nil, false
	}
	t := new(time.Time)
	if t.UnmarshalJSON(p.b[start:p.i]) != nil {
		return nil, false
	}
	return t, true
}
