package projector

import (
	"context"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A commit wakes only the callers of Wait whose sequence it reaches; the
// others stay in the heap, costing the commit nothing, until their
// sequence comes, their context ends (which takes them out) or the index
// closes.
func TestWaitWakesOnlyTheWaitersACommitReaches(t *testing.T) {
	idx := openIndex(t, t.TempDir(), IndexOptions{ReadyOnOpen: true})
	advance := func(seq uint64) {
		idx.checkpoint.Store(seq)
		idx.notify()
	}
	type result struct {
		seq uint64
		err error
	}
	wait := func(ctx context.Context, minSeq uint64) <-chan result {
		done := make(chan result, 1)
		go func() {
			seq, err := idx.Wait(ctx, minSeq)
			done <- result{seq, err}
		}()
		return done
	}
	farCtx, cancelFar := context.WithCancel(t.Context())
	defer cancelFar()
	five, ten, far := wait(t.Context(), 5), wait(t.Context(), 10), wait(farCtx, 1<<40)
	closing := wait(t.Context(), 1<<41)
	require.Eventually(t, func() bool { return idx.waiting() == 4 }, 10*time.Second, time.Millisecond)

	advance(4)
	assert.Equal(t, 4, idx.waiting(), "seq 4 reaches none")
	advance(7)
	r := recv(t, five)
	require.NoError(t, r.err)
	assert.Equal(t, uint64(7), r.seq)
	assert.Equal(t, 3, idx.waiting())
	advance(10)
	r = recv(t, ten)
	require.NoError(t, r.err)
	assert.Equal(t, uint64(10), r.seq)
	assert.Equal(t, 2, idx.waiting())

	cancelFar()
	r = recv(t, far)
	require.ErrorIs(t, r.err, events.ErrStale)
	assert.Equal(t, 1, idx.waiting(), "a caller whose context ended leaves the heap")

	require.NoError(t, idx.Close())
	r = recv(t, closing)
	require.ErrorIs(t, r.err, events.ErrNotReady)
	assert.Equal(t, 0, idx.waiting())
}

// StreamSeq is the highest of the checkpoint and what the projector learnt
// of the stream.
func TestIndexStreamSeq(t *testing.T) {
	idx := openIndex(t, t.TempDir(), IndexOptions{ReadyOnOpen: true})
	assert.Equal(t, uint64(0), idx.StreamSeq())
	idx.noteStreamSeq(12)
	assert.Equal(t, uint64(12), idx.StreamSeq())
	idx.noteStreamSeq(3)
	assert.Equal(t, uint64(12), idx.StreamSeq(), "it never goes back")
	idx.checkpoint.Store(20)
	assert.Equal(t, uint64(20), idx.StreamSeq())
}

// recv returns the next value from ch, failing the test when none arrives
// in 10s.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received in 10s")
		panic("unreachable")
	}
}
