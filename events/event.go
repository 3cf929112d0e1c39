package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
	"unsafe"
)

// SchemaVersion is the newest version of the event schema this code reads,
// and the version SealWith writes: personal fields sealed (see
// SealWith). Decode reads every version from 1 to SchemaVersion.
const SchemaVersion = 2

// SchemaVersionClear is schema version 1, personal fields in the clear:
// the version Decide, DecideExpiry and DecideQuarantine give their events,
// which Seal writes as they are. SealWith turns such an event into a
// SchemaVersion one.
const SchemaVersionClear = 1

// Type is the persisted name of an event type. Names are written out, never
// derived from Go identifiers, and are added but never renamed.
type Type string

// The event types of the audit trail.
const (
	TypeRequested Type = "consent.requested"
	TypeGranted   Type = "consent.granted"
	TypeDenied    Type = "consent.denied"
	TypeRevoked   Type = "consent.revoked"
)

// Known reports whether t is an event type this version understands.
func (t Type) Known() bool {
	switch t {
	case TypeRequested, TypeGranted, TypeDenied, TypeRevoked, TypeExpired, TypeQuarantined, TypeErased:
		return true
	}
	return false
}

// Header names carried by every event message.
const (
	HeaderMsgID     = "Nats-Msg-Id"
	HeaderEventType = "Consent-Event-Type"
)

// Event is one entry of the audit trail. Its JSON encoding is the message
// payload on consent.events.<tenant>.<purpose>.<subject key>.
type Event struct {
	V             int             `json:"v"`
	ID            string          `json:"id"`
	Type          Type            `json:"type"`
	Tenant        string          `json:"tenant"`
	SubjectID     string          `json:"subject,omitempty"` // always set in v1; sealed in v2
	Purpose       string          `json:"purpose"`
	OccurredAt    time.Time       `json:"occurred_at"`
	RecordedAt    time.Time       `json:"recorded_at"`
	PolicyVersion int             `json:"policy_version"`
	Description   string          `json:"description,omitempty"`
	ExpiresAt     *time.Time      `json:"expires_at,omitempty"`
	Actor         string          `json:"actor,omitempty"`
	RecordedBy    string          `json:"recorded_by,omitempty"` // the authenticated user; see Command.RecordedBy
	Method        string          `json:"method,omitempty"`
	Evidence      json.RawMessage `json:"evidence,omitempty"`
	Reason        string          `json:"reason,omitempty"`
	// State and QuarantinedSeq are set on consent.quarantined only (see
	// DecideQuarantine): the state the consent resumes and the stream
	// sequence of the message the quarantine explains.
	State          State  `json:"state,omitempty"`
	QuarantinedSeq uint64 `json:"quarantined_seq,omitempty"`
	// SubjectKey, KeyID and Sealed are set in schema version 2 (see
	// SealWith): the subject key (the NATS subject token), the id of the
	// data key the personal fields are sealed under, and the sealed
	// personal fields. consent.erased carries SubjectKey only.
	SubjectKey string `json:"subject_key,omitempty"`
	KeyID      string `json:"key_id,omitempty"`
	Sealed     string `json:"sealed,omitempty"`
	PrevHash   string `json:"prev_hash"`
	Hash       string `json:"hash,omitempty"`
}

// Key returns the consent this event belongs to. Its SubjectKey is set for
// a schema version 2 event (whose SubjectID is empty until Open).
func (e *Event) Key() Key {
	return Key{Tenant: e.Tenant, SubjectID: e.SubjectID, Purpose: e.Purpose, SubjectKey: e.SubjectKey}
}

// Seal computes the event's hash over its canonical encoding (with PrevHash
// already set), stores it in e.Hash and returns the canonical encoding of
// the whole event, hash included: the bytes to publish. It also replaces
// e.Evidence by its canonical form, so that e is the event as stored
// (events.Decode of the bytes gives the same event).
//
// Seal writes the event in the schema version e.V says and encrypts
// nothing: a v1 event (SchemaVersionClear, as Decide gives it) with its
// personal fields in the clear; a v2 event as stored, that is with
// SubjectKey, KeyID and Sealed and without the personal fields (which stay
// in e, as Open gives them back), so that resealing a decoded or opened v2
// event gives its stored bytes. A v2 event other than consent.erased
// without Sealed is refused with a *FieldError naming "sealed": SealWith
// writes new v2 events. So is a v1 event with v2's members (SubjectKey,
// KeyID, Sealed, or type consent.erased): Seal never writes what Decode
// refuses for its schema version. An event whose V is newer than
// SchemaVersion (a test playing a newer ledger) is written with every
// member as it is.
func (e *Event) Seal() ([]byte, error) {
	switch {
	case e.V > SchemaVersion:
		// A version this code does not know the rules of (only tests
		// write one, to play a newer ledger): every member as it is.
		return e.sealAsIs()
	case e.V >= 2:
		return e.sealStored()
	}
	if err := e.checkSchema(); err != nil {
		return nil, err // v2's members on a v1 event
	}
	return e.sealAsIs()
}

// sealAsIs is Seal of e with every member it has.
func (e *Event) sealAsIs() ([]byte, error) {
	if payload, ok := e.sealFast(); ok {
		return payload, nil
	}
	return e.sealGeneral()
}

// sealGeneral is Seal through encoding/json and Canonical: the definition
// that sealFast is held to.
func (e *Event) sealGeneral() ([]byte, error) {
	e.Hash = ""
	if len(e.Evidence) > 0 && utf8.Valid(e.Evidence) {
		// As stored; evidence that cannot be canonicalized is left for
		// the encoding below to refuse.
		if evidence, err := canonicalMember(e.Evidence); err == nil {
			e.Evidence = evidence
		}
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	sum, err := HashOf(raw)
	if err != nil {
		return nil, err
	}
	e.Hash = sum
	raw, err = json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return Canonical(raw)
}

// HashOf returns the hash an event's payload should carry: lowercase hex
// SHA-256 over the canonical encoding (RFC 8785) of the payload without its
// "hash" member.
func HashOf(payload []byte) (string, error) {
	var buf [2 * sha256.Size]byte
	sum, err := appendHash(buf[:0], payload)
	return string(sum), err
}

// appendHash appends HashOf(payload) to dst.
func appendHash(dst, payload []byte) ([]byte, error) {
	if sum, ok := appendCanonicalHash(dst, payload); ok {
		return sum, nil // already canonical, as Seal writes it
	}
	c, err := Canonical(payload, "hash")
	if err != nil {
		return dst, fmt.Errorf("canonical encoding: %w", err)
	}
	sum := sha256.Sum256(c)
	return hex.AppendEncode(dst, sum[:]), nil
}

// ErrBadHash is matched by errors returned from VerifyHash.
var ErrBadHash = errors.New("event hash does not match its content")

// VerifyHash recomputes the hash of a payload and compares it with the
// decoded event's Hash. It returns an error matching ErrBadHash when they
// differ.
func VerifyHash(payload []byte, e *Event) error {
	var buf [2 * sha256.Size]byte
	sum, err := appendHash(buf[:0], payload)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadHash, err)
	}
	return checkSum(e, sum)
}

// checkSum compares the hex hash of an event's content with its Hash.
func checkSum(e *Event, sum []byte) error {
	if string(sum) != e.Hash {
		return fmt.Errorf("%w: recorded %q, computed %q", ErrBadHash, e.Hash, string(sum))
	}
	return nil
}

// ErrNewerSchema is returned by Decode for an event whose "v" is newer than
// SchemaVersion: a reader must stop rather than misread it.
var ErrNewerSchema = errors.New("event schema is newer than this reader")

// ErrUnknownType is returned by Decode for an event type this version does
// not know.
var ErrUnknownType = errors.New("unknown event type")

// Decode parses an event payload strictly: unknown fields, duplicate
// members, a missing or invalid field give a *FieldError; a newer schema version gives an error
// matching ErrNewerSchema; an unknown type one matching ErrUnknownType.
// Decode does not check the hash; see VerifyHash.
func Decode(payload []byte) (*Event, error) {
	e, _, err := decodeEvent(payload, string(payload))
	return e, err
}

// DecodeOwned is Decode for a payload handed over with the call: the
// event's strings share payload instead of a copy of it, so nothing may
// write to payload afterwards. A consumed message's data qualifies:
// nats.go gives every delivered message a buffer of its own.
func DecodeOwned(payload []byte) (*Event, error) {
	e, _, err := decodeEvent(payload, ownedText(payload))
	return e, err
}

// DecodeOwnedVerified is DecodeOwned and then VerifyHash, scanning a
// payload in canonical form (as Seal writes it) once for both. It returns
// DecodeOwned's error and no event when the payload does not decode, and
// the event with VerifyHash's error (matching ErrBadHash) when only its
// hash does not match its content.
func DecodeOwnedVerified(payload []byte) (*Event, error) {
	e, hash, err := decodeEvent(payload, ownedText(payload))
	if err != nil {
		return nil, err
	}
	var buf [2 * sha256.Size]byte
	var sum []byte
	if hash.canonical {
		before, after := hash.cut(payload)
		sum = appendSum(buf[:0], before, after)
	} else if sum, err = appendHash(buf[:0], payload); err != nil {
		return e, fmt.Errorf("%w: %v", ErrBadHash, err)
	}
	return e, checkSum(e, sum)
}

// ownedText is payload as a string sharing its bytes.
func ownedText(payload []byte) string {
	return unsafe.String(unsafe.SliceData(payload), len(payload))
}

// hashMember is where decodeEvent found the "hash" member of a payload in
// canonical form; canonical is false for any other payload.
type hashMember struct {
	memberSpan
	canonical bool
}

// decodeEvent is Decode with text holding payload's bytes.
func decodeEvent(payload []byte, text string) (*Event, hashMember, error) {
	e, span, canonical := decodeCanonicalEvent(payload, text) // as Seal writes it
	hash := hashMember{span, canonical}
	if !canonical {
		e = new(Event)
		if err := DecodeStrict(payload, e); err != nil {
			return nil, hash, err
		}
	}
	switch {
	case e.V > SchemaVersion:
		return nil, hash, fmt.Errorf("%w: v=%d, this reader knows up to %d", ErrNewerSchema, e.V, SchemaVersion)
	case e.V < 1:
		return nil, hash, &FieldError{Field: "v", Problem: "must be at least 1"}
	case e.Type == "":
		return nil, hash, &FieldError{Field: "type", Problem: "is required"}
	case !e.Type.Known():
		return nil, hash, fmt.Errorf("%w: %q", ErrUnknownType, e.Type)
	case e.ID == "":
		return nil, hash, &FieldError{Field: "id", Problem: "is required"}
	case e.OccurredAt.IsZero():
		return nil, hash, &FieldError{Field: "occurred_at", Problem: "is required"}
	case e.RecordedAt.IsZero():
		return nil, hash, &FieldError{Field: "recorded_at", Problem: "is required"}
	case e.PolicyVersion < 1 || e.PolicyVersion > MaxPolicyVersion:
		return nil, hash, CheckPolicyVersion("policy_version", e.PolicyVersion)
	case e.Hash == "":
		return nil, hash, &FieldError{Field: "hash", Problem: "is required"}
	}
	if err := e.checkSchema(); err != nil {
		return nil, hash, err
	}
	if err := e.Key().Validate(); err != nil {
		return nil, hash, err
	}
	if err := e.checkQuarantine(); err != nil {
		return nil, hash, err
	}
	// A canonical payload's evidence is a canonical object already, no
	// deeper than MaxEvidenceDepth (the payload is within
	// MaxCanonicalDepth).
	if len(e.Evidence) > 0 && !canonical {
		c := canonicalizer{data: e.Evidence, maxDepth: MaxEvidenceDepth}
		if _, err := c.topObject(); err != nil {
			return nil, hash, &FieldError{Field: "evidence", Problem: "must be a JSON object nested at most 63 levels deep"}
		}
	}
	return e, hash, nil
}
