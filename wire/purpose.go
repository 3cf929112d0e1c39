package wire

import (
	"github.com/consentledger/consent/events"
)

// Request subjects of the purpose registry.
const (
	SubjectPurposeSet  = "consent.v1.purpose.set"
	SubjectPurposeGet  = "consent.v1.purpose.get"
	SubjectPurposeList = "consent.v1.purpose.list"
)

// PurposeQuery is the body of consent.v1.purpose.get.
type PurposeQuery struct {
	Tenant  string `json:"tenant,omitempty"`
	Purpose string `json:"purpose"`
	MinSeq  uint64 `json:"min_seq,omitempty"`
}

// Key returns the purpose asked about, with the tenant defaulted.
func (q *PurposeQuery) Key() events.PurposeKey {
	return events.PurposeKey{Tenant: events.OrDefaultTenant(q.Tenant), Purpose: q.Purpose}
}

// Validate returns a *events.FieldError for the first invalid field.
func (q *PurposeQuery) Validate() error { return q.Key().Validate() }

// PurposeListQuery is the body of consent.v1.purpose.list.
type PurposeListQuery struct {
	Tenant string `json:"tenant,omitempty"`
	MinSeq uint64 `json:"min_seq,omitempty"`
}

// Validate returns a *events.FieldError for the first invalid field.
func (q *PurposeListQuery) Validate() error {
	return events.ValidateName("tenant", events.OrDefaultTenant(q.Tenant))
}

// PurposeList is the reply of consent.v1.purpose.list.
type PurposeList struct {
	Purposes []events.Purpose `json:"purposes"`
}

// PurposeReply is the answer to consent.v1.purpose.set.
type PurposeReply struct {
	Seq       uint64               `json:"seq"`       // stream sequence of the event
	Duplicate bool                 `json:"duplicate"` // the idempotency key had been used: nothing was appended
	Event     *events.PurposeEvent `json:"event"`
	Purpose   events.Purpose       `json:"purpose"` // the purpose as the event leaves it; its index_seq is 0
}
