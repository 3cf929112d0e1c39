package events

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The integrity checks a stored consent event must pass, named as a
// violation's Check (projector.Violation, audit.Problem) names them.
// CheckMessage runs the first four; CheckLink and CheckQuarantine need the
// consent's last applied event.
const (
	CheckDecode     = "decode"     // the payload is not a valid event
	CheckHeader     = "header"     // Consent-Event-Type is missing or disagrees with the payload
	CheckSubject    = "subject"    // the NATS subject is not the event's consent subject
	CheckHash       = "hash"       // the hash does not match the content
	CheckLink       = "link"       // prev_hash is not the hash of the consent's last applied event
	CheckQuarantine = "quarantine" // a consent.quarantined that does not resume the consent's last good state
)

// CheckNewer is CheckMessage's verdict for a message a newer ledger wrote
// (see NewerEventError): a reader must stop before it, not skip it.
const CheckNewer = "newer"

// NewerEventError is the error CheckMessage returns with CheckNewer. It
// matches ErrNewerSchema or ErrUnknownType.
type NewerEventError struct {
	Version int    // the payload's "v"
	Type    string // the payload's "type"
	Err     error  // ErrNewerSchema or ErrUnknownType
}

func (e *NewerEventError) Error() string {
	return fmt.Sprintf("%v: v=%d, type %q (this reader knows up to v=%d); upgrade to read it", e.Err, e.Version, e.Type, SchemaVersion)
}

// Unwrap returns ErrNewerSchema or ErrUnknownType.
func (e *NewerEventError) Unwrap() error { return e.Err }

// CheckMessage runs the integrity checks that need no state on a message
// stored on the NATS subject subj with the Consent-Event-Type header
// typeHeader: the payload decodes (Decode), the header names its type, it
// is on its own consent's subject, and its hash matches its content. It
// returns the event and "" when all pass; else the failed check (CheckDecode,
// CheckHeader, CheckSubject or CheckHash), why, and the event when it
// decoded. The projector and the ledger's write path apply this one rule.
//
// A message a newer ledger wrote gives CheckNewer and a *NewerEventError:
// a JSON object on a consent subject (ParseConsentSubject) whose "v" is
// newer than SchemaVersion or whose "type" this version does not know, and
// whose "hash" member matches its content (HashOf). Anything else that does
// not decode (`{"v":2}`, say, which has no hash) is CheckDecode: one stray
// message must not stop a reader.
//
// With owned, payload is handed over (see DecodeOwned): the event's
// strings share it.
func CheckMessage(subj, typeHeader string, payload []byte, owned bool) (*Event, string, error) {
	var ev *Event
	var err error
	if owned {
		ev, err = DecodeOwnedVerified(payload)
	} else if ev, err = Decode(payload); ev != nil {
		err = VerifyHash(payload, ev)
	}
	if ev == nil {
		if newer := newerEvent(subj, payload); newer != nil {
			return nil, CheckNewer, newer
		}
		return nil, CheckDecode, err
	}
	hashErr := err
	if typeHeader != string(ev.Type) {
		return ev, CheckHeader, fmt.Errorf("header %s is %q, the event's type is %q", HeaderEventType, typeHeader, ev.Type)
	}
	if k := ev.Key(); !k.IsNATSSubject(subj) {
		return ev, CheckSubject, fmt.Errorf("the event belongs on %s", k.NATSSubject())
	}
	if hashErr != nil {
		return ev, CheckHash, hashErr
	}
	return ev, "", nil
}

// newerEvent returns the *NewerEventError for a payload that did not
// decode when a newer ledger wrote it (see CheckMessage), else nil.
func newerEvent(subj string, payload []byte) *NewerEventError {
	var head struct {
		V    json.RawMessage `json:"v"`
		Type json.RawMessage `json:"type"`
		Hash json.RawMessage `json:"hash"`
	}
	if json.Unmarshal(payload, &head) != nil {
		return nil
	}
	var v int
	var t, hash string
	_ = json.Unmarshal(head.V, &v)
	_ = json.Unmarshal(head.Type, &t)
	var reason error
	switch {
	case v > SchemaVersion:
		reason = ErrNewerSchema
	case t != "" && !Type(t).Known():
		reason = ErrUnknownType
	default:
		return nil
	}
	if _, _, _, ok := ParseConsentSubject(subj); !ok {
		return nil
	}
	if json.Unmarshal(head.Hash, &hash) != nil || hash == "" {
		return nil
	}
	if sum, err := HashOf(payload); err != nil || sum != hash {
		return nil
	}
	return &NewerEventError{Version: v, Type: t, Err: reason}
}

// AppendNATSSubject appends k.NATSSubject() to dst, without allocating
// when dst has room (at most 177 bytes for valid names).
func (k Key) AppendNATSSubject(dst []byte) []byte {
	dst = append(dst, "consent.events."...)
	dst = append(dst, k.Tenant...)
	dst = append(dst, '.')
	dst = append(dst, k.Purpose...)
	dst = append(dst, '.')
	if k.SubjectKey != "" {
		return append(dst, k.SubjectKey...)
	}
	var key [32]byte
	appendSubjectKey(&key, k.Tenant, k.SubjectID)
	return append(dst, key[:]...)
}

// ParseConsentSubject splits a consent's NATS subject,
// consent.events.<tenant>.<purpose>.<subject key>, into its parts. ok is
// false unless tenant and purpose are valid names and the subject key is
// 32 lowercase hex digits.
func ParseConsentSubject(subj string) (tenant, purpose, subjectKey string, ok bool) {
	rest, found := strings.CutPrefix(subj, "consent.events.")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || ValidateName("tenant", parts[0]) != nil || ValidateName("purpose", parts[1]) != nil || !isSubjectKey(parts[2]) {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

func isSubjectKey(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
