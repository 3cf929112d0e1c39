package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAppendOnReplicatedStream runs the concurrency checks on a stream with
// three replicas, where a conflict is error 10164 rather than 10071 and
// direct gets may be answered by a follower a little behind the leader.
func TestAppendOnReplicatedStream(t *testing.T) {
	c := natstest.RunCluster(t, 3)
	nc, err := nats.Connect(c.URLs())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js := natstest.JetStream(t, nc)
	ctx := context.Background()
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{Replicas: 3})
	require.NoError(t, err)
	require.Equal(t, 3, stream.CachedInfo().Config.Replicas)

	t.Run("exactly one writer wins each round", func(t *testing.T) {
		var mu sync.Mutex
		codes := map[jetstream.ErrorCode]int{}
		recording := &faultyJetStream{JetStream: js}
		recording.publishF = func(_ int, ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
			ack, err := js.PublishMsg(ctx, m, opts...)
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) {
				mu.Lock()
				codes[apiErr.ErrorCode]++
				mu.Unlock()
			}
			return ack, err
		}
		ledgers := make([]*ledger.Ledger, 4)
		for i := range ledgers {
			ledgers[i] = ledger.New(recording, stream, ledger.Options{})
		}
		runExpectedSeqRounds(t, ledgers, stream, 6)
		mu.Lock()
		defer mu.Unlock()
		// Conflicts with a write still being replicated are 10164; with
		// one already applied, 10071: both must have been handled.
		assert.Positive(t, codes[jetstream.JSErrCodeStreamWrongLastSequenceConstant], "the rounds should have met 10164")
		t.Logf("publish errors by code: %v", codes)
	})
	t.Run("racing writers all land", func(t *testing.T) {
		runRacingWriters(t, js, stream, 3, 4)
	})
	t.Run("a repeated idempotency key appends nothing", func(t *testing.T) {
		l := ledger.New(js, stream, ledger.Options{})
		cmd := events.Command{SubjectID: "replicated", Purpose: "p", IdempotencyKey: "r3-key"}
		first, err := l.Append(ctx, events.KindGrant, cmd)
		require.NoError(t, err)
		again, err := l.Append(ctx, events.KindGrant, cmd)
		require.NoError(t, err)
		assert.True(t, again.Duplicate)
		assert.Equal(t, first.Seq, again.Seq)
		assert.Equal(t, first.Event.ID, again.Event.ID)
	})
}
