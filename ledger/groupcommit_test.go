package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eager gathers any two concurrent appends into a batch and never waits.
var eager = &ledger.GroupCommit{MinBatch: 2, Linger: -1}

// Concurrent appends through group commit land in batches, each reply
// naming the seq that holds its event, and every consent's history stays
// one hash chain.
func TestGroupCommitConcurrentAppends(t *testing.T) {
	ledger.ForTopologies(t, func(t *testing.T, top ledger.Topology) {
		l, stream, _ := startLedgerOn(t, top, ledger.StreamOptions{}, ledger.Options{GroupCommit: eager})
		ctx := t.Context()
		const people, rounds = 24, 3
		for round := range rounds {
			replies := make([]wire.Reply, people)
			errs := make([]error, people)
			var wg sync.WaitGroup
			for i := range people {
				wg.Go(func() {
					kind := events.KindGrant
					if round == 1 {
						kind = events.KindRevoke
					}
					replies[i], errs[i] = l.Append(ctx, kind, events.Command{SubjectID: fmt.Sprintf("person-%d", i), Purpose: "p"})
				})
			}
			wg.Wait()
			for i := range people {
				require.NoError(t, errs[i], "round %d person %d", round, i)
				msg, err := stream.GetMsg(ctx, replies[i].Seq)
				require.NoError(t, err)
				ev, err := events.Decode(msg.Data)
				require.NoError(t, err)
				assert.Equal(t, replies[i].Event.ID, ev.ID, "round %d person %d: the reply's seq holds its event", round, i)
				assert.False(t, replies[i].Duplicate)
			}
		}
		for i := range people {
			key := events.Key{Tenant: events.DefaultTenant, SubjectID: fmt.Sprintf("person-%d", i), Purpose: "p"}
			assert.Len(t, requireLinearChain(t, stream, natsSubjectOf(t, l, key)), rounds)
		}
		stats, ok := l.GroupCommitStats()
		require.True(t, ok)
		assert.Positive(t, stats.Batches)
		assert.Equal(t, uint64(people*rounds), stats.Batched+stats.Singles)
	})
}

// Several processes, each with its own group committer, race on one
// consent while each also appends to consents of its own: batches that
// meet a conflict fall back, every append lands exactly once, and every
// history is one chain.
func TestGroupCommitRacingProcesses(t *testing.T) {
	ledger.ForTopologies(t, func(t *testing.T, top ledger.Topology) {
		js := top.JetStream(t)
		ctx := t.Context()
		stream := top.EnsureStream(t, js, ledger.StreamOptions{})
		reads := ledger.LeaderReads(t, js, stream)
		const processes, own, rounds = 3, 6, 5
		ledgers := make([]*ledger.Ledger, processes)
		for p := range ledgers {
			ledgers[p] = ledger.New(js, stream, ledger.Options{GroupCommit: eager, MaxRetries: 2 * processes})
		}
		raced := events.Key{Tenant: events.DefaultTenant, SubjectID: "raced", Purpose: "p"}
		for round := range rounds {
			start := make(chan struct{})
			var mu sync.Mutex
			var errs []error
			var wg sync.WaitGroup
			appendAt := func(l *ledger.Ledger, subjectID string) {
				wg.Go(func() {
					<-start
					_, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: subjectID, Purpose: "p"})
					if err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("round %d %s: %w", round, subjectID, err))
						mu.Unlock()
					}
				})
			}
			for p, l := range ledgers {
				appendAt(l, raced.SubjectID)
				for i := range own {
					appendAt(l, fmt.Sprintf("p%d-person-%d", p, i))
				}
			}
			close(start)
			wg.Wait()
			require.Empty(t, errs)
		}
		assert.Len(t, requireLinearChain(t, reads, raced.NATSSubject()), processes*rounds)
		for p := range processes {
			for i := range own {
				key := events.Key{Tenant: events.DefaultTenant, SubjectID: fmt.Sprintf("p%d-person-%d", p, i), Purpose: "p"}
				assert.Len(t, requireLinearChain(t, reads, key.NATSSubject()), rounds)
			}
		}
		assert.Equal(t, uint64(processes*(own+1)*rounds), storedCount(t, reads))
		for p, l := range ledgers {
			stats, _ := l.GroupCommitStats()
			t.Logf("process %d: %+v", p, stats)
		}
	})
}

// With group commit the command semantics are those of a lone append: a
// stale expected_seq is a mismatch, a forbidden transition is refused, and
// a repeated idempotency key returns the first reply, and the same key on
// another consent is another command.
func TestGroupCommitKeepsCommandSemantics(t *testing.T) {
	ledger.ForTopologies(t, func(t *testing.T, top ledger.Topology) {
		l, stream, _ := startLedgerOn(t, top, ledger.StreamOptions{}, ledger.Options{GroupCommit: eager})
		ctx := context.Background()
		first, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "a", Purpose: "p", IdempotencyKey: "k"})
		require.NoError(t, err)

		// Concurrent appends so that they share batches.
		var wg sync.WaitGroup
		var stale, forbidden, repeat, elsewhere, fresh error
		var repeatReply, elsewhereReply wire.Reply
		wg.Go(func() {
			_, stale = l.Append(ctx, events.KindGrant, events.Command{SubjectID: "a", Purpose: "p", ExpectedSeq: ptr(uint64(7))})
		})
		wg.Go(func() {
			_, forbidden = l.Append(ctx, events.KindRevoke, events.Command{SubjectID: "never-granted", Purpose: "p"})
		})
		wg.Go(func() {
			repeatReply, repeat = l.Append(ctx, events.KindGrant, events.Command{SubjectID: "a", Purpose: "p", IdempotencyKey: "k"})
		})
		wg.Go(func() {
			elsewhereReply, elsewhere = l.Append(ctx, events.KindGrant, events.Command{SubjectID: "b", Purpose: "p", IdempotencyKey: "k"})
		})
		wg.Go(func() {
			_, fresh = l.Append(ctx, events.KindGrant, events.Command{SubjectID: "c", Purpose: "p"})
		})
		wg.Wait()

		require.ErrorIs(t, stale, ledger.ErrSeqMismatch)
		require.ErrorIs(t, forbidden, events.ErrForbidden)
		require.NoError(t, repeat)
		requireSameReply(t, first, repeatReply)
		require.NoError(t, elsewhere)
		assert.False(t, elsewhereReply.Duplicate)
		assert.Equal(t, "b", elsewhereReply.Event.SubjectID)
		require.NoError(t, fresh)
		assert.Equal(t, uint64(3), storedCount(t, stream), "the first grants of a, b and c")
	})
}

// A stream that does not allow atomic publish gets no group commit.
func TestGroupCommitNeedsAtomicPublish(t *testing.T) {
	_, _, js := natstest.Run(t)
	cfg := ledger.StreamOptions{}.Config()
	cfg.AllowAtomicPublish = false
	stream, err := js.CreateStream(t.Context(), cfg)
	require.NoError(t, err)
	l := ledger.New(js, stream, ledger.Options{GroupCommit: eager})
	_, ok := l.GroupCommitStats()
	assert.False(t, ok)
	_, err = l.Append(t.Context(), events.KindGrant, events.Command{SubjectID: "a", Purpose: "p"})
	require.NoError(t, err)
}
