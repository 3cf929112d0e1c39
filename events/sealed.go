package events

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Schema version 2 seals the personal fields of a consent event: the
// person's id (subject), actor, evidence and reason are stored as one
// AES-256-GCM ciphertext under the person's data key, and everything else
// stays in the clear. The hash covers the stored bytes, so hashes, links
// and checkpoints verify without any key; destroying the data key erases
// the personal fields of every event sealed under it (crypto-shredding)
// and leaves the trail intact. See docs/privacy.md and docs/hashing.md.

// DataKeySize is the length of a data key: AES-256.
const DataKeySize = 32

// nonceSize is the length of the AES-GCM nonce that starts a sealed blob.
const nonceSize = 12

// DataKey is a person's data key: the personal fields of their v2 events
// are sealed under it. ID is stored in each event (key_id) to name the key
// that opens it; Key is DataKeySize bytes. SealWith and Open read Key
// during the call and keep no reference to it.
type DataKey struct {
	ID  string
	Key []byte
}

// ErrSealedOpen is matched by the errors Open returns when the sealed
// personal fields cannot be opened: another key (another id, or the right
// id with other bytes), a blob that was changed or moved from another
// event, or plaintext that is not the personal fields.
var ErrSealedOpen = errors.New("sealed personal fields cannot be opened")

// ErrKeyErased is the error a data key store returns (wrapped or as is)
// for a key that was destroyed: the person was erased, and the personal
// fields of their events stay sealed for good. Readers that render events
// (export, history) show such events as erased.
var ErrKeyErased = errors.New("data key destroyed: the person was erased")

// personal is the plaintext of a sealed blob: the personal fields of an
// event that are set.
type personal struct {
	Subject  string          `json:"subject"`
	Actor    string          `json:"actor,omitempty"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
	Reason   string          `json:"reason,omitempty"`
}

// IsSealed reports whether e is stored in schema version 2 with sealed
// personal fields (whether or not Open has filled them in).
func (e *Event) IsSealed() bool { return e.Sealed != "" }

// SealWith is Seal writing schema version 2: the personal fields of e
// (SubjectID, Actor, Evidence, Reason) are sealed under dk into e.Sealed,
// e.KeyID is set to dk.ID and e.V to SchemaVersion, and the payload holds
// them only as the sealed blob. e.SubjectKey must be set by the caller: the
// person's subject key, the token of the NATS subject the event goes on.
// After the call e is the event as stored and opened: its personal fields
// stay set (Evidence in canonical form), as Open gives them back.
//
// The blob is base64 (standard, padded) of a random 12-byte nonce followed
// by the AES-256-GCM ciphertext of the canonical JSON (Canonical) of
// {"subject", "actor", "evidence", "reason"} (those that are set), with
// SealedAAD(e.ID, e.SubjectKey) as additional data. A consent.erased
// (which has no personal fields) is written by Seal, not SealWith.
//
// Errors: a *FieldError naming subject_key (missing or not 32 lowercase
// hex digits), subject (missing), key_id (dk.ID empty) or type
// (consent.erased); an error when dk.Key is not DataKeySize bytes; Seal's
// errors. e is unchanged on error.
func (e *Event) SealWith(dk DataKey) ([]byte, error) {
	return e.sealWith(dk, rand.Reader)
}

// sealWith is SealWith reading the nonce from nonces (tests give a fixed
// one to get reproducible bytes).
func (e *Event) sealWith(dk DataKey, nonces io.Reader) ([]byte, error) {
	switch {
	case e.Type == TypeErased:
		return nil, &FieldError{Field: "type", Problem: "consent.erased has no personal fields: write it with Seal"}
	case e.SubjectKey == "":
		return nil, &FieldError{Field: "subject_key", Problem: "is required to seal an event: the person's subject key"}
	case !isSubjectKey(e.SubjectKey):
		return nil, &FieldError{Field: "subject_key", Problem: "must be 32 lowercase hex digits"}
	case e.SubjectID == "":
		return nil, &FieldError{Field: "subject", Problem: "is required"}
	case dk.ID == "":
		return nil, &FieldError{Field: "key_id", Problem: "is required: the data key's id"}
	}
	aead, err := newAEAD(dk)
	if err != nil {
		return nil, err
	}
	plain, evidence, err := e.personalPlaintext()
	if err != nil {
		return nil, err
	}
	blob := make([]byte, nonceSize, nonceSize+len(plain)+aead.Overhead())
	if _, err := io.ReadFull(nonces, blob); err != nil {
		return nil, fmt.Errorf("seal personal fields: nonce: %w", err)
	}
	blob = aead.Seal(blob, blob[:nonceSize], plain, SealedAAD(e.ID, e.SubjectKey))

	stored := *e
	stored.V, stored.KeyID, stored.Sealed = SchemaVersion, dk.ID, base64.StdEncoding.EncodeToString(blob)
	payload, err := stored.sealStored()
	if err != nil {
		return nil, err
	}
	stored.Evidence = evidence
	*e = stored
	return payload, nil
}

// personalPlaintext returns the canonical JSON of e's personal fields that
// are set, and the canonical form of its evidence (nil when none). It
// writes it directly, as sealFast writes an event, and takes the general
// path (encoding/json, then Canonical) for strings that are not valid
// UTF-8, which encoding/json rewrites.
func (e *Event) personalPlaintext() (plain, evidence []byte, err error) {
	if len(e.Evidence) > 0 {
		if evidence, err = canonicalMember(e.Evidence); err != nil {
			return nil, nil, &FieldError{Field: "evidence", Problem: "must be a JSON object (" + err.Error() + ")"}
		}
	}
	if utf8.ValidString(e.SubjectID) && utf8.ValidString(e.Actor) && utf8.ValidString(e.Reason) {
		w := sealWriter{b: make([]byte, 0, 64+len(e.SubjectID)+len(e.Actor)+len(evidence)+len(e.Reason))}
		w.b = append(w.b, '{')
		w.optString("actor", e.Actor)
		if evidence != nil {
			w.name("evidence")
			w.b = append(w.b, evidence...)
		}
		w.optString("reason", e.Reason)
		w.string("subject", e.SubjectID)
		return append(w.b, '}'), evidence, nil
	}
	raw, err := json.Marshal(personal{Subject: e.SubjectID, Actor: e.Actor, Evidence: evidence, Reason: e.Reason})
	if err != nil {
		return nil, nil, fmt.Errorf("encode personal fields: %w", err)
	}
	if plain, err = Canonical(raw); err != nil {
		return nil, nil, fmt.Errorf("encode personal fields: %w", err)
	}
	return plain, evidence, nil
}

// sealStored is Seal of a v2 event: its stored members only.
func (e *Event) sealStored() ([]byte, error) {
	if e.Type != TypeErased && e.Sealed == "" {
		return nil, &FieldError{Field: "sealed", Problem: "is required in schema version 2: write new events with SealWith"}
	}
	stored := *e
	stored.clearPersonal()
	if err := stored.checkSchema(); err != nil {
		return nil, err
	}
	payload, err := stored.sealAsIs()
	if err != nil {
		return nil, err
	}
	e.Hash = stored.Hash
	return payload, nil
}

// clearPersonal empties the personal fields of e, but for the reason of a
// consent.erased, which is the operator's and stored in the clear.
func (e *Event) clearPersonal() {
	e.SubjectID, e.Actor, e.Evidence = "", "", nil
	if e.Type != TypeErased {
		e.Reason = ""
	}
}

// SealedAAD returns the additional data a sealed blob is authenticated
// with: the canonical JSON of {"id": id, "subject_key": subjectKey}. It
// binds the blob to its event, so a blob copied into another event (or
// onto another person's subject key) does not open.
func SealedAAD(id, subjectKey string) []byte {
	b := make([]byte, 0, len(id)+len(subjectKey)+len(`{"id":"","subject_key":""}`))
	b = append(b, `{"id":`...)
	b = appendCanonicalString(b, id)
	b = append(b, `,"subject_key":`...)
	b = appendCanonicalString(b, subjectKey)
	return append(b, '}')
}

// Open decrypts the sealed personal fields of a v2 event with dk, the data
// key named by e.KeyID, and sets e.SubjectID, Actor, Evidence and Reason.
// It returns nil and changes nothing for an event with nothing sealed (v1,
// consent.erased). It returns an error matching ErrSealedOpen when dk is
// not the key the event was sealed under (dk.ID differs from e.KeyID, or
// the bytes differ), when the blob or the event's id or subject_key was
// changed, or when the plaintext is not valid personal fields; an error
// when dk.Key is not DataKeySize bytes. e is unchanged on error. An event
// whose key was destroyed simply cannot be opened: it stays sealed.
func (e *Event) Open(dk DataKey) error {
	if e.Sealed == "" {
		return nil
	}
	if dk.ID != e.KeyID {
		return fmt.Errorf("%w: the event is sealed under key %q, not %q", ErrSealedOpen, e.KeyID, dk.ID)
	}
	aead, err := newAEAD(dk)
	if err != nil {
		return err
	}
	blob, err := base64.StdEncoding.DecodeString(e.Sealed)
	if err != nil || len(blob) < nonceSize+aead.Overhead() {
		return fmt.Errorf("%w: sealed is not base64 of a nonce and a ciphertext", ErrSealedOpen)
	}
	plain, err := aead.Open(nil, blob[:nonceSize], blob[nonceSize:], SealedAAD(e.ID, e.SubjectKey))
	if err != nil {
		return fmt.Errorf("%w: authentication failed (another key, or the blob, id or subject_key was changed)", ErrSealedOpen)
	}
	var p personal
	if err := DecodeStrict(plain, &p); err != nil {
		return fmt.Errorf("%w: plaintext: %v", ErrSealedOpen, err)
	}
	if err := ValidateSubjectID(p.Subject); err != nil {
		return fmt.Errorf("%w: plaintext: %v", ErrSealedOpen, err)
	}
	if string(p.Evidence) == "null" {
		p.Evidence = nil
	}
	e.SubjectID, e.Actor, e.Evidence, e.Reason = p.Subject, p.Actor, p.Evidence, p.Reason
	return nil
}

// newAEAD returns AES-256-GCM under dk.
func newAEAD(dk DataKey) (cipher.AEAD, error) {
	if len(dk.Key) != DataKeySize {
		return nil, fmt.Errorf("data key %q is %d bytes, want %d", dk.ID, len(dk.Key), DataKeySize)
	}
	block, err := aes.NewCipher(dk.Key)
	if err != nil {
		return nil, fmt.Errorf("data key %q: %w", dk.ID, err)
	}
	return cipher.NewGCM(block)
}

// checkSchema checks the members that depend on the schema version: v1
// has its personal fields in the clear and none of v2's; v2 has a
// subject_key and, but for consent.erased, key_id and sealed instead of
// the personal fields; consent.erased is v2 only and has a reason, no
// actor, evidence, key_id or sealed.
func (e *Event) checkSchema() error {
	only2 := func(field string) error {
		return &FieldError{Field: field, Problem: "is only allowed in schema version 2"}
	}
	sealedHere := func(field string) error {
		return &FieldError{Field: field, Problem: "must not be in the clear in schema version 2 (it is sealed)"}
	}
	if e.V < 2 {
		switch {
		case e.Type == TypeErased:
			return &FieldError{Field: "v", Problem: "consent.erased is schema version 2"}
		case e.SubjectKey != "":
			return only2("subject_key")
		case e.KeyID != "":
			return only2("key_id")
		case e.Sealed != "":
			return only2("sealed")
		}
		return nil
	}
	switch {
	case e.SubjectKey == "":
		return &FieldError{Field: "subject_key", Problem: "is required"}
	case e.SubjectID != "":
		return sealedHere("subject")
	case e.Actor != "":
		return sealedHere("actor")
	case len(e.Evidence) > 0:
		return sealedHere("evidence")
	}
	if e.Type == TypeErased {
		switch {
		case e.KeyID != "":
			return &FieldError{Field: "key_id", Problem: "is not allowed on consent.erased"}
		case e.Sealed != "":
			return &FieldError{Field: "sealed", Problem: "is not allowed on consent.erased"}
		case e.Reason == "":
			return &FieldError{Field: "reason", Problem: "is required"}
		}
		return nil
	}
	switch {
	case e.Reason != "":
		return sealedHere("reason")
	case e.KeyID == "":
		return &FieldError{Field: "key_id", Problem: "is required"}
	case e.Sealed == "":
		return &FieldError{Field: "sealed", Problem: "is required"}
	}
	if !isSealedBlob(e.Sealed) {
		return &FieldError{Field: "sealed", Problem: "must be base64 (standard, padded) of a 12-byte nonce and an AES-GCM ciphertext"}
	}
	return nil
}

// isSealedBlob reports whether s looks like a sealed blob: standard padded
// base64 of at least a nonce and a GCM tag. It does not decode s (Open
// does): decoding a stream must not allocate for it.
func isSealedBlob(s string) bool {
	if len(s) < base64.StdEncoding.EncodedLen(nonceSize+16) || len(s)%4 != 0 {
		return false
	}
	body := strings.TrimSuffix(strings.TrimSuffix(s, "="), "=")
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
