package ledger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// attempt sends a request again while it goes unanswered (timeout, no
// responders, no stream leader), and never when it was answered, also
// with an error.
func TestAttemptRetriesOnlyUnansweredRequests(t *testing.T) {
	noLeader := &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}
	inProcess := &jetstream.APIError{Code: 409, ErrorCode: errCodeMsgIDInProcess, Description: "duplicate message id is in process"}
	for _, lost := range []error{context.DeadlineExceeded, nats.ErrTimeout, nats.ErrNoResponders, noLeader, inProcess} {
		t.Run(lost.Error(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			calls := 0
			err := attempt(ctx, 50*time.Millisecond, func(ctx context.Context) error {
				calls++
				if calls < 3 {
					if errors.Is(lost, context.DeadlineExceeded) {
						<-ctx.Done() // unanswered: the attempt's own timeout ends it
						return ctx.Err()
					}
					return lost
				}
				return nil
			})
			require.NoError(t, err)
			assert.Equal(t, 3, calls)
		})
	}
	t.Run("an answer is not sent again", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		calls := 0
		err := attempt(ctx, time.Second, func(context.Context) error {
			calls++
			return jetstream.ErrMsgNotFound
		})
		require.ErrorIs(t, err, jetstream.ErrMsgNotFound)
		assert.Equal(t, 1, calls)
	})
	t.Run("not beyond the caller's deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 120*time.Millisecond)
		defer cancel()
		err := attempt(ctx, 50*time.Millisecond, func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Error(t, ctx.Err())
	})
}

// Without a deadline there is no time to retry within: one attempt.
func TestAttemptWithoutADeadlineTriesOnce(t *testing.T) {
	calls := 0
	err := attempt(t.Context(), 10*time.Millisecond, func(context.Context) error {
		calls++
		return nats.ErrNoResponders
	})
	require.ErrorIs(t, err, nats.ErrNoResponders)
	assert.Equal(t, 1, calls)
}
