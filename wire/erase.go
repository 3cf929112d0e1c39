package wire

import (
	"time"

	"github.com/consentledger/consent/events"
)

// Erasure and legal holds (admin role): the bodies of consent.v1.admin.erase
// and consent.v1.admin.hold.*; see docs/privacy.md.

// SubjectErase is the operator's endpoint that erases a person:
// request EraseRequest, reply EraseReply. See ledger.Ledger.Erase.
const SubjectErase = "consent.v1.admin.erase"

// EraseRequest is the body of consent.v1.admin.erase: erase the person
// SubjectID of Tenant (default "default"), for Reason (the operator's: a
// ticket, "erasure requested"; it is stored in the clear, so it must not
// quote the person). RecordedBy is set by the service from the caller's
// identity, never from the body.
type EraseRequest struct {
	Tenant     string `json:"tenant,omitempty"`
	SubjectID  string `json:"subject"`
	Reason     string `json:"reason"`
	RecordedBy string `json:"-"`
}

// Validate checks the request, returning a *events.FieldError naming the
// field.
func (q *EraseRequest) Validate() error {
	if err := validatePerson(q.Tenant, &q.SubjectID); err != nil {
		return err
	}
	x := events.Erase{Reason: q.Reason, RecordedBy: q.RecordedBy}
	return x.Validate()
}

// EraseReply is the reply of consent.v1.admin.erase: the consent.erased
// event appended for each of the person's consents (Erased, by purpose),
// the purposes that were erased already (a repeated erasure), and whether
// a data key was destroyed.
type EraseReply struct {
	Erased       []Reply  `json:"erased"`
	Already      []string `json:"already_erased,omitempty"`
	KeyDestroyed bool     `json:"key_destroyed"`
}

// Endpoints of the legal holds (admin role).
const (
	SubjectHoldSet     = "consent.v1.admin.hold.set"
	SubjectHoldRelease = "consent.v1.admin.hold.release"
	SubjectHoldList    = "consent.v1.admin.hold.list"
)

// Hold is a legal hold on one person, as stored and as the hold endpoints
// answer. Reason is the operator's (a case number, "litigation hold");
// it is stored in the clear, so it must not quote the person.
type Hold struct {
	Tenant     string    `json:"tenant"`
	SubjectKey string    `json:"subject_key"`
	Reason     string    `json:"reason"`
	SetBy      string    `json:"set_by,omitempty"`
	SetAt      time.Time `json:"set_at"`
}

// HoldRequest is the body of consent.v1.admin.hold.set and hold.release:
// the person SubjectID of Tenant (default "default"), and for set the
// Reason (required). RecordedBy is set by the service from the caller's
// identity, never from the body.
type HoldRequest struct {
	Tenant     string `json:"tenant,omitempty"`
	SubjectID  string `json:"subject"`
	Reason     string `json:"reason,omitempty"`
	RecordedBy string `json:"-"`
}

// Validate checks the request, returning a *events.FieldError naming the
// field. The reason is checked by ledger.Ledger.SetHold, where it is required.
func (q *HoldRequest) Validate() error {
	if err := validatePerson(q.Tenant, &q.SubjectID); err != nil {
		return err
	}
	if q.Reason != "" {
		x := events.Erase{Reason: q.Reason, RecordedBy: q.RecordedBy}
		return x.Validate()
	}
	return nil
}

// HoldReply is the reply of hold.set and hold.release: the hold as it
// stands (set) or as it stood (release; nil when there was none), and
// whether a release removed one.
type HoldReply struct {
	Hold     *Hold `json:"hold,omitempty"`
	Released bool  `json:"released,omitempty"`
}

// HoldListQuery is the body of consent.v1.admin.hold.list: the holds of
// Tenant (default "default").
type HoldListQuery struct {
	Tenant string `json:"tenant,omitempty"`
}

// Validate returns a *events.FieldError for an invalid tenant.
func (q *HoldListQuery) Validate() error {
	return events.ValidateName("tenant", events.OrDefaultTenant(q.Tenant))
}

// HoldListReply is the reply of hold.list, ordered by subject key.
type HoldListReply struct {
	Holds []Hold `json:"holds"`
}
