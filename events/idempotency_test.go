package events_test

import (
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/stretchr/testify/assert"
)

func TestIdempotencyMsgID(t *testing.T) {
	acme := events.Key{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email"}.NATSSubject()
	globex := events.Key{Tenant: "globex", SubjectID: "alice@example.com", Purpose: "marketing_email"}.NATSSubject()

	id := events.IdempotencyMsgID(acme, "K")
	assert.Regexp(t, `^idem-[0-9a-f]{32}$`, id)
	assert.Equal(t, id, events.IdempotencyMsgID(acme, "K"), "deterministic")
	assert.NotEqual(t, id, events.IdempotencyMsgID(globex, "K"), "scoped to the tenant")
	assert.NotEqual(t, id, events.IdempotencyMsgID(acme, "K2"))
	// The zero byte keeps subject and key apart: no shift of characters
	// between them gives the same id.
	assert.NotEqual(t, events.IdempotencyMsgID("a.b", "c"), events.IdempotencyMsgID("a.", "bc"))

	assert.True(t, events.StoredUnderKey(acme, id, "K"))
	assert.True(t, events.StoredUnderKey(acme, "K", "K"), "as earlier ledgers stored it")
	assert.False(t, events.StoredUnderKey(globex, id, "K"))
	assert.False(t, events.StoredUnderKey(acme, "", ""), "no key matches nothing")
}
