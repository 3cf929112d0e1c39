package events

import "time"

// TypeExpired is the event the ledger appends when a grant's expires_at has
// passed, so that subscribers of the stream learn of the expiry. It is
// never asked for by a caller: consentd's expirer appends it.
const TypeExpired Type = "consent.expired"

// KindExpire names the expiry in a *TransitionError. It is not a command a
// caller can send (it has no endpoint and no Command form): see
// DecideExpiry.
const KindExpire Kind = "expire"

// ExpiryActor is the actor of every consent.expired event: the ledger
// itself, not a person or a calling service.
const ExpiryActor = "consentd"

// DecideExpiry returns the consent.expired event for a grant whose
// expires_at is at or before now, complete but for ID and Hash: it occurred
// at the grant's expires_at, was recorded now, and carries the grant's
// policy version and expires_at, so that the state it leads to follows from
// the event alone (see Evolve). Its actor is ExpiryActor and it has no
// recorded_by: no user records it. It returns a *TransitionError when cur is
// not a stored grant (expired is reached from granted only) or has not
// expired by now.
//
// A consent whose grant has expired reads as StateExpired from the clock
// before this event lands (Consent.StateAt) and from the event after; the
// event changes nothing a status says but records the expiry in the trail.
func DecideExpiry(cur Consent, now time.Time) (Event, error) {
	now = now.UTC()
	from := cur.State
	if from == "" {
		from = StateNone
	}
	refuse := func(reason string) (Event, error) {
		return Event{}, &TransitionError{Kind: KindExpire, From: from, Reason: reason}
	}
	switch {
	case from != StateGranted:
		return refuse("the consent is " + string(from) + "; only a grant can expire")
	case cur.ExpiresAt == nil:
		return refuse("the grant has no expires_at")
	case now.Before(*cur.ExpiresAt):
		return refuse("the grant expires at " + cur.ExpiresAt.UTC().Format(time.RFC3339Nano) + ", later than now")
	}
	expires := cur.ExpiresAt.UTC()
	return Event{
		V:             SchemaVersionClear,
		Type:          TypeExpired,
		Tenant:        cur.Tenant,
		SubjectID:     cur.SubjectID,
		SubjectKey:    cur.SubjectKey,
		Purpose:       cur.Purpose,
		OccurredAt:    expires,
		RecordedAt:    now,
		PolicyVersion: max(cur.PolicyVersion, 1),
		ExpiresAt:     &expires,
		Actor:         ExpiryActor,
		PrevHash:      cur.Hash,
	}, nil
}
