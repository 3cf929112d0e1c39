package wire

import "github.com/consentledger/consent/internal/audit"

// Request subjects of the audit endpoints.
const (
	// SubjectStatusAt answers a consent's status at a past time, folded
	// from the stream (StatusAtQuery, StatusAt).
	SubjectStatusAt = "consent.v1.status_at"
	// SubjectReceipt answers a signed receipt of one consent
	// (ReceiptQuery, SignedReceipt).
	SubjectReceipt = "consent.v1.receipt"
	// SubjectIndexDigest answers the digest of the live index at its
	// checkpoint (an empty request, IndexDigest), which consentctl audit
	// verify compares with a fresh fold of the stream.
	SubjectIndexDigest = "consent.v1.index_digest"
)

// The wire types of the audit endpoints; see their definitions in the
// audit package (internal/audit) for the fields.
type (
	// StatusAtQuery is the body of consent.v1.status_at: tenant?,
	// subject, purpose, at (RFC 3339) and by ("recorded", the default, or
	// "occurred").
	StatusAtQuery = audit.StatusAtQuery
	// StatusAt is the reply of consent.v1.status_at: a status plus at, by
	// and events (how many events counted).
	StatusAt = audit.StatusAt
	// TimeBasis is "recorded" or "occurred".
	TimeBasis = audit.TimeBasis
	// ReceiptQuery is the body of consent.v1.receipt: tenant?, subject,
	// purpose.
	ReceiptQuery = audit.ReceiptQuery
	// SignedReceipt is the reply of consent.v1.receipt: the receipt's
	// canonical JSON, its detached ed25519 signature and a text rendering.
	SignedReceipt = audit.SignedReceipt
	// Receipt is the signed content of a SignedReceipt.
	Receipt = audit.Receipt
	// IndexDigest is the reply of consent.v1.index_digest.
	IndexDigest = audit.IndexDigest
)

// The time bases of StatusAtQuery.By.
const (
	ByRecorded = audit.ByRecorded
	ByOccurred = audit.ByOccurred
)
