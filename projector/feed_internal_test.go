package projector

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lossyConsumers loses the next requests to create a consumer, as a
// request sent to a NATS server that dies with it, or while the stream has
// no leader: no answer until the caller's context ends.
type lossyConsumers struct {
	jetstream.Stream
	lost    atomic.Int32
	creates atomic.Int32
}

func (s *lossyConsumers) CreateOrUpdateConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	s.creates.Add(1)
	if s.lost.Add(-1) >= 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Stream.CreateOrUpdateConsumer(ctx, cfg)
}

// When its consumer goes away and the first request to create another is
// lost, the feed asks again after feedCreateTimeout (0.5s) and hands over
// every message once, in order: the index stands still about a second,
// not the 10s nats.go's ordered consumer waits for each lost request.
func TestFeedRecreatesItsConsumerAfterALostRequestWithinASecondOrSo(t *testing.T) {
	_, _, js := natstest.Run(t)
	stream := createStream(t, js, testStreamConfig())
	publish := func(n int) {
		for range n {
			_, err := js.Publish(t.Context(), "consent.events.default.feed.newsletter", []byte("x"))
			require.NoError(t, err)
		}
	}
	publish(3)
	lossy := &lossyConsumers{Stream: stream}
	got := make(chan uint64, 100)
	ctx, cancel := context.WithCancel(t.Context())
	f, err := startFeed(ctx, lossy, 2, 500*time.Millisecond, testLogger(t), func(_ jetstream.Msg, meta *jetstream.MsgMetadata) {
		got <- meta.Sequence.Stream
	})
	require.NoError(t, err)
	defer func() {
		cancel()
		<-f.Closed()
		assert.NoError(t, f.Err())
	}()
	next := func() uint64 {
		select {
		case seq := <-got:
			return seq
		case <-time.After(5 * time.Second):
			t.Fatal("no message in 5s")
			return 0
		}
	}
	assert.Equal(t, uint64(2), next())
	assert.Equal(t, uint64(3), next())

	lossy.lost.Store(1)
	f.mu.Lock()
	name := f.consumerName(f.serial)
	f.mu.Unlock()
	lost := time.Now()
	require.NoError(t, stream.DeleteConsumer(t.Context(), name))
	publish(2)
	assert.Equal(t, uint64(4), next())
	took := time.Since(lost)
	assert.Equal(t, uint64(5), next())
	assert.Equal(t, int32(3), lossy.creates.Load(), "the first, a lost one, and the one that worked")
	f.mu.Lock()
	assert.Equal(t, 3, f.serial, "each attempt asks for a consumer of its own name")
	f.mu.Unlock()
	assert.Less(t, took, 3*time.Second, "the feed stood still %s", took)
	t.Logf("the feed stood still %s after losing its consumer and a request to create another", took.Round(time.Millisecond))
	select {
	case seq := <-got:
		t.Fatalf("seq %d delivered twice or out of order", seq)
	default:
	}
}
