package events

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// DefaultTenant is the tenant used when a request names none.
const DefaultTenant = "default"

// StreamSubjects is the subject filter the CONSENT stream captures.
const StreamSubjects = "consent.events.>"

// Limits on the sizes of fields, in bytes.
const (
	MaxSubjectIDLen      = 256
	MaxIdempotencyKeyLen = 128
	MaxEvidenceLen       = 4 << 10
	MaxDescriptionLen    = 4 << 10
	MaxReasonLen         = 1 << 10
	MaxNameLen           = 128 // actor and method
	MaxRecordedByLen     = 200 // recorded_by: "<user>@<tenant token>"
)

// ValidateName checks a tenant or purpose against ^[a-z0-9][a-z0-9_-]{0,63}$.
// It returns a *FieldError naming field on failure.
func ValidateName(field, v string) error {
	if v == "" {
		return &FieldError{Field: field, Problem: "is required"}
	}
	if len(v) > 64 {
		return &FieldError{Field: field, Problem: "must be at most 64 characters"}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return &FieldError{Field: field, Problem: fmt.Sprintf("%q must match ^[a-z0-9][a-z0-9_-]{0,63}$", v)}
		}
	}
	return nil
}

// ValidateSubjectID checks a stored data subject id against the rule every
// event of schema v1 meets: valid UTF-8, 1 to 256 bytes, no control
// characters. Dots, '*', '>', spaces and any other printable character are
// legal, because the id never appears in a NATS subject. Decode holds
// stored events to this rule only, so events written before subject ids
// were normalised still read; what a caller sends is held to the stricter
// NormalizeSubjectID. It returns a *FieldError naming "subject".
func ValidateSubjectID(v string) error {
	switch {
	case v == "":
		return &FieldError{Field: "subject", Problem: "is required"}
	case len(v) > MaxSubjectIDLen:
		return &FieldError{Field: "subject", Problem: fmt.Sprintf("must be at most %d bytes, got %d", MaxSubjectIDLen, len(v))}
	case !utf8.ValidString(v):
		return &FieldError{Field: "subject", Problem: "must be valid UTF-8"}
	case hasControl(v):
		return &FieldError{Field: "subject", Problem: "must not contain control characters"}
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// NormalizeSubjectID returns the form of a data subject id the ledger
// records and looks up: the id in Unicode Normalization Form C (NFC), so
// that "café" typed with a precomposed é and with e plus a combining accent
// is one person. Every endpoint that takes a subject id applies it (through
// the Validate methods of the commands and queries), and the subject key is
// computed from its result.
//
// It refuses, with a *FieldError naming "subject": an empty id; invalid
// UTF-8; U+FFFD (the replacement character, which is what a JSON decoder
// makes of invalid UTF-8 and of an escaped lone surrogate such as
// "\ud800", so two different inputs could otherwise land on one person);
// control characters (Unicode Cc) and line or paragraph separators (Zl,
// Zp); format characters (Cf: zero-width space and joiners, bidi
// embeddings, overrides and isolates, the BOM U+FEFF, the soft hyphen...),
// which are invisible; leading or trailing white space (unicode.IsSpace,
// U+3000 included), and so an id of white space only; and an id longer
// than 256 bytes once normalised.
//
// Nothing else is changed: case is kept (Alice@Example.com and
// alice@example.com are two people; pass a stable id such as an account
// number, or lowercase e-mail addresses yourself), and compatibility forms
// are kept apart (NFKC is not applied, so fullwidth "ａｌｉｃｅ" is not
// "alice"); see docs/contract.md, "Names and subjects". The reason: NFC only
// joins strings Unicode defines as the same text (they render alike), so
// it can never merge two people. Case folding and NFKC join strings that
// differ (x² and x2, ﬁ and fi, the fullwidth forms), which the system that
// owns the ids may keep apart; merging two people would let one person's
// grant allow processing for the other, so that decision is left to the
// caller, who knows its ids.
func NormalizeSubjectID(v string) (string, error) {
	if isPlainASCIIID(v) {
		return v, nil // NFC already, and nothing to refuse
	}
	if !utf8.ValidString(v) {
		return "", &FieldError{Field: "subject", Problem: "must be valid UTF-8"}
	}
	n := norm.NFC.String(v)
	if err := checkSubjectRunes(n); err != nil {
		return "", err
	}
	if len(n) > MaxSubjectIDLen {
		return "", &FieldError{Field: "subject", Problem: fmt.Sprintf("must be at most %d bytes (in NFC), got %d", MaxSubjectIDLen, len(n))}
	}
	return n, nil
}

// isPlainASCIIID reports whether v is 1 to MaxSubjectIDLen bytes of
// printable ASCII that neither starts nor ends with a space: an id
// NormalizeSubjectID returns as it is.
func isPlainASCIIID(v string) bool {
	if v == "" || len(v) > MaxSubjectIDLen || v[0] == ' ' || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] >= 0x7f {
			return false
		}
	}
	return true
}

// checkSubjectRunes applies NormalizeSubjectID's refusals to the characters
// of a valid UTF-8 id.
func checkSubjectRunes(v string) error {
	if strings.TrimFunc(v, unicode.IsSpace) == "" {
		if v == "" {
			return &FieldError{Field: "subject", Problem: "is required"}
		}
		return &FieldError{Field: "subject", Problem: "must not be white space only"}
	}
	first, _ := utf8.DecodeRuneInString(v)
	last, _ := utf8.DecodeLastRuneInString(v)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return &FieldError{Field: "subject", Problem: "must not start or end with white space"}
	}
	for _, r := range v {
		switch {
		case r == utf8.RuneError:
			return &FieldError{Field: "subject", Problem: "must not contain U+FFFD (invalid UTF-8 or an escaped lone surrogate)"}
		case unicode.IsControl(r), unicode.In(r, unicode.Zl, unicode.Zp):
			return &FieldError{Field: "subject", Problem: "must not contain control characters or line breaks"}
		case unicode.Is(unicode.Cf, r):
			return &FieldError{Field: "subject", Problem: fmt.Sprintf("must not contain format characters such as U+%04X (invisible: zero-width, bidi control, BOM, soft hyphen)", r)}
		}
	}
	return nil
}

// SubjectKey returns the token that stands for a data subject inside NATS
// subjects: lowercase hex of the first 16 bytes of SHA-256 over tenant, one
// zero byte and the subject id. A raw subject id never appears in a NATS
// subject, so ids may contain any character and stay out of server logs.
func SubjectKey(tenant, subjectID string) string {
	var key [32]byte
	appendSubjectKey(&key, tenant, subjectID)
	return string(key[:])
}

// appendSubjectKey writes SubjectKey(tenant, subjectID) into key, without
// allocating for ids of usual length.
func appendSubjectKey(key *[32]byte, tenant, subjectID string) {
	var buf [256]byte
	in := append(buf[:0], tenant...)
	in = append(in, 0)
	in = append(in, subjectID...)
	sum := sha256.Sum256(in)
	hex.Encode(key[:], sum[:16])
}

// Key identifies one consent: a person's consent to one purpose in one
// tenant.
//
// SubjectKey, when set, is the person's subject key as the caller computed
// it (the token of the consent's NATS subject; a schema version 2 event
// carries it): NATSSubject and IsNATSSubject use it instead of
// SubjectKey(Tenant, SubjectID), and a key may then have no SubjectID (a
// sealed event before Open, an erased consent). Empty: the subject key is
// SubjectKey(Tenant, SubjectID), as for every v1 event. A key naming a
// person on a stream of keyed subject keys (SubjectKeyHMAC) must carry its
// SubjectKey, which only the holder of the tenant's secret computes
// (KeyedSubjectKey): without it Token gives the SubjectKeySHA256 key, which
// names no consent there.
type Key struct {
	Tenant     string
	SubjectID  string
	Purpose    string
	SubjectKey string
}

// Token returns the token of the consent's NATS subject: k.SubjectKey when
// set, else SubjectKey(k.Tenant, k.SubjectID).
func (k Key) Token() string {
	if k.SubjectKey != "" {
		return k.SubjectKey
	}
	return SubjectKey(k.Tenant, k.SubjectID)
}

// AppendToken appends k.Token() to dst, without allocating for ids of
// usual length.
func (k Key) AppendToken(dst []byte) []byte {
	if k.SubjectKey != "" {
		return append(dst, k.SubjectKey...)
	}
	var key [32]byte
	appendSubjectKey(&key, k.Tenant, k.SubjectID)
	return append(dst, key[:]...)
}

// Validate checks all three parts, returning a *FieldError for the first
// that is invalid. An empty tenant is not valid here; callers default it
// first. The subject id is held to the rule of stored events
// (ValidateSubjectID); see Normalize for a key a caller sent. A key with a
// SubjectKey and no SubjectID is valid when SubjectKey is 32 lowercase hex
// digits (else a *FieldError naming "subject_key").
func (k Key) Validate() error {
	if err := ValidateName("tenant", k.Tenant); err != nil {
		return err
	}
	if k.SubjectKey != "" && !isSubjectKey(k.SubjectKey) {
		return &FieldError{Field: "subject_key", Problem: "must be 32 lowercase hex digits"}
	}
	if k.SubjectKey == "" || k.SubjectID != "" {
		if err := ValidateSubjectID(k.SubjectID); err != nil {
			return err
		}
	}
	return ValidateName("purpose", k.Purpose)
}

// Normalize checks a key a caller sent and returns it with its subject id
// normalised (NormalizeSubjectID): the key the ledger records and looks up.
// It returns a *FieldError for the first invalid part, in the order tenant,
// subject, purpose. An empty tenant is not valid here; callers default it
// first.
func (k Key) Normalize() (Key, error) {
	if err := ValidateName("tenant", k.Tenant); err != nil {
		return k, err
	}
	subject, err := NormalizeSubjectID(k.SubjectID)
	if err != nil {
		return k, err
	}
	k.SubjectID = subject
	return k, ValidateName("purpose", k.Purpose)
}

// NATSSubject returns the subject this consent's events are published on:
// consent.events.<tenant>.<purpose>.<subject key>.
func (k Key) NATSSubject() string {
	return "consent.events." + k.Tenant + "." + k.Purpose + "." + k.Token()
}

// IsNATSSubject reports whether subj is NATSSubject(), without building it.
func (k Key) IsNATSSubject(subj string) bool {
	rest, ok := strings.CutPrefix(subj, "consent.events.")
	if !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, k.Tenant); !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, "."); !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, k.Purpose); !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, "."); !ok || len(rest) != 32 {
		return false
	}
	if k.SubjectKey != "" {
		return rest == k.SubjectKey
	}
	var key [32]byte
	appendSubjectKey(&key, k.Tenant, k.SubjectID)
	return rest == string(key[:])
}

// PersonFilter returns the subject filter matching every purpose of one
// person: consent.events.<tenant>.*.<subject key>.
func PersonFilter(tenant, subjectID string) string {
	return "consent.events." + tenant + ".*." + SubjectKey(tenant, subjectID)
}

// OrDefaultTenant returns tenant, or DefaultTenant when it is empty.
func OrDefaultTenant(tenant string) string {
	if tenant == "" {
		return DefaultTenant
	}
	return tenant
}
