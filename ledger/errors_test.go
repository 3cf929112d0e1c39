package ledger_test

import (
	"testing"

	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
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
