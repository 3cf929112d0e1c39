package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// SubjectKeyScheme names how a stream's subject keys are computed. A stream
// records its scheme in its metadata under SubjectKeySchemeMetadata; a
// stream without that entry uses SubjectKeySHA256.
type SubjectKeyScheme string

const (
	// SubjectKeySHA256 is SubjectKey: the first 16 bytes of SHA-256 over
	// tenant, a zero byte and the subject id, in lowercase hex. Anyone with
	// a list of candidate ids (emails) can reverse it.
	SubjectKeySHA256 SubjectKeyScheme = "sha256-16"
	// SubjectKeyHMAC is KeyedSubjectKey: the first 16 bytes of
	// HMAC-SHA-256 under the tenant's secret, in lowercase hex. It cannot be
	// reversed without the secret.
	SubjectKeyHMAC SubjectKeyScheme = "hmac-sha256-16"
)

// SubjectKeySchemeMetadata is the stream metadata key whose value is the
// stream's SubjectKeyScheme.
const SubjectKeySchemeMetadata = "consent_subject_key_scheme"

// Known reports whether s is one of the schemes above.
func (s SubjectKeyScheme) Known() bool {
	return s == SubjectKeySHA256 || s == SubjectKeyHMAC
}

// KeyedSubjectKey returns the subject key of subjectID under the scheme
// SubjectKeyHMAC: lowercase hex of the first 16 bytes of
// HMAC-SHA-256(secret, subjectID). The secret is the tenant's (so the tenant
// is not hashed again); subjectID is taken as given, so callers normalise it
// first (NormalizeSubjectID). The result is one NATS token of 32 hex digits.
func KeyedSubjectKey(secret []byte, subjectID string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(subjectID))
	var sum [sha256.Size]byte
	return hex.EncodeToString(mac.Sum(sum[:0])[:16])
}
