package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/keystore"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// retentionStack is one consentd instance as the retention needs it: a
// ledger with data keys, legal holds and a manual clock, over st's stream
// and index.
type retentionStack struct {
	*stack
	l     *ledger.Ledger
	keys  *keystore.Store
	holds *ledger.Holds
}

func startRetention(t *testing.T, st *stack, clock *manualClock) *retentionStack {
	t.Helper()
	keys := st.openKeys(t)
	holds, err := ledger.OpenHolds(stepCtx(t), st.js, 1)
	require.NoError(t, err)
	l := ledger.New(st.js, st.stream, ledger.Options{Now: clock.Now, Keys: keys, Holds: holds})
	return &retentionStack{stack: st, l: l, keys: keys, holds: holds}
}

func (r *retentionStack) retainer(clock *manualClock, src ledger.RetentionSource) *ledger.Retainer {
	if src == nil {
		src = r.index
	}
	return ledger.NewRetainer(r.l, src, ledger.RetainerOptions{Now: clock.Now, Interval: 10 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
}

// do appends one consent command and waits until the index has it.
func (r *retentionStack) do(t *testing.T, kind events.Kind, subject, purpose string) wire.Reply {
	t.Helper()
	reply, err := r.l.Append(stepCtx(t), kind, events.Command{Tenant: "acme", SubjectID: subject, Purpose: purpose,
		Actor: "subject", Evidence: []byte(`{"ip":"198.51.100.7"}`)})
	require.NoError(t, err)
	_, err = r.index.Wait(stepCtx(t), reply.Seq)
	require.NoError(t, err)
	return reply
}

func (r *retentionStack) setPurpose(t *testing.T, purpose, retention string) {
	t.Helper()
	cmd := events.PurposeCommand{Tenant: "acme", Purpose: purpose}
	if retention != "" {
		cmd.Retention = &retention
	}
	reply, err := r.l.SetPurpose(stepCtx(t), cmd)
	require.NoError(t, err)
	_, err = r.index.Wait(stepCtx(t), reply.Seq)
	require.NoError(t, err)
}

// erasedEvents returns the consent.erased events stored for the person's
// consent to purpose.
func erasedEvents(t *testing.T, st *stack, subject, purpose string) []storedEvent {
	t.Helper()
	var out []storedEvent
	k := events.Key{Tenant: "acme", SubjectID: subject, Purpose: purpose}
	for _, e := range readStored(t, st.stream, st.natsSubject(t, k)) {
		if e.Event.Type == events.TypeErased {
			out = append(out, e)
		}
	}
	return out
}

// token returns the subject key of the person subject of acme, by the
// scheme of the stream.
func (r *retentionStack) token(t *testing.T, subject string) string {
	t.Helper()
	return subjectKeyOf(t, r.l, "acme", subject)
}

// A person is erased once every consent of theirs ended and the retention
// of each one's purpose passed since; a live grant, a purpose without
// retention and a legal hold keep them; the event says why and names no
// personal data; a second sweep erases nothing more.
func TestRetentionErasesAPersonWhoseConsentsAllEnded(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := newManualClock(start)
	r := startRetention(t, startStack(t, stackOptions{now: clock.Now}), clock)
	r.setPurpose(t, "newsletter", "720h")
	r.setPurpose(t, "analytics", "24h")
	r.setPurpose(t, "billing", "")

	// alice: a revoked newsletter and an analytics request never answered.
	r.do(t, events.KindGrant, "alice@example.com", "newsletter")
	r.do(t, events.KindRequest, "alice@example.com", "analytics")
	clock.Advance(time.Hour)
	r.do(t, events.KindRevoke, "alice@example.com", "newsletter")
	// bob: revoked, but billing (no retention) keeps him.
	r.do(t, events.KindGrant, "bob", "newsletter")
	r.do(t, events.KindRevoke, "bob", "newsletter")
	r.do(t, events.KindDeny, "bob", "billing")
	// carol: revoked, but a live grant keeps her.
	r.do(t, events.KindGrant, "carol", "newsletter")
	r.do(t, events.KindRevoke, "carol", "newsletter")
	r.do(t, events.KindGrant, "carol", "analytics")
	// dave: revoked, on legal hold.
	r.do(t, events.KindGrant, "dave", "newsletter")
	r.do(t, events.KindRevoke, "dave", "newsletter")
	hold, err := r.l.SetHold(stepCtx(t), wire.HoldRequest{Tenant: "acme", SubjectID: "dave", Reason: "litigation hold, case 2026-17", RecordedBy: "dpo@acme"})
	require.NoError(t, err)
	assert.Equal(t, r.token(t, "dave"), hold.Hold.SubjectKey)
	revokedAt := clock.Now().UTC()

	ret := r.retainer(clock, nil)
	ctx := stepCtx(t)

	// 30 days after the revocation, less a second: nobody is due yet; the
	// sweep knows when the first one is.
	clock.Advance(720*time.Hour - time.Second)
	next, err := ret.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, revokedAt.Add(720*time.Hour), next.UTC())
	assert.Zero(t, ret.Stats().Erased)

	clock.Advance(time.Second)
	_, err = ret.Sweep(ctx)
	require.NoError(t, err)
	st := ret.Stats()
	assert.Equal(t, uint64(1), st.Erased, "alice only: %+v", st)
	assert.Equal(t, uint64(2), st.Appends)
	assert.Equal(t, uint64(1), st.Held, "dave is on hold")

	for _, purpose := range []string{"newsletter", "analytics"} {
		erased := erasedEvents(t, r.stack, "alice@example.com", purpose)
		require.Len(t, erased, 1, purpose)
		ev := erased[0].Event
		assert.Equal(t, "retention: every consent of the person ended; the last to pass its retention: newsletter revoked 2026-01-01T01:00:00Z, retention 720h, due 2026-01-31T01:00:00Z", ev.Reason)
		assert.Empty(t, ev.RecordedBy, "consentd erased")
		assert.Empty(t, ev.SubjectID)
		assert.NotContains(t, string(erased[0].Data), "alice")
		assert.NotContains(t, string(erased[0].Data), "198.51.100.7")
	}
	_, _, err = r.keys.DataKey(ctx, "acme", r.token(t, "alice@example.com"))
	require.ErrorIs(t, err, keystore.ErrNoDataKey, "alice's key is destroyed")
	for _, who := range []string{"bob", "carol", "dave"} {
		assert.Empty(t, erasedEvents(t, r.stack, who, "newsletter"), who)
		_, _, err := r.keys.DataKey(ctx, "acme", r.token(t, who))
		require.NoError(t, err, who)
	}

	// A sweep later erases nothing more.
	_, err = ret.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), ret.Stats().Erased)
	assert.Len(t, erasedEvents(t, r.stack, "alice@example.com", "newsletter"), 1)

	// Releasing dave's hold lets the next sweep erase him.
	released, err := r.l.ReleaseHold(ctx, wire.HoldRequest{Tenant: "acme", SubjectID: "dave"})
	require.NoError(t, err)
	assert.True(t, released.Released)
	_, err = ret.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), ret.Stats().Erased)
	assert.Len(t, erasedEvents(t, r.stack, "dave", "newsletter"), 1)

	// Lowering billing's retention frees bob at the next sweep: what is
	// due follows the registry as it is now.
	r.setPurpose(t, "billing", "1h")
	_, err = ret.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), ret.Stats().Erased)
	assert.Len(t, erasedEvents(t, r.stack, "bob", "billing"), 1)
	assert.Empty(t, erasedEvents(t, r.stack, "carol", "newsletter"), "carol's grant is live")
}

// afterScan is a RetentionSource that sets a legal hold on a person
// (or appends an event) after the scan decided and before the Retainer
// erases.
type afterScan struct {
	ledger.RetentionSource
	then func()
}

func (a afterScan) ScanConsents(ctx context.Context, fn func(c *events.Consent) error) (uint64, error) {
	seq, err := a.RetentionSource.ScanConsents(ctx, fn)
	a.then()
	return seq, err
}

// A hold set after the sweep decided, or a consent recorded after the
// scan, wins: the person is not erased.
func TestRetentionRechecksBeforeErasing(t *testing.T) {
	clock := newManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := startRetention(t, startStack(t, stackOptions{now: clock.Now}), clock)
	r.setPurpose(t, "newsletter", "24h")
	for _, who := range []string{"erin", "frank"} {
		r.do(t, events.KindGrant, who, "newsletter")
		r.do(t, events.KindRevoke, who, "newsletter")
	}
	clock.Advance(25 * time.Hour)
	ctx := stepCtx(t)

	held := r.retainer(clock, afterScan{r.index, func() {
		_, err := r.l.SetHold(ctx, wire.HoldRequest{Tenant: "acme", SubjectID: "erin", Reason: "case 9"})
		require.NoError(t, err)
		_, err = r.l.Append(ctx, events.KindGrant, events.Command{Tenant: "acme", SubjectID: "frank", Purpose: "analytics"})
		require.NoError(t, err)
	}})
	_, err := held.Sweep(ctx)
	require.NoError(t, err)
	st := held.Stats()
	assert.Equal(t, uint64(1), st.Held, "%+v", st)
	assert.Equal(t, uint64(1), st.Lost, "frank has a consent the scan did not see: %+v", st)
	assert.Zero(t, st.Erased)
	for _, who := range []string{"erin", "frank"} {
		assert.Empty(t, erasedEvents(t, r.stack, who, "newsletter"), who)
		_, _, err := r.keys.DataKey(ctx, "acme", r.token(t, who))
		require.NoError(t, err, who)
	}
}

// Two instances (ledger, index, retainer each) racing on one stream: each
// consent gets exactly one consent.erased.
func TestRetentionErasesOnceWithTwoInstances(t *testing.T) {
	clock := newManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	server := natstest.RunServer(t)
	a := startRetention(t, startStack(t, stackOptions{server: server, now: clock.Now}), clock)
	b := startRetention(t, startStack(t, stackOptions{server: server, now: clock.Now}), clock)
	a.setPurpose(t, "newsletter", "24h")
	a.setPurpose(t, "analytics", "48h")
	const persons = 12
	var last uint64
	for i := range persons {
		who := fmt.Sprintf("person-%d", i)
		a.do(t, events.KindDeny, who, "analytics")
		a.do(t, events.KindGrant, who, "newsletter")
		last = a.do(t, events.KindRevoke, who, "newsletter").Seq
	}
	_, err := b.index.Wait(stepCtx(t), last)
	require.NoError(t, err)
	clock.Advance(49 * time.Hour)

	ra, rb := a.retainer(clock, nil), b.retainer(clock, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, ret := range []*ledger.Retainer{ra, rb} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = ret.Run(ctx) }()
	}
	require.Eventually(t, func() bool { return ra.Stats().Erased+rb.Stats().Erased >= persons }, 20*time.Second, 5*time.Millisecond,
		"%+v %+v", ra.Stats(), rb.Stats())
	// Both sweep again after all are erased, and find nothing more.
	sa, sb := ra.Stats().Sweeps, rb.Stats().Sweeps
	require.Eventually(t, func() bool { return ra.Stats().Sweeps >= sa+2 && rb.Stats().Sweeps >= sb+2 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	wg.Wait()
	t.Logf("a %+v, b %+v", ra.Stats(), rb.Stats())
	assert.Equal(t, uint64(2*persons), ra.Stats().Appends+rb.Stats().Appends, "one consent.erased per consent")
	for i := range persons {
		who := fmt.Sprintf("person-%d", i)
		for _, purpose := range []string{"newsletter", "analytics"} {
			assert.Len(t, erasedEvents(t, a.stack, who, purpose), 1, "%s %s", who, purpose)
			requireLinearChain(t, a.stream, a.natsSubject(t, events.Key{Tenant: "acme", SubjectID: who, Purpose: purpose}))
		}
	}
}

// The hold endpoints (admin), and an operator's erasure of a person on
// hold: refused with a 409 naming the hold, until it is released.
func TestLegalHoldEndpoints(t *testing.T) {
	clock := newManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	st := startStack(t, stackOptions{now: clock.Now, deferCommands: true})
	r := startRetention(t, st, clock)
	require.NoError(t, st.svc.ServeCommands(r.l))
	ctx := stepCtx(t)
	r.do(t, events.KindGrant, "grace", "newsletter")

	c := st.client
	_, err := c.SetHold(ctx, wire.HoldRequest{Tenant: "acme", SubjectID: "grace"})
	requireBadRequest(t, err, "reason")
	_, err = c.SetHold(ctx, wire.HoldRequest{Tenant: "Acme", SubjectID: "grace", Reason: "case 1"})
	requireBadRequest(t, err, "tenant")
	_, err = c.SetHold(ctx, wire.HoldRequest{Tenant: "acme", Reason: "case 1"})
	requireBadRequest(t, err, "subject")

	set, err := c.SetHold(ctx, wire.HoldRequest{Tenant: "acme", SubjectID: "grace", Reason: "litigation hold, case 2026-17"})
	require.NoError(t, err)
	assert.Equal(t, r.token(t, "grace"), set.Hold.SubjectKey)
	assert.Equal(t, clock.Now().UTC(), set.Hold.SetAt)
	list, err := c.ListHolds(ctx, wire.HoldListQuery{Tenant: "acme"})
	require.NoError(t, err)
	require.Len(t, list.Holds, 1)
	assert.Equal(t, "litigation hold, case 2026-17", list.Holds[0].Reason)
	other, err := c.ListHolds(ctx, wire.HoldListQuery{Tenant: "globex"})
	require.NoError(t, err)
	assert.Empty(t, other.Holds)

	_, err = c.Erase(ctx, wire.EraseRequest{Tenant: "acme", SubjectID: "grace", Reason: "erasure requested"})
	require.ErrorIs(t, err, wire.ErrConflict)
	assert.Contains(t, err.Error(), "legal hold")
	assert.Contains(t, err.Error(), "case 2026-17")
	assert.Empty(t, erasedEvents(t, st, "grace", "newsletter"))

	rel, err := c.ReleaseHold(ctx, wire.HoldRequest{Tenant: "acme", SubjectID: "grace"})
	require.NoError(t, err)
	assert.True(t, rel.Released)
	assert.Equal(t, "litigation hold, case 2026-17", rel.Hold.Reason)
	again, err := c.ReleaseHold(ctx, wire.HoldRequest{Tenant: "acme", SubjectID: "grace"})
	require.NoError(t, err)
	assert.False(t, again.Released, "nothing to release")
	list, err = c.ListHolds(ctx, wire.HoldListQuery{Tenant: "acme"})
	require.NoError(t, err)
	assert.Empty(t, list.Holds)

	erased, err := c.Erase(ctx, wire.EraseRequest{Tenant: "acme", SubjectID: "grace", Reason: "erasure requested"})
	require.NoError(t, err)
	assert.Len(t, erased.Erased, 1)

	// Retention values are checked with a 400 naming the field.
	for _, bad := range []string{"2y", "0s", "-1h", "876001h"} {
		_, err := c.SetPurpose(ctx, events.PurposeCommand{Tenant: "acme", Purpose: "newsletter", Retention: &bad})
		requireBadRequest(t, err, "retention")
	}
	good := "17520h"
	set2, err := c.SetPurpose(ctx, events.PurposeCommand{Tenant: "acme", Purpose: "newsletter", Retention: &good})
	require.NoError(t, err)
	assert.Equal(t, "17520h", set2.Purpose.Retention)
}

// A ledger without a hold bucket answers the hold endpoints 503.
func TestLegalHoldsNeedTheBucket(t *testing.T) {
	st := startStack(t, stackOptions{})
	_, err := st.client.SetHold(stepCtx(t), wire.HoldRequest{SubjectID: "x", Reason: "case"})
	require.ErrorIs(t, err, wire.ErrUnavailable)
}

func requireBadRequest(t *testing.T, err error, field string) {
	t.Helper()
	require.ErrorIs(t, err, wire.ErrBadRequest)
	var we *wire.Error
	require.ErrorAs(t, err, &we)
	assert.True(t, strings.HasPrefix(we.Description, field+": "), "want a 400 naming %s: %v", field, err)
}

var _ ledger.RetentionSource = (*projector.Index)(nil)

// A sweep whose batch is full resumes after the last person it took, so
// persons on hold do not hold back the others.
func TestRetentionBatchResumesPastHeldPersons(t *testing.T) {
	clock := newManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := startRetention(t, startStack(t, stackOptions{now: clock.Now}), clock)
	r.setPurpose(t, "newsletter", "24h")
	who := []string{"jan", "kim"}
	for _, p := range who {
		r.do(t, events.KindGrant, p, "newsletter")
		r.do(t, events.KindRevoke, p, "newsletter")
	}
	if r.token(t, who[1]) < r.token(t, who[0]) {
		who[0], who[1] = who[1], who[0]
	}
	ctx := stepCtx(t)
	_, err := r.l.SetHold(ctx, wire.HoldRequest{Tenant: "acme", SubjectID: who[0], Reason: "case 4"})
	require.NoError(t, err)
	clock.Advance(25 * time.Hour)
	ret := ledger.NewRetainer(r.l, r.index, ledger.RetainerOptions{Now: clock.Now, Batch: 1, Logger: slog.New(slog.DiscardHandler)})

	next, err := ret.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, clock.Now(), next, "more may be due: sweep again now")
	assert.Equal(t, uint64(1), ret.Stats().Held)
	_, err = ret.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), ret.Stats().Erased, "%+v", ret.Stats())
	assert.Len(t, erasedEvents(t, r.stack, who[1], "newsletter"), 1)
	assert.Empty(t, erasedEvents(t, r.stack, who[0], "newsletter"))
}
