package wire

import (
	"encoding/json"

	"github.com/consentledger/consent/events"
)

// Request subjects of the consent service, version 1.
const (
	SubjectRequest = "consent.v1.request"
	SubjectGrant   = "consent.v1.grant"
	SubjectDeny    = "consent.v1.deny"
	SubjectRevoke  = "consent.v1.revoke"
	SubjectStatus  = "consent.v1.status"
	SubjectCheck   = "consent.v1.check"
	SubjectList    = "consent.v1.list"
	SubjectHistory = "consent.v1.history"
)

// DefaultStream is the name of the stream that holds the audit trail.
const DefaultStream = "CONSENT"

// ServiceName is the name the micro service registers under.
const ServiceName = "consent"

// MaxRequestSize is the largest request body the service accepts; larger
// ones get error 413.
const MaxRequestSize = 64 << 10

// Reply is the answer to a command (request, grant, deny, revoke).
type Reply struct {
	Seq       uint64        `json:"seq"`       // stream sequence of the event
	Duplicate bool          `json:"duplicate"` // true when the idempotency key had been used: nothing was appended
	Event     *events.Event `json:"event"`
	// Status is the status the event leads to; its index_seq is 0. From
	// ledger.Ledger.Append it is judged without a policy minimum; the service
	// judges it as a check with min_seq = Seq would (the purpose's policy
	// version included), and says not allowed when it cannot tell.
	Status events.Status `json:"status"`
}

// StatusQuery is the body of consent.v1.status and consent.v1.check.
// MinSeq is any uint64 (0 or absent: no wait). MinPolicyVersion is 0 in
// Go for none; on the wire min_policy_version is absent or 1 to
// events.MaxPolicyVersion (an explicit 0 is refused, see UnmarshalJSON).
type StatusQuery struct {
	Tenant           string `json:"tenant,omitempty"`
	SubjectID        string `json:"subject"`
	Purpose          string `json:"purpose"`
	MinSeq           uint64 `json:"min_seq,omitempty"`
	MinPolicyVersion int    `json:"min_policy_version,omitempty"`
}

// UnmarshalJSON decodes a query as encoding/json does, but refuses an
// explicit min_policy_version outside 1..events.MaxPolicyVersion (an
// explicit 0 included) with a *events.FieldError.
func (q *StatusQuery) UnmarshalJSON(data []byte) error {
	type plain StatusQuery // without this method
	aux := struct {
		*plain
		MinPolicyVersion *int `json:"min_policy_version"`
	}{plain: (*plain)(q)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	if v := aux.MinPolicyVersion; v != nil {
		if err := events.CheckPolicyVersion("min_policy_version", *v); err != nil {
			return err
		}
		q.MinPolicyVersion = *v
	}
	return nil
}

// Key returns the consent asked about, with the tenant defaulted.
func (q *StatusQuery) Key() events.Key {
	return events.Key{Tenant: events.OrDefaultTenant(q.Tenant), SubjectID: q.SubjectID, Purpose: q.Purpose}
}

// Validate returns a *events.FieldError for the first invalid field, and
// normalises q.SubjectID in place (events.NormalizeSubjectID).
func (q *StatusQuery) Validate() error {
	if q.MinPolicyVersion != 0 {
		if err := events.CheckPolicyVersion("min_policy_version", q.MinPolicyVersion); err != nil {
			return err
		}
	}
	k, err := q.Key().Normalize()
	q.SubjectID = k.SubjectID
	return err
}

// ListQuery is the body of consent.v1.list. MinSeq is any uint64 (0 or
// absent: no wait).
type ListQuery struct {
	Tenant    string `json:"tenant,omitempty"`
	SubjectID string `json:"subject"`
	MinSeq    uint64 `json:"min_seq,omitempty"`
}

// Validate returns a *events.FieldError for the first invalid field, and
// normalises q.SubjectID in place (events.NormalizeSubjectID).
func (q *ListQuery) Validate() error {
	return validatePerson(q.Tenant, &q.SubjectID)
}

// validatePerson checks tenant (default "default") and normalises the
// person's id in place (events.NormalizeSubjectID), returning a
// *events.FieldError naming the first invalid field.
func validatePerson(tenant string, subjectID *string) error {
	if err := events.ValidateName("tenant", events.OrDefaultTenant(tenant)); err != nil {
		return err
	}
	id, err := events.NormalizeSubjectID(*subjectID)
	if err != nil {
		return err
	}
	*subjectID = id
	return nil
}

// StatusList is the reply of consent.v1.list.
type StatusList struct {
	Statuses []events.Status `json:"statuses"`
}

// Default and largest page sizes of a history read.
const (
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
)

// HistoryQuery is the body of consent.v1.history. Without a purpose it asks
// for the person's events across all purposes. AfterSeq is any uint64;
// Limit is 0 (DefaultHistoryLimit) to MaxHistoryLimit.
type HistoryQuery struct {
	Tenant    string `json:"tenant,omitempty"`
	SubjectID string `json:"subject"`
	Purpose   string `json:"purpose,omitempty"`
	AfterSeq  uint64 `json:"after_seq,omitempty"`
	Limit     int    `json:"limit,omitempty"`
}

// Validate returns a *events.FieldError for the first invalid field, and
// normalises q.SubjectID in place (events.NormalizeSubjectID).
func (q *HistoryQuery) Validate() error {
	if err := validatePerson(q.Tenant, &q.SubjectID); err != nil {
		return err
	}
	if q.Purpose != "" {
		if err := events.ValidateName("purpose", q.Purpose); err != nil {
			return err
		}
	}
	if q.Limit < 0 || q.Limit > MaxHistoryLimit {
		return &events.FieldError{Field: "limit", Problem: "must be between 1 and 1000 (0 means 100)"}
	}
	return nil
}

// Record is one message of a history with its stream sequence: an event,
// or, for a message that failed the integrity rule (docs/audit.md,
// "Integrity violations and quarantine"), a Violation and no Event.
type Record struct {
	Seq       uint64           `json:"seq"`
	Event     *events.Event    `json:"event,omitempty"`
	Violation *RecordViolation `json:"violation,omitempty"`
}

// RecordViolation is the integrity check a history's message failed
// (events.Check*) and why.
type RecordViolation struct {
	Check  string `json:"check"`
	Reason string `json:"reason"`
}

// History is the reply of consent.v1.history: events oldest first. A page
// shorter than the limit is the last one; ask for the next with after_seq
// set to the last record's seq.
type History struct {
	Events []Record `json:"events"`
}
