// Package projector folds the CONSENT stream into a Pebble index that
// answers status lookups without touching the stream.
package projector

import (
	"context"
	"errors"

	"github.com/consentledger/consent/events"
)

// IndexOptions configures an Index.
type IndexOptions struct{}

// Index is the Pebble-backed read model. SCAFFOLD: being written (issue 3).
type Index struct{}

// Open opens (or creates) the index in dir. SCAFFOLD.
func Open(dir string, opts IndexOptions) (*Index, error) { return nil, errors.New("not implemented") }

// Close closes the index.
func (i *Index) Close() error { return nil }

// Checkpoint returns the last stream sequence applied.
func (i *Index) Checkpoint() uint64 { return 0 }

// Consent implements ledger.StateReader. SCAFFOLD.
func (i *Index) Consent(ctx context.Context, k events.Key, minSeq uint64) (events.Consent, uint64, error) {
	return events.Consent{}, 0, errors.New("not implemented")
}

// Consents implements ledger.StateReader. SCAFFOLD.
func (i *Index) Consents(ctx context.Context, tenant, subjectID string, minSeq uint64) ([]events.Consent, uint64, error) {
	return nil, 0, errors.New("not implemented")
}
