package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
)

// ErrChainOrder is matched by the error Chain.Add returns for a message
// that is not the next sequence.
var ErrChainOrder = errors.New("message out of chain order")

// Chain is the running hash over every message of the stream in stream
// order, whatever its subject (events, checkpoints, purposes):
//
//	H(0) = 32 zero bytes
//	H(n) = SHA-256( H(n-1) || uint64be(n) || SHA-256(subject) || SHA-256(payload) )
//
// where n is the stream sequence, subject the message's NATS subject and
// payload its stored bytes. H(n) commits to messages 1..n: their order,
// their subjects and every byte of their payloads. Headers are left out
// (Nats-Msg-Id and Consent-Event-Type repeat what the payload says or
// only serve idempotency).
//
// The zero Chain is the empty chain, ready to Add sequence 1.
type Chain struct {
	Seq  uint64   // last sequence added; 0 for the empty chain
	Head [32]byte // H(Seq)

	h   hash.Hash
	buf [32 + 8 + 32 + 32]byte
}

// ChainAt returns a chain that continues from a known value: head is
// H(seq) as a checkpoint states it (64 hex digits).
func ChainAt(seq uint64, head string) (*Chain, error) {
	c := &Chain{Seq: seq}
	if err := decodeHex32(head, &c.Head); err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	return c, nil
}

// Add folds the message stored at seq into the chain. seq must be
// c.Seq+1; otherwise it returns an error matching ErrChainOrder and leaves
// the chain as it was.
func (c *Chain) Add(seq uint64, natsSubject string, payload []byte) error {
	if c.h == nil {
		c.h = sha256.New()
	}
	var subjSum, dataSum [32]byte
	c.h.Reset()
	c.h.Write([]byte(natsSubject))
	c.h.Sum(subjSum[:0])
	c.h.Reset()
	c.h.Write(payload)
	c.h.Sum(dataSum[:0])
	return c.addSums(seq, &subjSum, &dataSum)
}

// addSums is Add with the SHA-256 of the subject and of the payload
// already computed (by Verify's workers).
func (c *Chain) addSums(seq uint64, subjSum, dataSum *[32]byte) error {
	if seq != c.Seq+1 {
		return fmt.Errorf("%w: the chain is at seq %d, got seq %d", ErrChainOrder, c.Seq, seq)
	}
	b := c.buf[:0]
	b = append(b, c.Head[:]...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, subjSum[:]...)
	b = append(b, dataSum[:]...)
	c.Head = sha256.Sum256(b)
	c.Seq = seq
	return nil
}

// HeadHex returns H(Seq) as 64 lowercase hex digits.
func (c *Chain) HeadHex() string { return hex.EncodeToString(c.Head[:]) }

func decodeHex32(s string, dst *[32]byte) error {
	if len(s) != 64 {
		return fmt.Errorf("want 64 hex digits, got %d characters", len(s))
	}
	if _, err := hex.Decode(dst[:], []byte(s)); err != nil {
		return fmt.Errorf("want 64 hex digits: %v", err)
	}
	return nil
}
