package events_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/consentledger/consent/events"
)

// A grant decided from the empty state, folded, then a deny the transition
// table refuses.
func ExampleDecide() {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	key := events.Key{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email"}
	cur := events.NewConsent(key)

	grant := events.Command{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email", TTL: "720h"}
	if err := grant.Validate(events.KindGrant); err != nil {
		fmt.Println(err)
		return
	}
	ev, err := events.Decide(cur, events.KindGrant, grant, now)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ev.Type, "expires", ev.ExpiresAt.Format(time.RFC3339))

	ev.ID = "019ca9d4-0c00-7000-8000-000000000001"
	if _, err := ev.Seal(); err != nil {
		fmt.Println(err)
		return
	}
	cur = events.Evolve(cur, &ev, 1)
	st := cur.View(now, 0)
	fmt.Println(st.State, "allowed:", st.Allowed)

	deny := events.Command{SubjectID: "alice@example.com", Purpose: "marketing_email", Tenant: "acme"}
	_, err = events.Decide(cur, events.KindDeny, deny, now)
	fmt.Println(errors.Is(err, events.ErrForbidden), err)

	later := cur.View(now.Add(720*time.Hour), 0)
	fmt.Println(later.State, "allowed:", later.Allowed)
	// Output:
	// consent.granted expires 2026-03-31T12:00:00Z
	// granted allowed: true
	// true cannot deny: the consent is granted; use revoke to withdraw a grant
	// expired allowed: false
}

// The subject key hides the person's id inside NATS subjects.
func ExampleSubjectKey() {
	fmt.Println(events.SubjectKey("default", "alice@example.com"))
	key := events.Key{Tenant: "default", SubjectID: "alice@example.com", Purpose: "marketing_email"}
	fmt.Println(key.NATSSubject())
	fmt.Println(events.PersonFilter("default", "alice@example.com"))
	// Output:
	// dab6caca511cd6a9f2dee90c3f74677b
	// consent.events.default.marketing_email.dab6caca511cd6a9f2dee90c3f74677b
	// consent.events.default.*.dab6caca511cd6a9f2dee90c3f74677b
}

// A keyed subject key (scheme hmac-sha256-16) needs the tenant's secret:
// here the test secret of docs/hashing.md, the bytes 0 to 31.
func ExampleKeyedSubjectKey() {
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i)
	}
	token := events.KeyedSubjectKey(secret, "alice@example.com")
	fmt.Println(token)
	key := events.Key{Tenant: "default", SubjectID: "alice@example.com", Purpose: "marketing_email", SubjectKey: token}
	fmt.Println(key.NATSSubject())
	// Output:
	// a59fc578d4cb46faab1d6eb348e7c74b
	// consent.events.default.marketing_email.a59fc578d4cb46faab1d6eb348e7c74b
}

// Seal sets the hash and returns the canonical bytes to publish; anyone can
// check them with VerifyHash (or docs/verify_hash.py).
func ExampleEvent_Seal() {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ev := events.Event{
		V:             events.SchemaVersionClear,
		ID:            "019ca9d4-0c00-7000-8000-000000000001",
		Type:          events.TypeRequested,
		Tenant:        "default",
		SubjectID:     "alice@example.com",
		Purpose:       "newsletter",
		OccurredAt:    at,
		RecordedAt:    at,
		PolicyVersion: 1,
		Description:   "Weekly news",
	}
	payload, err := ev.Seal()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(payload))

	decoded, err := events.Decode(payload)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(events.VerifyHash(payload, decoded))
	// Output:
	// {"description":"Weekly news","hash":"7565b8c90f60bcf3c34d183a5ff59c8486872464d9527701bd48657097e47a36","id":"019ca9d4-0c00-7000-8000-000000000001","occurred_at":"2026-03-01T12:00:00Z","policy_version":1,"prev_hash":"","purpose":"newsletter","recorded_at":"2026-03-01T12:00:00Z","subject":"alice@example.com","tenant":"default","type":"consent.requested","v":1}
	// <nil>
}
