package audit_test

import (
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/stretchr/testify/assert"
)

// TestConsentEntryNamesThePersonBySubjectKey: a state of v1 events as a
// fold gives it (with the subject id) and as the index gives it (with the
// subject key only) have one entry; another person, or another field,
// another entry.
func TestConsentEntryNamesThePersonBySubjectKey(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	folded := events.Consent{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "email", State: events.StateGranted,
		PolicyVersion: 2, UpdatedAt: at, Seq: 7, EventID: "e1", Hash: "h1"}
	indexed := folded
	indexed.SubjectID, indexed.SubjectKey = "", events.SubjectKey("acme", "alice@example.com")
	assert.Equal(t, audit.ConsentEntry(&folded), audit.ConsentEntry(&indexed))

	other := folded
	other.SubjectID = "bob@example.com"
	assert.NotEqual(t, audit.ConsentEntry(&folded), audit.ConsentEntry(&other))
	later := indexed
	later.Seq = 8
	assert.NotEqual(t, audit.ConsentEntry(&indexed), audit.ConsentEntry(&later))
}
