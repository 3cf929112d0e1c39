package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/consentledger/consent/events"
)

// seal returns the payload of ev, a consent event decided for the person
// of its key: with Options.Keys, schema version 2 with the personal fields
// sealed under the person's data key (made on first use); without, schema
// version 1.
//
// On a stream of keyed subject keys an event must carry its subject key
// (the resolved key's, see SubjectKeys): one without is refused with
// errUnresolvedSubjectKey, never stored on the subject of another scheme.
func (l *Ledger) seal(ctx context.Context, ev *events.Event) ([]byte, error) {
	if ev.SubjectKey == "" && l.subjectKeys != nil && l.subjectKeys.Scheme() != events.SubjectKeySHA256 {
		return nil, errUnresolvedSubjectKey
	}
	if l.keys == nil || ev.Type == events.TypeErased {
		if ev.V == events.SchemaVersionClear && ev.SubjectKey == events.SubjectKey(ev.Tenant, ev.SubjectID) {
			// The first event after an erasure, which names the
			// consent by its subject key only: a version 1 event names
			// the same subject by the person's id.
			ev.SubjectKey = ""
		}
		return ev.Seal()
	}
	if ev.SubjectKey == "" {
		ev.SubjectKey = ev.Key().Token()
	}
	id, key, err := l.keys.EnsureDataKey(ctx, ev.Tenant, ev.SubjectKey)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	return ev.SealWith(events.DataKey{ID: id, Key: key})
}

// errUnresolvedSubjectKey is a bug of the ledger: an event decided on a
// key whose subject key was not resolved (SubjectKeys.Resolve).
var errUnresolvedSubjectKey = errors.New("ledger: event without its subject key on a stream of keyed subject keys")

// ErrKeyDestroyed is matched by the error Keys.KeyByID returns for a key
// that was destroyed: the person was erased (events.ErrKeyErased).
var ErrKeyDestroyed = events.ErrKeyErased

// open fills in the personal fields of a sealed event with its data key,
// when the ledger has Keys; an event whose key was destroyed stays sealed
// (the person was erased). Other errors are returned.
func (l *Ledger) open(ctx context.Context, ev *events.Event) error {
	if l.keys == nil {
		return nil
	}
	_, err := openSealed(ctx, l.keys, ev)
	return err
}

// openSealed fills in the personal fields of ev, when it is sealed, with
// its data key from keys. erased says the key was destroyed (ev stays
// sealed); other errors are returned.
func openSealed(ctx context.Context, keys Keys, ev *events.Event) (erased bool, err error) {
	if !ev.IsSealed() {
		return false, nil
	}
	key, err := keys.KeyByID(ctx, ev.Tenant, ev.SubjectKey, ev.KeyID)
	if errors.Is(err, ErrKeyDestroyed) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("data key %s: %w", ev.KeyID, err)
	}
	return false, ev.Open(events.DataKey{ID: ev.KeyID, Key: key})
}
