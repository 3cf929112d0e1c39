package wire_test

import (
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestA403IsForbiddenOrConsentRequiredByItsDescription(t *testing.T) {
	forbidden := &wire.Error{Code: 403, Description: `forbidden: tenant "acme": your credentials are for tenant "globex" only`}
	required := &wire.Error{Code: 403, Description: "consent required: none"}
	assert.ErrorIs(t, forbidden, wire.ErrForbidden)
	assert.NotErrorIs(t, forbidden, wire.ErrConsentRequired)
	assert.ErrorIs(t, required, wire.ErrConsentRequired)
	assert.NotErrorIs(t, required, wire.ErrForbidden)
	assert.ErrorIs(t, &wire.Error{Code: 403}, wire.ErrConsentRequired)
	assert.NotErrorIs(t, &wire.Error{Code: 409, Description: "forbidden"}, wire.ErrForbidden)
	assert.NotErrorIs(t, forbidden, &wire.Error{Code: 403, Description: "something else"})
	assert.ErrorIs(t, &wire.Error{Code: 409, Description: "x"}, wire.ErrConflict)
}

// Text is what the service puts in Nats-Service-Error: the description,
// or the code's standard text for an error without one.
func TestTextIsTheDescriptionOrTheCodesText(t *testing.T) {
	assert.Equal(t, "conflict", wire.ErrConflict.Text())
	assert.Equal(t, "consent required", (&wire.Error{Code: 403}).Text())
	assert.Equal(t, "internal error", (&wire.Error{Code: 418}).Text())
	assert.Equal(t, "limit: too big", (&wire.Error{Code: 400, Description: "limit: too big"}).Text())
}

// ConsentRequired is the refusal of a check on both sides (the service
// and the Checker): a 403 matching ErrConsentRequired, saying why, with a
// copy of the status.
func TestConsentRequiredSaysWhyAndCarriesACopyOfTheStatus(t *testing.T) {
	st := events.Status{State: events.StateGranted, PolicyVersion: 1, Seq: 7}
	err := wire.ConsentRequired(st, 2)
	assert.ErrorIs(t, err, wire.ErrConsentRequired)
	assert.NotErrorIs(t, err, wire.ErrForbidden)
	assert.Equal(t, "consent required: granted at policy version 1, but policy version 2 is required", err.Description)
	require.NotNil(t, err.Status)
	assert.Equal(t, st, *err.Status)
	st.Seq = 8
	assert.Equal(t, uint64(7), err.Status.Seq, "the error keeps its own copy")

	denied := wire.ConsentRequired(events.Status{State: events.StateDenied}, 0)
	assert.Equal(t, "consent required: denied", denied.Description)
}
