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
const consentFormat byte = 1

var errBadValue = errors.New("projector: malformed consent value")

// appendConsent appends the stored form of c, without the key fields
// (tenant, subject, purpose), which are in the index key:
//
//	format byte, state, varint policy version, time updated_at,
//	byte has_expires [time expires_at], uvarint seq, event id, hash
//
// where strings are uvarint length + bytes and a time is varint Unix
// seconds + uvarint nanoseconds. Times are read back in UTC.
func appendConsent(dst []byte, c *events.Consent) []byte {
	dst = append(dst, consentFormat)
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
// It never panics on malformed input.
func decodeConsent(b []byte, k events.Key) (events.Consent, error) {
	d := decoder{b: b}
	if d.byte() != consentFormat {
		return events.Consent{}, errBadValue
	}
	c := events.Consent{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose}
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
	events.StateExpired, events.StateNone}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if d.err != nil || nsec >= uint64(time.Second) {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}
