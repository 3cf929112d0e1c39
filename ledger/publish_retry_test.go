package ledger_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lossyJetStream loses the reply to the first publish, as a stream leader
// that dies with the request does: the message is stored first or not at
// all (stored), and the publisher hears nothing until its context ends.
type lossyJetStream struct {
	jetstream.JetStream
	stored     bool
	afterStore func() // runs after the first attempt is stored
	publishes  atomic.Int32
}

func (j *lossyJetStream) PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if j.publishes.Add(1) > 1 {
		return j.JetStream.PublishMsg(ctx, msg, opts...)
	}
	if j.stored {
		if _, err := j.JetStream.PublishMsg(ctx, msg, opts...); err != nil {
			return nil, err
		}
		if j.afterStore != nil {
			j.afterStore()
		}
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestUnansweredPublishIsSentAgain: an append whose publish goes
// unanswered sends the same message again after PublishAttemptTimeout,
// and lands exactly once whether or not the first attempt was stored,
// answered as a fresh append (not a duplicate of itself).
func TestUnansweredPublishIsSentAgain(t *testing.T) {
	for _, stored := range []bool{false, true} {
		t.Run(map[bool]string{false: "lost before storing", true: "stored, ack lost"}[stored], func(t *testing.T) {
			_, _, js := natstest.Run(t)
			stream, err := ledger.EnsureStream(t.Context(), js, ledger.StreamOptions{})
			require.NoError(t, err)
			lossy := &lossyJetStream{JetStream: js, stored: stored}
			l := ledger.New(lossy, stream, ledger.Options{PublishAttemptTimeout: 250 * time.Millisecond})

			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			reply, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "alice", Purpose: "newsletter"})
			require.NoError(t, err)
			assert.False(t, reply.Duplicate, "the event's own first attempt is not a duplicate")
			// Two attempts, or more when a loaded machine is slower than
			// the attempt timeout: the outcome is the same.
			assert.GreaterOrEqual(t, lossy.publishes.Load(), int32(2))
			assert.Equal(t, uint64(1), reply.Seq)

			info, err := stream.Info(t.Context())
			require.NoError(t, err)
			assert.Equal(t, uint64(1), info.State.Msgs, "one event, whatever happened to the first attempt")
			h, err := l.History(t.Context(), wire.HistoryQuery{SubjectID: "alice", Purpose: "newsletter"})
			require.NoError(t, err)
			require.Len(t, h.Events, 1)
			assert.Equal(t, reply.Event.ID, h.Events[0].Event.ID)
		})
	}
}

// TestUnansweredPublishOvertaken: the unanswered first attempt was stored
// and another writer appended to the consent after it; the second attempt
// meets a conflict, and the append still returns its own event, once.
func TestUnansweredPublishOvertaken(t *testing.T) {
	_, _, js := natstest.Run(t)
	stream, err := ledger.EnsureStream(t.Context(), js, ledger.StreamOptions{})
	require.NoError(t, err)
	other := ledger.New(js, stream, ledger.Options{})
	cmd := events.Command{SubjectID: "alice", Purpose: "newsletter"}
	lossy := &lossyJetStream{JetStream: js, stored: true, afterStore: func() {
		_, err := other.Append(context.Background(), events.KindRevoke, cmd)
		assert.NoError(t, err)
	}}
	l := ledger.New(lossy, stream, ledger.Options{PublishAttemptTimeout: 250 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	reply, err := l.Append(ctx, events.KindGrant, cmd)
	require.NoError(t, err)
	assert.False(t, reply.Duplicate)
	assert.Equal(t, uint64(1), reply.Seq)
	assert.Equal(t, events.TypeGranted, reply.Event.Type)
	h, err := l.History(t.Context(), wire.HistoryQuery{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	require.Len(t, h.Events, 2, "the grant once, then the other writer's revoke")
	assert.Equal(t, reply.Event.ID, h.Events[0].Event.ID)
	assert.Equal(t, events.TypeRevoked, h.Events[1].Event.Type)
}

// TestUnansweredPublishWithShortDuplicateWindow: on a stream whose
// duplicate window could pass before a second attempt, an unanswered
// publish is not sent again (it could store the event twice): the append
// fails with its context.
func TestUnansweredPublishWithShortDuplicateWindow(t *testing.T) {
	_, _, js := natstest.Run(t)
	stream, err := ledger.EnsureStream(t.Context(), js, ledger.StreamOptions{Duplicates: 150 * time.Millisecond})
	require.NoError(t, err)
	lossy := &lossyJetStream{JetStream: js}
	l := ledger.New(lossy, stream, ledger.Options{PublishAttemptTimeout: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err = l.Append(ctx, events.KindGrant, events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, int32(1), lossy.publishes.Load())
}
