package projector

import (
	"container/heap"
	"context"
	"fmt"

	"github.com/consentledger/consent/events"
)

// Wait returns once the index answers reads and has applied minSeq,
// returning the checkpoint. It waits on a notification of each commit, not
// by polling, also while no projector runs yet. When ctx ends first it
// returns an error matching events.ErrStale. It returns one matching
// events.ErrNotReady at once when waiting is pointless or not asked for:
// the index is closed, its projector stopped on an error, or minSeq is 0
// and the index is not ready (no projector yet, or still catching up).
//
// A caller waiting for a sequence while the index is ready costs a small
// record in a heap ordered by sequence, and a commit wakes only the
// callers whose sequence it reaches: a thousand callers waiting for a far
// sequence cost each commit nothing.
func (i *Index) Wait(ctx context.Context, minSeq uint64) (uint64, error) {
	if i.ready.Load() && !i.closed.Load() {
		if cp := i.checkpoint.Load(); cp >= minSeq {
			return cp, nil
		}
	}
	for {
		// Check and register under notifyMu, which notify holds while it
		// wakes: a commit between the check and the select wakes us.
		i.notifyMu.Lock()
		cp := i.checkpoint.Load()
		var err error
		done := true
		switch {
		case i.closed.Load():
			err = notReady("closed")
		case i.ready.Load() && cp >= minSeq:
		case i.failed.Load():
			err = notReady("the projector stopped on an error")
		case !i.ready.Load() && minSeq == 0:
			if !i.running.Load() {
				err = notReady("no projector is running")
			} else {
				err = notReady(fmt.Sprintf("catching up (at seq %d)", cp))
			}
		default:
			done = false
		}
		if done {
			i.notifyMu.Unlock()
			return cp, err
		}
		var w *seqWaiter
		wake := i.advanced // not ready: any change may be the one
		if i.ready.Load() {
			w = &seqWaiter{seq: minSeq, wake: make(chan struct{})}
			heap.Push(&i.waiters, w)
			wake = w.wake
		}
		i.notifyMu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			if w != nil {
				i.notifyMu.Lock()
				if w.at >= 0 {
					heap.Remove(&i.waiters, w.at)
				}
				i.notifyMu.Unlock()
			}
			return cp, fmt.Errorf("%w: index at seq %d, min_seq %d (%v)", events.ErrStale, i.checkpoint.Load(), minSeq, ctx.Err())
		}
	}
}

// notify wakes the followers of Changed, the callers of Wait whose
// sequence the checkpoint has reached, and every caller of Wait when the
// index stopped answering (closed, failed or no longer ready). Callers
// store the new checkpoint or state before they call it.
func (i *Index) notify() {
	i.notifyMu.Lock()
	defer i.notifyMu.Unlock()
	close(i.advanced)
	i.advanced = make(chan struct{})
	cp := i.checkpoint.Load()
	all := i.closed.Load() || i.failed.Load() || !i.ready.Load()
	for len(i.waiters) > 0 && (all || i.waiters[0].seq <= cp) {
		close(heap.Pop(&i.waiters).(*seqWaiter).wake)
	}
}

// waiting returns how many callers of Wait wait in the heap.
func (i *Index) waiting() int {
	i.notifyMu.Lock()
	defer i.notifyMu.Unlock()
	return len(i.waiters)
}

func notReady(why string) error {
	return fmt.Errorf("%w: %s", events.ErrNotReady, why)
}

// Changed returns a channel that is closed the next time the checkpoint
// advances or the index's readiness changes, for callers that follow
// progress (Wait is the way to wait for a sequence).
func (i *Index) Changed() <-chan struct{} {
	i.notifyMu.Lock()
	defer i.notifyMu.Unlock()
	return i.advanced
}

// StreamSeq returns the last stream sequence the index knows to exist: the
// highest of its checkpoint and what its projector last learnt from the
// stream (a delivered message's sequence plus the number still pending
// after it, or the stream's last sequence when the projector started). It
// lags the stream by the projector's delivery delay. The consent service
// uses it to answer at once a min_seq the stream has not assigned.
func (i *Index) StreamSeq() uint64 {
	return max(i.streamSeq.Load(), i.checkpoint.Load())
}

// noteStreamSeq records that the stream holds seq; only the projector
// holding the index calls it.
func (i *Index) noteStreamSeq(seq uint64) {
	if seq > i.streamSeq.Load() {
		i.streamSeq.Store(seq)
	}
}

// seqWaiter is a caller of Wait waiting, while the index is ready, for the
// checkpoint to reach seq; notify closes wake.
type seqWaiter struct {
	seq  uint64
	wake chan struct{}
	at   int // position in the heap; -1 once out of it
}

// seqWaiters is a min-heap of waiters by sequence (container/heap),
// guarded by Index.notifyMu.
type seqWaiters []*seqWaiter

func (h seqWaiters) Len() int           { return len(h) }
func (h seqWaiters) Less(a, b int) bool { return h[a].seq < h[b].seq }
func (h seqWaiters) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].at, h[b].at = a, b
}

func (h *seqWaiters) Push(x any) {
	w := x.(*seqWaiter)
	w.at = len(*h)
	*h = append(*h, w)
}

func (h *seqWaiters) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.at = -1
	return w
}
