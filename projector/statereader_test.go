package projector_test

import (
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
)

// The service reads consent states through ledger.StateReader; the index
// is what it reads from.
var _ ledger.StateReader = (*projector.Index)(nil)
