package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// staleTips answers every consent with no events: the stalest hint there
// is, for a consent that has them.
type staleTips struct{ asked atomic.Int32 }

func (s *staleTips) Consent(_ context.Context, k events.Key, _ uint64) (events.Consent, uint64, error) {
	s.asked.Add(1)
	return events.Consent{}, 0, nil
}

// TestTipsStaleHintIsDecidedAgain: whatever a stale hint makes an append
// decide (an event linked to the wrong tip, a transition it forbids, an
// expected_seq it misses), the stream's sequence check refuses it and the
// append is decided again on the stream: the history stays one chain with
// the events it would have had without hints.
func TestTipsStaleHintIsDecidedAgain(t *testing.T) {
	l, stream, js := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	tips := &staleTips{}
	hinted := ledger.New(js, stream, ledger.Options{Tips: tips, Keys: keysOf(stream)})
	ctx := t.Context()
	cmd := events.Command{SubjectID: "alice", Purpose: "newsletter"}

	// Another writer (no hints, no memory shared) makes every hint stale.
	_, err := l.Append(ctx, events.KindRequest, cmd)
	require.NoError(t, err)
	granted, err := l.Append(ctx, events.KindGrant, cmd)
	require.NoError(t, err)

	// Linked to "no events" by the hint: refused by the stream, decided again.
	requested, err := hinted.Append(ctx, events.KindRequest, events.Command{SubjectID: "alice", Purpose: "newsletter", PolicyVersion: 2})
	require.NoError(t, err)
	assert.False(t, requested.Duplicate)
	assert.Equal(t, granted.Event.Hash, requested.Event.PrevHash)

	// The hinted Ledger remembers its own append; the other writer moves on.
	regranted, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "alice", Purpose: "newsletter", PolicyVersion: 2})
	require.NoError(t, err)
	// Forbidden on its remembered state (requested), allowed on the
	// stream's (granted): decided again, not refused.
	revoked, err := hinted.Append(ctx, events.KindRevoke, cmd)
	require.NoError(t, err, "a revoke forbidden only by a stale hint")
	assert.Equal(t, regranted.Event.Hash, revoked.Event.PrevHash)

	// expected_seq that the stream meets but the hint misses.
	other := events.Command{SubjectID: "bob", Purpose: "newsletter"}
	first, err := l.Append(ctx, events.KindGrant, other)
	require.NoError(t, err)
	withSeq := other
	withSeq.ExpectedSeq = &first.Seq
	second, err := hinted.Append(ctx, events.KindRevoke, withSeq)
	require.NoError(t, err)
	assert.Equal(t, first.Event.Hash, second.Event.PrevHash)
	// ...and one neither meets is a mismatch, as without hints.
	stale := uint64(1)
	withSeq.ExpectedSeq = &stale
	_, err = hinted.Append(ctx, events.KindGrant, withSeq)
	var mismatch *ledger.SeqMismatchError
	require.ErrorAs(t, err, &mismatch)

	// A transition the stream's state forbids is still a 409.
	_, err = hinted.Append(ctx, events.KindRevoke, events.Command{SubjectID: "carol", Purpose: "newsletter"})
	require.ErrorIs(t, err, events.ErrForbidden)

	assert.Positive(t, tips.asked.Load())
	assert.Len(t, requireLinearChain(t, stream, natsSubjectOf(t, l, events.Key{Tenant: events.DefaultTenant, SubjectID: "alice", Purpose: "newsletter"})), 5)
	assert.Len(t, requireLinearChain(t, stream, natsSubjectOf(t, l, events.Key{Tenant: events.DefaultTenant, SubjectID: "bob", Purpose: "newsletter"})), 2)
}

// TestTipsFromTheIndexWithGroupCommit: concurrent appends told their
// consents' states by a live projector index (as consentd runs them),
// through group commit, land once each with every history one chain.
func TestTipsFromTheIndexWithGroupCommit(t *testing.T) {
	st := startStack(t, stackOptions{})
	l := ledger.New(st.js, st.stream, ledger.Options{Tips: st.index, GroupCommit: eager, Keys: st.keysOrNil()})
	ctx := t.Context()
	const people, rounds = 16, 4
	kinds := []events.Kind{events.KindGrant, events.KindRevoke, events.KindGrant, events.KindRevoke}
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, people)
		for i := range people {
			wg.Go(func() {
				_, errs[i] = l.Append(ctx, kinds[round], events.Command{SubjectID: fmt.Sprintf("person-%d", i), Purpose: "p"})
			})
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "round %d person %d", round, i)
		}
	}
	for i := range people {
		key := events.Key{Tenant: events.DefaultTenant, SubjectID: fmt.Sprintf("person-%d", i), Purpose: "p"}
		chain := requireLinearChain(t, st.stream, natsSubjectOf(t, l, key))
		require.Len(t, chain, rounds)
		for r, s := range chain {
			assert.Equal(t, kinds[r].EventType(), s.Event.Type)
		}
	}
}
