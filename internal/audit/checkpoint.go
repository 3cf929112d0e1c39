package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/consentledger/consent/events"
)

// CheckpointVersion is the version of the checkpoint format this code
// writes and the newest it reads.
const CheckpointVersion = 1

// Checkpoint is a signed statement that the stream's messages 1..UpToSeq
// hash to Chain (see Chain). It is published on events.CheckpointSubject,
// one JSON object, canonical (RFC 8785), the signature inside:
//
//	{"chain":"<64 hex>","key_id":"<16 hex>","signature":"<128 hex>",
//	 "time":"2026-03-02T08:00:00Z","up_to_seq":1234,"v":1}
//
// The signature is ed25519 over the canonical encoding of the object
// without its "signature" member. Because the chain covers every byte of
// every message up to UpToSeq, a history changed after a checkpoint (an
// event edited, removed or inserted, even with every event hash and
// prev_hash recomputed) no longer hashes to the checkpoint's chain, and
// the checkpoint cannot be re-signed without the private key.
type Checkpoint struct {
	V         int       `json:"v"`
	UpToSeq   uint64    `json:"up_to_seq"` // commits to messages 1..UpToSeq
	Chain     string    `json:"chain"`     // H(UpToSeq), 64 hex digits
	Time      time.Time `json:"time"`      // when it was made, by the signer's clock
	KeyID     string    `json:"key_id"`    // KeyID of the signing key
	Signature string    `json:"signature"` // hex ed25519 signature
}

// NewCheckpoint returns the signed checkpoint of chain c at time now, and
// the bytes to publish.
func NewCheckpoint(s *Signer, c *Chain, now time.Time) (*Checkpoint, []byte, error) {
	cp := &Checkpoint{
		V:       CheckpointVersion,
		UpToSeq: c.Seq,
		Chain:   c.HeadHex(),
		Time:    now.UTC(),
		KeyID:   s.KeyID(),
	}
	raw, err := json.Marshal(cp)
	if err != nil {
		return nil, nil, err
	}
	if cp.Signature, err = s.signObject(raw, "signature"); err != nil {
		return nil, nil, err
	}
	if raw, err = json.Marshal(cp); err != nil {
		return nil, nil, err
	}
	payload, err := events.Canonical(raw)
	if err != nil {
		return nil, nil, err
	}
	return cp, payload, nil
}

// ErrBadCheckpoint is matched by the errors DecodeCheckpoint returns.
var ErrBadCheckpoint = errors.New("malformed checkpoint")

// DecodeCheckpoint parses a checkpoint payload strictly (unknown or
// duplicate members, a missing field, a newer version are errors matching
// ErrBadCheckpoint). It does not check the signature; see
// VerifyCheckpoint.
func DecodeCheckpoint(payload []byte) (*Checkpoint, error) {
	var cp Checkpoint
	if err := events.DecodeStrict(payload, &cp); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	var problem string
	switch {
	case cp.V != CheckpointVersion:
		problem = fmt.Sprintf("v is %d, this reader knows %d", cp.V, CheckpointVersion)
	case cp.UpToSeq == 0:
		problem = "up_to_seq is missing"
	case len(cp.Chain) != 64:
		problem = "chain is not 64 hex digits"
	case cp.Time.IsZero():
		problem = "time is missing"
	case cp.KeyID == "":
		problem = "key_id is missing"
	case cp.Signature == "":
		problem = "signature is missing"
	}
	if problem != "" {
		return nil, fmt.Errorf("%w: %s", ErrBadCheckpoint, problem)
	}
	return &cp, nil
}

// VerifyCheckpoint decodes a checkpoint payload and checks its signature
// against keys. Errors match ErrBadCheckpoint, ErrUnknownKey or
// ErrBadSignature. It does not check the chain against the stream; Verify
// does.
func VerifyCheckpoint(payload []byte, keys Keyring) (*Checkpoint, error) {
	cp, err := DecodeCheckpoint(payload)
	if err != nil {
		return nil, err
	}
	if err := verifyObject(keys, cp.KeyID, cp.Signature, payload, "signature"); err != nil {
		return cp, err
	}
	return cp, nil
}
