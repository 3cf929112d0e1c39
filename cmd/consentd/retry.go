package main

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// bucketAttempt bounds one attempt to open a bucket: right after a
// cluster elected the stream's leader, a new replicated bucket may take
// seconds to get a leader of its own.
const bucketAttempt = 5 * time.Second

// retryUnanswered calls open with attempts of bucketAttempt until it
// succeeds, fails with an error an attempt more cannot change, or ctx
// ends. Unanswered requests (timeouts, no responders, a JetStream API
// that answers 503 while the cluster settles) are tried again, and logged
// about every 10 seconds.
func (m *Main) retryUnanswered(ctx context.Context, what string, open func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		attemptCtx, cancel := context.WithTimeout(ctx, bucketAttempt)
		err := open(attemptCtx)
		cancel()
		if err == nil || ctx.Err() != nil || !unanswered(err) {
			return err
		}
		if attempt%2 == 0 {
			m.log.Warn(what+" not ready yet; retrying", "error", err, "attempts", attempt+1)
		}
	}
}

// unanswered reports whether err says that nobody answered in time, not
// that the request was refused.
func unanswered(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		(errors.As(err, &apiErr) && apiErr.Code == 503)
}
