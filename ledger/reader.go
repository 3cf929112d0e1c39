package ledger

import (
	"context"

	"github.com/consentledger/consent/events"
)

// StateReader answers current-state questions from an index of the stream.
// The projector's index implements it.
type StateReader interface {
	// Consent returns the folded state of one consent (State none when it has
	// no events), found by k.Token() and the index sequence it was read at. With minSeq > 0 it
	// first waits until the index has applied minSeq, returning an error
	// matching events.ErrStale when ctx ends first. It returns events.ErrNotReady while
	// the index cannot answer at all.
	Consent(ctx context.Context, k events.Key, minSeq uint64) (events.Consent, uint64, error)

	// Consents returns every consent of one person (one per purpose that has
	// events), ordered by purpose, waiting for minSeq as Consent does. The
	// person is found by person.Token() (its purpose is not looked at).
	Consents(ctx context.Context, person events.Key, minSeq uint64) ([]events.Consent, uint64, error)
}
