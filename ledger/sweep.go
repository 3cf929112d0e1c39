package ledger

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/consentledger/consent/events"
)

// runSweeps is the loop of the Expirer and the Retainer: sweep until ctx
// ends, then return nil; sweep again after interval, or sooner at the
// next time the last sweep knows something becomes due. A sweep that
// fails is logged as name's, unless the index is not ready or the stream
// is unsafe (both say so elsewhere), and tried again after interval.
func runSweeps(ctx context.Context, name string, interval time.Duration, now func() time.Time, log *slog.Logger,
	sweep func(context.Context) (time.Time, error)) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		next, err := sweep(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := interval
		if err != nil {
			if !errors.Is(err, events.ErrNotReady) && !errors.Is(err, ErrUnsafeStream) {
				log.Warn(name+": sweep failed", "error", err)
			}
		} else if !next.IsZero() {
			wait = min(wait, max(next.Sub(now()), 0))
		}
		timer.Reset(wait)
	}
}

// indexWaiter is the part of an index a sweep waits on.
type indexWaiter interface {
	Wait(ctx context.Context, minSeq uint64) (uint64, error)
}

// awaitOwnAppends waits, at most interval, until the index has applied
// lastSeq, the last event a sweep appended, so that the next sweep does
// not see its work as still to do. It returns ctx's error when ctx ends;
// an index that stays behind is only logged (the next sweep's checks
// catch what it would do again).
func awaitOwnAppends(ctx context.Context, name string, src indexWaiter, lastSeq uint64, interval time.Duration, log *slog.Logger) error {
	if lastSeq == 0 {
		return nil
	}
	waitCtx, cancel := context.WithTimeout(ctx, interval)
	_, err := src.Wait(waitCtx, lastSeq)
	cancel()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		log.Debug(name+": index behind its own appends", "seq", lastSeq, "error", err)
	}
	return nil
}
