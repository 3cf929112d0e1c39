package projector

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/consentledger/consent/events"
)

// consentFormat is the first byte of every stored consent value. A value
// this code cannot read makes the read fail instead of being misread.
const consentFormat byte = 2

var errBadValue = errors.New("projector: malformed consent value")

// appendConsent appends the stored form of c, without the key fields
// (tenant, subject key, purpose), which are in the index key, and without
// the subject id, which the index never holds:
//
//	format byte, byte keyed, state, varint policy version, time updated_at,
//	byte has_expires [time expires_at], uvarint seq, event id, hash
//
// where keyed is 1 when c has a SubjectKey (its last event is of schema
// v2, which names the person by subject key only) and 0 otherwise, strings
// are uvarint length + bytes and a time is varint Unix seconds + uvarint
// nanoseconds. Times are read back in UTC.
func appendConsent(dst []byte, c *events.Consent) []byte {
	dst = append(dst, consentFormat)
	if c.SubjectKey != "" {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	dst = appendString(dst, string(c.State))
	dst = binary.AppendVarint(dst, int64(c.PolicyVersion))
	dst = appendTime(dst, c.UpdatedAt)
	if c.ExpiresAt != nil {
		dst = append(dst, 1)
		dst = appendTime(dst, *c.ExpiresAt)
	} else {
		dst = append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, c.Seq)
	dst = appendString(dst, c.EventID)
	return appendString(dst, c.Hash)
}

// decodeConsent reads a value written by appendConsent for the consent k.
// The consent's SubjectID is k.SubjectID: the id the caller looked it up
// by, "" for a key read from the index (decodeConsentKey). Its SubjectKey
// is k.Token() when the value is keyed (a consent of v2 events) or when k
// has no SubjectID (so that a consent read by a scan still names its
// person), else "": a consent of v1 events looked up by id reads as it was
// folded. It never panics on malformed input.
func decodeConsent(b []byte, k events.Key) (events.Consent, error) {
	d := decoder{b: b}
	if d.byte() != consentFormat {
		return events.Consent{}, errBadValue
	}
	c := events.Consent{Tenant: k.Tenant, Purpose: k.Purpose}
	switch keyed := d.byte(); keyed {
	case 0, 1:
		identify(&c, keyed == 1, k)
	default:
		d.err = errBadValue
	}
	c.State = d.state()
	pv := d.varint()
	if pv < math.MinInt32 || pv > math.MaxInt32 {
		d.err = errBadValue
	}
	c.PolicyVersion = int(pv)
	c.UpdatedAt = d.time()
	switch d.byte() {
	case 0:
	case 1:
		t := d.time()
		c.ExpiresAt = &t
	default:
		d.err = errBadValue
	}
	c.Seq = d.uvarint()
	c.EventID = d.string()
	c.Hash = d.string()
	if d.err != nil || len(d.b) != 0 {
		return events.Consent{}, errBadValue
	}
	return c, nil
}

// identify sets the person of c, a state of the consent k read from the
// index: SubjectID is k.SubjectID (the id the caller looked it up by, ""
// when the caller had none), and SubjectKey is k.Token() when keyed (a
// consent of v2 events) or when k has no SubjectID, else "" (a consent of
// v1 events reads as it was folded).
func identify(c *events.Consent, keyed bool, k events.Key) {
	c.SubjectID, c.SubjectKey = k.SubjectID, ""
	if keyed || k.SubjectID == "" {
		c.SubjectKey = k.Token()
	}
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = binary.AppendVarint(dst, t.Unix())
	return binary.AppendUvarint(dst, uint64(t.Nanosecond()))
}

// decoder reads the fields of a value front to back; the first problem is
// kept in err and every later read returns a zero value.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err, d.b = errBadValue, nil }

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// state reads a state, without allocating for the known ones.
func (d *decoder) state() events.State {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	b := d.b[:n]
	d.b = d.b[n:]
	for _, s := range knownStates {
		if string(b) == string(s) {
			return s
		}
	}
	return events.State(b)
}

var knownStates = []events.State{events.StateGranted, events.StateRequested, events.StateDenied, events.StateRevoked,
	events.StateExpired, events.StateErased, events.StateNone}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if d.err != nil || nsec >= uint64(time.Second) {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}
