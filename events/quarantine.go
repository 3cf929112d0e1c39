package events

import (
	"fmt"
	"time"
)

// TypeQuarantined is the event an operator appends to get a consent past a
// message that failed its integrity checks (see CheckMessage): it names
// that message's stream sequence (QuarantinedSeq), why it is set aside
// (Reason) and who decided (Actor), and carries the state the consent
// resumes, its last good one (State, PolicyVersion, ExpiresAt), so that the
// state after it follows from the event alone, as after every event (see
// Evolve). It is appended on the consent's own subject and chains like any
// event: its prev_hash is the hash of the consent's last good event.
//
// The schema version stays 1: a reader that does not know this type stops
// on it with ErrUnknownType rather than misread it, as it does for any
// type added later.
const TypeQuarantined Type = "consent.quarantined"

// KindQuarantine names the quarantine in a *TransitionError. It is an
// operator's command (consent.v1.admin.quarantine), not a consent command.
const KindQuarantine Kind = "quarantine"

// Quarantine is the body of consent.v1.admin.quarantine: set the message
// at stream sequence Seq aside. SubjectID and Purpose name the consent
// when the stream holds no readable event of it to learn them from.
// RecordedBy is set by the service from the caller's authenticated
// identity, never from the body, as Command.RecordedBy is.
type Quarantine struct {
	Tenant     string `json:"tenant,omitempty"`
	Seq        uint64 `json:"seq"`
	Reason     string `json:"reason"`
	Actor      string `json:"actor"`
	RecordedBy string `json:"-"`
	SubjectID  string `json:"subject,omitempty"`
	Purpose    string `json:"purpose,omitempty"`
}

// Validate checks the request, returning a *FieldError for the first
// problem: seq is required, reason (at most MaxReasonLen bytes) and actor
// (at most MaxNameLen) are required, recorded_by when set is at most
// MaxRecordedByLen, and subject and purpose come together.
func (q *Quarantine) Validate() error {
	if q.Seq == 0 {
		return &FieldError{Field: "seq", Problem: "is required: the stream sequence of the message to quarantine"}
	}
	if q.Tenant != "" {
		if err := ValidateName("tenant", q.Tenant); err != nil {
			return err
		}
	}
	if q.Reason == "" {
		return &FieldError{Field: "reason", Problem: "is required: say why the message is set aside"}
	}
	if err := checkText("reason", q.Reason, MaxReasonLen, true); err != nil {
		return err
	}
	if q.Actor == "" {
		return &FieldError{Field: "actor", Problem: "is required: who decided the quarantine"}
	}
	if err := checkText("actor", q.Actor, MaxNameLen, false); err != nil {
		return err
	}
	if err := checkRecordedBy(q.RecordedBy); err != nil {
		return err
	}
	if (q.SubjectID == "") != (q.Purpose == "") {
		return &FieldError{Field: "purpose", Problem: "subject and purpose name the consent together: give both or neither"}
	}
	if q.SubjectID != "" {
		return Key{Tenant: OrDefaultTenant(q.Tenant), SubjectID: q.SubjectID, Purpose: q.Purpose}.Validate()
	}
	return nil
}

// DecideQuarantine returns the consent.quarantined event that sets aside
// the message at q.Seq for the consent whose last good state is cur,
// complete but for ID and Hash: it resumes cur (state, policy version,
// expires_at) and links to cur (cur.NextPrevHash). It is recorded now by q.Actor (and
// q.RecordedBy, the authenticated user, when set) for q.Reason; the caller
// has validated q and checked that the message at q.Seq failed the
// consent's integrity checks.
func DecideQuarantine(cur Consent, q Quarantine, now time.Time) Event {
	now = now.UTC()
	state := cur.State
	if state == "" {
		state = StateNone
	}
	return Event{
		V:              SchemaVersionClear,
		Type:           TypeQuarantined,
		Tenant:         cur.Tenant,
		SubjectID:      cur.SubjectID,
		SubjectKey:     cur.SubjectKey,
		Purpose:        cur.Purpose,
		OccurredAt:     now,
		RecordedAt:     now,
		PolicyVersion:  max(cur.PolicyVersion, 1),
		ExpiresAt:      cur.ExpiresAt,
		Actor:          q.Actor,
		RecordedBy:     q.RecordedBy,
		Reason:         q.Reason,
		State:          state,
		QuarantinedSeq: q.Seq,
		PrevHash:       cur.NextPrevHash(),
	}
}

// Resumes reports whether a quarantine event carries exactly the state
// cur, the consent's last good state: what the projector requires of it
// before applying it.
func (e *Event) Resumes(cur Consent) bool {
	state := cur.State
	if state == "" {
		state = StateNone
	}
	sameExpiry := (e.ExpiresAt == nil) == (cur.ExpiresAt == nil) &&
		(e.ExpiresAt == nil || e.ExpiresAt.Equal(*cur.ExpiresAt))
	return e.State == state && e.PolicyVersion == max(cur.PolicyVersion, 1) && sameExpiry
}

// checkQuarantine checks the members only a quarantine carries.
func (e *Event) checkQuarantine() error {
	if e.Type != TypeQuarantined {
		switch {
		case e.State != "":
			return &FieldError{Field: "state", Problem: "is only allowed on " + string(TypeQuarantined)}
		case e.QuarantinedSeq != 0:
			return &FieldError{Field: "quarantined_seq", Problem: "is only allowed on " + string(TypeQuarantined)}
		}
		return nil
	}
	switch {
	case e.QuarantinedSeq == 0:
		return &FieldError{Field: "quarantined_seq", Problem: "is required"}
	case !e.State.known():
		return &FieldError{Field: "state", Problem: fmt.Sprintf("%q is not a state", e.State)}
	case e.Reason == "" && !e.IsSealed(): // in v2 they are sealed
		return &FieldError{Field: "reason", Problem: "is required"}
	case e.Actor == "" && !e.IsSealed():
		return &FieldError{Field: "actor", Problem: "is required"}
	}
	return nil
}

// known reports whether s is one of the seven states of a consent.
func (s State) known() bool {
	switch s {
	case StateNone, StateRequested, StateGranted, StateDenied, StateRevoked, StateExpired, StateErased:
		return true
	}
	return false
}
