package events

import "time"

// TypeErased is the event that records the erasure of a person's consent
// to one purpose (crypto-shredding: the person's data key is destroyed, so
// the sealed personal fields of their events can no longer be opened). It
// names no personal data: it carries tenant, purpose, subject_key,
// policy_version, the times, the operator's reason (in the clear: it must
// not hold personal data), recorded_by, and prev_hash linking to the
// consent's last event. It is schema version 2 only and has no key_id and
// no sealed blob.
//
// It leads to StateErased, which is never allowed (a check answers "consent
// required: erased"). It ends the consent's chain: the next event of the
// consent, a new request, grant or deny, starts a fresh chain with
// prev_hash "" (see Consent.NextPrevHash).
const TypeErased Type = "consent.erased"

// KindErase names the erasure in a *TransitionError. It is an operator's
// command (the erase endpoint), not a consent command.
const KindErase Kind = "erase"

// Erase is what an erasure needs besides the consent: why, and who
// decided. RecordedBy is the authenticated user, as Command.RecordedBy is
// (empty: consentd itself, such as a retention period that passed).
type Erase struct {
	Reason     string
	RecordedBy string
}

// Validate checks an erasure, returning a *FieldError naming the field:
// reason is required, at most MaxReasonLen bytes without control
// characters other than line breaks and tabs; recorded_by, when set, as
// on every event.
func (x *Erase) Validate() error {
	if x.Reason == "" {
		return &FieldError{Field: "reason", Problem: "is required: say why the person is erased (no personal data)"}
	}
	if err := checkText("reason", x.Reason, MaxReasonLen, true); err != nil {
		return err
	}
	return checkRecordedBy(x.RecordedBy)
}

// DecideErase returns the consent.erased event for the consent whose
// current state is cur, complete but for ID and Hash, to be written with
// Seal: recorded now, on the consent's own subject key (cur.SubjectKey, or
// SubjectKey(cur.Tenant, cur.SubjectID) for a consent of v1 events), with
// cur's policy version and prev_hash cur.Hash. It returns a *FieldError
// when x is not valid (see Erase.Validate) or cur names no subject; a
// *TransitionError (matching ErrForbidden) when cur has no events
// (StateNone: nothing to erase) or is erased already, which an erase flow
// that resumes after a crash treats as done.
func DecideErase(cur Consent, x Erase, now time.Time) (Event, error) {
	if err := x.Validate(); err != nil {
		return Event{}, err
	}
	from := cur.State
	if from == "" {
		from = StateNone
	}
	switch from {
	case StateNone:
		return Event{}, &TransitionError{Kind: KindErase, From: from, Reason: "nothing is recorded for this person and purpose: nothing to erase"}
	case StateErased:
		return Event{}, &TransitionError{Kind: KindErase, From: from, Reason: "the consent is erased already"}
	}
	if cur.SubjectKey == "" && cur.SubjectID == "" {
		return Event{}, &FieldError{Field: "subject_key", Problem: "is required: the consent names no subject"}
	}
	now = now.UTC()
	return Event{
		V:             SchemaVersion,
		Type:          TypeErased,
		Tenant:        cur.Tenant,
		SubjectKey:    cur.Key().Token(),
		Purpose:       cur.Purpose,
		OccurredAt:    now,
		RecordedAt:    now,
		PolicyVersion: max(cur.PolicyVersion, 1),
		RecordedBy:    x.RecordedBy,
		Reason:        x.Reason,
		PrevHash:      cur.Hash,
	}, nil
}
