package projector

import (
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
func (i *Index) Wait(ctx context.Context, minSeq uint64) (uint64, error) {
	if i.ready.Load() && !i.closed.Load() {
		if cp := i.checkpoint.Load(); cp >= minSeq {
			return cp, nil
		}
	}
	for {
		// Take the channel before checking, so that a commit between the
		// check and the select closes the channel we wait on.
		i.notifyMu.Lock()
		advanced := i.advanced
		i.notifyMu.Unlock()

		cp := i.checkpoint.Load()
		switch {
		case i.closed.Load():
			return cp, notReady("closed")
		case i.ready.Load() && cp >= minSeq:
			return cp, nil
		case i.failed.Load():
			return cp, notReady("the projector stopped on an error")
		case !i.ready.Load() && minSeq == 0:
			if !i.running.Load() {
				return cp, notReady("no projector is running")
			}
			return cp, notReady(fmt.Sprintf("catching up (at seq %d)", cp))
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return cp, fmt.Errorf("%w: index at seq %d, min_seq %d (%v)", events.ErrStale, i.checkpoint.Load(), minSeq, ctx.Err())
		}
	}
}

// notify wakes every waiter.
func (i *Index) notify() {
	i.notifyMu.Lock()
	close(i.advanced)
	i.advanced = make(chan struct{})
	i.notifyMu.Unlock()
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
