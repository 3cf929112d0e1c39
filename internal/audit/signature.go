package audit

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/consentledger/consent/events"
)

// Signature errors; the errors of VerifyCheckpoint and VerifyReceipt match
// one of them.
var (
	// ErrBadSignature: the signature does not match the signed content
	// and key: the content was changed after signing, or forged.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrUnknownKey: signed by a key that is not in the keyring.
	ErrUnknownKey = errors.New("signed by an unknown key")
)

// Signatures are ed25519 over the RFC 8785 canonical encoding of a JSON
// object (events.Canonical), as the event hash is over an event's: the
// same encoding an auditor already implements for hashes.

// signObject returns the hex signature of the canonical encoding of the
// JSON object raw, leaving out its top-level member omit (the signature
// itself, when it is carried inside).
func (s *Signer) signObject(raw []byte, omit ...string) (string, error) {
	c, err := events.Canonical(raw, omit...)
	if err != nil {
		return "", fmt.Errorf("canonical encoding: %w", err)
	}
	return s.sign(c), nil
}

// verifyObject checks sigHex, made by the key keyID, over the canonical
// encoding of raw without omit.
func verifyObject(keys Keyring, keyID, sigHex string, raw []byte, omit ...string) error {
	pub, ok := keys[keyID]
	if !ok {
		return fmt.Errorf("%w: key_id %q", ErrUnknownKey, keyID)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: want %d hex digits", ErrBadSignature, 2*ed25519.SignatureSize)
	}
	c, err := events.Canonical(raw, omit...)
	if err != nil {
		return fmt.Errorf("%w: canonical encoding: %v", ErrBadSignature, err)
	}
	if !ed25519.Verify(pub, c, sig) {
		return fmt.Errorf("%w (key_id %s)", ErrBadSignature, keyID)
	}
	return nil
}
