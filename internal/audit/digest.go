package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"time"

	"github.com/consentledger/consent/events"
)

// IndexDigest summarizes the folded consents of an index at one stream
// sequence, so that two indexes (the live one and a fresh fold) can be
// compared without shipping either: equal digests at the same IndexSeq
// mean equal states, up to a SHA-256 collision.
type IndexDigest struct {
	IndexSeq uint64 `json:"index_seq"` // the last stream sequence folded in
	Consents uint64 `json:"consents"`  // consents with at least one applied event
	Digest   string `json:"digest"`    // StateDigest.Sum: 64 hex digits
}

// StateDigest is an order-independent digest of a set of consent states:
// the sum, modulo 2^256, of ConsentEntry over the states. Because it is a
// sum, a fold can keep it current as states change (Remove the old entry,
// Add the new one), and an index can compute it by scanning in any order.
//
// The sum is a consistency check between two folds of the same stream,
// not a commitment against a forger: someone who can choose many states
// could find two sets with one sum. The signed checkpoints (Chain) are
// the commitment.
//
// The zero value is the digest of no consents.
type StateDigest struct {
	sum [4]uint64 // little-endian limbs
	n   uint64
}

// Add adds one consent's entry.
func (d *StateDigest) Add(entry [32]byte) {
	var carry uint64
	for i := range 4 {
		d.sum[i], carry = bits.Add64(d.sum[i], limb(entry, i), carry)
	}
	d.n++
}

// Remove subtracts an entry added before.
func (d *StateDigest) Remove(entry [32]byte) {
	var borrow uint64
	for i := range 4 {
		d.sum[i], borrow = bits.Sub64(d.sum[i], limb(entry, i), borrow)
	}
	d.n--
}

// Count returns the number of entries in the digest.
func (d *StateDigest) Count() uint64 { return d.n }

// Sum returns the digest as 64 lowercase hex digits (big-endian).
func (d *StateDigest) Sum() string {
	var b [32]byte
	for i := range 4 {
		binary.BigEndian.PutUint64(b[24-8*i:], d.sum[i])
	}
	return hex.EncodeToString(b[:])
}

// limb returns the i-th 64-bit limb, least significant first, of an entry
// read as a big-endian 256-bit number.
func limb(e [32]byte, i int) uint64 { return binary.BigEndian.Uint64(e[24-8*i:]) }

// ConsentEntry returns the digest entry of one folded consent: SHA-256
// over a fixed encoding of its identity (tenant, subject key, purpose) and
// every field of its state, so that any difference between two states (of
// state, policy version, times, sequence, event id or hash) changes the
// entry. The person is named by the subject key (c.Key().Token(): the
// SubjectKey of a consent of v2 events, else events.SubjectKey of tenant
// and subject id), never the subject id, which the index does not hold;
// so a state of v1 events as a fold gives it (SubjectID set) and as the
// index gives it (SubjectKey set) have one entry. Times are compared as
// instants (Unix seconds and nanoseconds), whatever their location.
func ConsentEntry(c *events.Consent) [32]byte {
	b := make([]byte, 0, 256)
	b = append(b, "consent-state-v2"...)
	b = appendString(b, c.Tenant)
	b = appendString(b, c.Key().Token())
	b = appendString(b, c.Purpose)
	b = appendString(b, string(c.State))
	b = binary.BigEndian.AppendUint64(b, uint64(int64(c.PolicyVersion)))
	b = appendTime(b, &c.UpdatedAt)
	b = appendTime(b, c.ExpiresAt)
	b = binary.BigEndian.AppendUint64(b, c.Seq)
	b = appendString(b, c.EventID)
	b = appendString(b, c.Hash)
	return sha256.Sum256(b)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendTime writes 0 for a missing or zero time, else 1, Unix seconds
// and nanoseconds.
func appendTime(b []byte, t *time.Time) []byte {
	if t == nil || t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

// ScanFunc reads every consent of an index from one snapshot and returns
// the stream sequence the snapshot reflects (projector.Index.ScanConsents).
type ScanFunc func(ctx context.Context, fn func(c *events.Consent) error) (uint64, error)

// DigestIndex computes the IndexDigest of an index through its scan.
func DigestIndex(ctx context.Context, scan ScanFunc) (IndexDigest, error) {
	var d StateDigest
	seq, err := scan(ctx, func(c *events.Consent) error {
		d.Add(ConsentEntry(c))
		return nil
	})
	if err != nil {
		return IndexDigest{}, err
	}
	return IndexDigest{IndexSeq: seq, Consents: d.Count(), Digest: d.Sum()}, nil
}
