package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Legal holds. A hold on a person (tenant and subject key) suspends their
// erasure: the Retainer skips them, and Erase refuses with a *HeldError
// (409) before each step, so that an operator's erasure cannot destroy
// records a court or an authority asked to keep either. Releasing the
// hold lets both proceed.
//
// Holds are entries of the JetStream KV bucket HoldBucket in the stream's
// account, replicated like the stream and stored before the endpoint
// answers, so a hold set is never lost to a crash. An entry is named
// <tenant>.<subject key> (never the person's id) and holds JSON Hold.

// HoldBucket is the name of the KV bucket of the legal holds.
const HoldBucket = "consent_holds"

// holdHistory is how many revisions of a hold the bucket keeps: the
// holds set on a person before, with their reasons.
const holdHistory = 16

// ErrHeld is matched by the error Erase returns for a person on legal
// hold (a *HeldError). It matches events.ErrForbidden too: 409 on the
// wire.
var ErrHeld = errors.New("the person is on legal hold")

// HeldError reports an erasure refused because the person is on legal
// hold. It names the hold (who set it, when, why), never the person.
type HeldError struct{ Hold wire.Hold }

func (e *HeldError) Error() string {
	return fmt.Sprintf("the person (subject key %s) is on legal hold since %s, set by %s: %s; release the hold first",
		e.Hold.SubjectKey, e.Hold.SetAt.UTC().Format(time.RFC3339), orUnknown(e.Hold.SetBy), e.Hold.Reason)
}

// Is makes errors.Is match ErrHeld and events.ErrForbidden.
func (e *HeldError) Is(target error) bool { return target == ErrHeld || target == events.ErrForbidden }

func orUnknown(user string) string {
	if user == "" {
		return "an unknown user"
	}
	return user
}

// holdKey returns the tenant and the subject key of the person q names:
// the same subject key Erase erases the person by.
func (l *Ledger) holdKey(ctx context.Context, q *wire.HoldRequest) (tenant, token string, err error) {
	tenant = events.OrDefaultTenant(q.Tenant)
	token, err = l.personToken(ctx, tenant, q.SubjectID)
	return tenant, token, err
}

// Holds stores the legal holds in the KV bucket HoldBucket (see OpenHolds
// and LazyHolds). It is safe for concurrent use.
type Holds struct {
	open func(context.Context) (jetstream.KeyValue, error)
	mu   sync.Mutex
	kv   jetstream.KeyValue // nil until open succeeded
}

// OpenHolds opens the bucket of the legal holds in js's account, creating
// it (file storage, replicas as given, the last holdHistory revisions of
// each entry) when it does not exist. Errors are JetStream's.
func OpenHolds(ctx context.Context, js jetstream.JetStream, replicas int) (*Holds, error) {
	h := LazyHolds(js, replicas)
	if _, err := h.bucket(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// LazyHolds returns the legal holds of OpenHolds without waiting for the
// bucket: it is opened on first use (and again after a failure), so that
// a cluster still electing the bucket's leader delays only what needs
// the holds (Erase, the Retainer, the hold endpoints), which fail with an error
// matching events.ErrNotReady (503) until the bucket answers: never as "no hold".
func LazyHolds(js jetstream.JetStream, replicas int) *Holds {
	return &Holds{open: func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      HoldBucket,
			Description: "Consent Ledger: legal holds, which suspend the erasure of a person",
			History:     holdHistory,
			Storage:     jetstream.FileStorage,
			Replicas:    max(replicas, 1),
		})
	}}
}

// Open opens the bucket now, if it is not yet open: errors as bucket's.
func (h *Holds) Open(ctx context.Context) error {
	_, err := h.bucket(ctx)
	return err
}

// bucket returns the hold bucket, opening it if it is not yet open; its
// error matches events.ErrNotReady and wraps JetStream's.
func (h *Holds) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kv == nil {
		kv, err := h.open(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: open the legal hold bucket: %w", events.ErrNotReady, err)
		}
		h.kv = kv
	}
	return h.kv, nil
}

func holdEntry(tenant, token string) string { return tenant + "." + token }

// Get returns the hold on the person (tenant, subject key), and false when
// there is none.
func (h *Holds) Get(ctx context.Context, tenant, token string) (wire.Hold, bool, error) {
	hold, rev, err := h.get(ctx, tenant, token)
	return hold, rev > 0, err
}

// get returns the hold and its revision in the bucket, 0 when there is
// none.
func (h *Holds) get(ctx context.Context, tenant, token string) (wire.Hold, uint64, error) {
	kv, err := h.bucket(ctx)
	if err != nil {
		return wire.Hold{}, 0, err
	}
	e, err := kv.Get(ctx, holdEntry(tenant, token))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return wire.Hold{}, 0, nil
	}
	if err != nil {
		return wire.Hold{}, 0, fmt.Errorf("read the legal hold: %w", err)
	}
	var hold wire.Hold
	if err := json.Unmarshal(e.Value(), &hold); err != nil {
		return wire.Hold{}, 0, fmt.Errorf("legal hold %s: %w", e.Key(), err)
	}
	return hold, e.Revision(), nil
}

// check returns a *HeldError when the person is on hold.
func (h *Holds) check(ctx context.Context, tenant, token string) error {
	if h == nil {
		return nil
	}
	hold, held, err := h.Get(ctx, tenant, token)
	if err != nil {
		return err
	}
	if held {
		return &HeldError{Hold: hold}
	}
	return nil
}

// errNoHolds is what the hold methods of a Ledger without Options.Holds
// return (503 on the wire).
var errNoHolds = &wire.Error{Code: 503, Description: "legal holds are not available: the ledger has no hold bucket"}

// SetHold puts the person q names on legal hold, or replaces the reason of
// their hold, and returns the hold as stored. Errors: a *events.FieldError
// for a bad request (reason is required), a 503 *Error when the ledger has
// no hold bucket (Options.Holds), JetStream errors.
func (l *Ledger) SetHold(ctx context.Context, q wire.HoldRequest) (wire.HoldReply, error) {
	if err := q.Validate(); err != nil {
		return wire.HoldReply{}, err
	}
	if q.Reason == "" {
		return wire.HoldReply{}, &events.FieldError{Field: "reason", Problem: "is required: say why the person's records must be kept (no personal data)"}
	}
	if l.holds == nil {
		return wire.HoldReply{}, errNoHolds
	}
	tenant, token, err := l.holdKey(ctx, &q)
	if err != nil {
		return wire.HoldReply{}, err
	}
	hold := wire.Hold{Tenant: tenant, SubjectKey: token, Reason: q.Reason, SetBy: q.RecordedBy, SetAt: l.now().UTC()}
	value, err := json.Marshal(hold)
	if err != nil {
		return wire.HoldReply{}, err
	}
	kv, err := l.holds.bucket(ctx)
	if err != nil {
		return wire.HoldReply{}, err
	}
	if _, err := kv.Put(ctx, holdEntry(tenant, token), value); err != nil {
		return wire.HoldReply{}, fmt.Errorf("store the legal hold: %w", err)
	}
	return wire.HoldReply{Hold: &hold}, nil
}

// ReleaseHold lifts the person's legal hold; the reply carries the hold
// it lifted, or Released false when there was none. Erasure by retention
// resumes at the Retainer's next sweep. Errors as SetHold's, and
// ErrContention (409) when the hold was set again while it was released:
// it stays.
func (l *Ledger) ReleaseHold(ctx context.Context, q wire.HoldRequest) (wire.HoldReply, error) {
	if err := q.Validate(); err != nil {
		return wire.HoldReply{}, err
	}
	if l.holds == nil {
		return wire.HoldReply{}, errNoHolds
	}
	tenant, token, err := l.holdKey(ctx, &q)
	if err != nil {
		return wire.HoldReply{}, err
	}
	hold, rev, err := l.holds.get(ctx, tenant, token)
	if err != nil || rev == 0 {
		return wire.HoldReply{}, err
	}
	kv, err := l.holds.bucket(ctx)
	if err != nil {
		return wire.HoldReply{}, err
	}
	err = kv.Delete(ctx, holdEntry(tenant, token), jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return wire.HoldReply{}, fmt.Errorf("%w: the legal hold was set again meanwhile and stays; release it again", ErrContention)
	}
	if err != nil {
		return wire.HoldReply{}, fmt.Errorf("release the legal hold: %w", err)
	}
	return wire.HoldReply{Hold: &hold, Released: true}, nil
}

// ListHolds returns the holds of the tenant q names, ordered by subject
// key. Errors as SetHold's.
func (l *Ledger) ListHolds(ctx context.Context, q wire.HoldListQuery) (wire.HoldListReply, error) {
	if err := q.Validate(); err != nil {
		return wire.HoldListReply{}, err
	}
	if l.holds == nil {
		return wire.HoldListReply{}, errNoHolds
	}
	tenant := events.OrDefaultTenant(q.Tenant)
	kv, err := l.holds.bucket(ctx)
	if err != nil {
		return wire.HoldListReply{}, err
	}
	lister, err := kv.ListKeysFiltered(ctx, tenant+".*")
	if err != nil {
		return wire.HoldListReply{}, fmt.Errorf("list the legal holds: %w", err)
	}
	var tokens []string
	for key := range lister.Keys() { // closed when all are listed
		tokens = append(tokens, strings.TrimPrefix(key, tenant+"."))
	}
	if err := ctx.Err(); err != nil {
		return wire.HoldListReply{}, err
	}
	sort.Strings(tokens)
	out := wire.HoldListReply{Holds: []wire.Hold{}}
	for _, token := range tokens {
		hold, held, err := l.holds.Get(ctx, tenant, token)
		if err != nil {
			return wire.HoldListReply{}, err
		}
		if held { // released since it was listed: skip it
			out.Holds = append(out.Holds, hold)
		}
	}
	return out, nil
}
