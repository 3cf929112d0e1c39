package ledger_test

import (
	"testing"

	"github.com/consentledger/consent/ledger"
	"github.com/stretchr/testify/assert"
)

func TestA403IsForbiddenOrConsentRequiredByItsDescription(t *testing.T) {
	forbidden := &ledger.Error{Code: 403, Description: `forbidden: tenant "acme": your credentials are for tenant "globex" only`}
	required := &ledger.Error{Code: 403, Description: "consent required: none"}
	assert.ErrorIs(t, forbidden, ledger.ErrForbidden)
	assert.NotErrorIs(t, forbidden, ledger.ErrConsentRequired)
	assert.ErrorIs(t, required, ledger.ErrConsentRequired)
	assert.NotErrorIs(t, required, ledger.ErrForbidden)
	assert.ErrorIs(t, &ledger.Error{Code: 403}, ledger.ErrConsentRequired)
	assert.NotErrorIs(t, &ledger.Error{Code: 409, Description: "forbidden"}, ledger.ErrForbidden)
	assert.NotErrorIs(t, forbidden, &ledger.Error{Code: 403, Description: "something else"})
	assert.ErrorIs(t, &ledger.Error{Code: 409, Description: "x"}, ledger.ErrConflict)
}
