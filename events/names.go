package events

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
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

// ValidateSubjectID checks a data subject id: valid UTF-8, 1 to 256 bytes, no
// control characters. Dots, '*', '>', spaces and any other printable
// character are legal, because the id never appears in a NATS subject.
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
type Key struct {
	Tenant    string
	SubjectID string
	Purpose   string
}

// Validate checks all three parts, returning a *FieldError for the first
// that is invalid. An empty tenant is not valid here; callers default it
// first.
func (k Key) Validate() error {
	if err := ValidateName("tenant", k.Tenant); err != nil {
		return err
	}
	if err := ValidateSubjectID(k.SubjectID); err != nil {
		return err
	}
	return ValidateName("purpose", k.Purpose)
}

// NATSSubject returns the subject this consent's events are published on:
// consent.events.<tenant>.<purpose>.<subject key>.
func (k Key) NATSSubject() string {
	return "consent.events." + k.Tenant + "." + k.Purpose + "." + SubjectKey(k.Tenant, k.SubjectID)
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
