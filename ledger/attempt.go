package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultReadAttemptTimeout is the default Options.ReadAttemptTimeout: a
// healthy cluster answers a read of the stream in a few milliseconds.
const DefaultReadAttemptTimeout = 500 * time.Millisecond

// attempt runs op with a context that ends after per (or with ctx), and
// runs it again after a short backoff while it fails for want of an answer
// (see unanswered) and ctx has time left. A request that a dying stream
// leader takes with it, or that is sent while the stream has no leader,
// so holds its caller (and the consent's lock) for one attempt, not for
// the whole command. op must be safe to repeat. It returns op's last error,
// or ctx's when ctx ends during the backoff. Without a deadline on ctx
// there is no time to retry within: op runs once, bounded by its own
// default timeout.
func attempt(ctx context.Context, per time.Duration, op func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		return op(ctx)
	}
	for n := 0; ; n++ {
		actx, cancel := context.WithTimeout(ctx, per)
		err := op(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !unanswered(err) {
			return err
		}
		if berr := backoff(ctx, n); berr != nil {
			return errors.Join(err, berr)
		}
	}
}

// errCodeMsgIDInProcess is JetStream's answer to a publish whose
// Nats-Msg-Id is that of a message still being stored (an earlier attempt
// of the same publish, sent again after it went unanswered).
const errCodeMsgIDInProcess = 10158

// unanswered reports whether a request failed for want of an answer
// rather than with one: no reply in time, no responders, JetStream saying
// it cannot serve the stream now (a 503 API error: no stream leader, the
// cluster or the stream temporarily unavailable), or that an earlier
// attempt of the same publish is still being stored. Such a request is
// safe to send again.
func unanswered(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.Code == 503 || apiErr.ErrorCode == errCodeMsgIDInProcess)
}
