package projector_test

import (
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
)

// The service reads consent states through ledger.StateReader; the index
// is what it reads from.
var _ ledger.StateReader = (*projector.Index)(nil)

// The service answers a min_seq beyond the stream at once from the index's
// view of the stream's last sequence.
var _ interface{ StreamSeq() uint64 } = (*projector.Index)(nil)
