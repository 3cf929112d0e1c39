package ledger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// headReader is a fakeReader that also tells the stream's last sequence,
// as the projector's index does (its own sequence).
type headReader struct{ *fakeReader }

func (h headReader) StreamSeq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}

// endpointData returns the data of every endpoint in $SRV.STATS, by subject.
func endpointData(t *testing.T, svc *ledger.Service) map[string]map[string]any {
	t.Helper()
	data := map[string]map[string]any{}
	for _, e := range svc.Stats().Endpoints {
		var d map[string]any
		require.NoError(t, json.Unmarshal(e.Data, &d), e.Subject)
		data[e.Subject] = d
	}
	return data
}

// A min_seq further than MinSeqMargin beyond the stream's last sequence is
// answered 503 at once, without waiting: the reader is never asked to wait
// and no goroutine answers it (nothing answered asynchronously).
func TestServiceAnswersAMinSeqBeyondTheStreamAtOnce(t *testing.T) {
	reader := newFakeReader(5)
	env := startService(t, headReader{reader}, ledger.ServiceConfig{MinSeqTimeout: time.Hour})
	beyond := uint64(5 + ledger.MinSeqMargin + 1)
	for _, call := range []func(ctx context.Context) error{
		func(ctx context.Context) error {
			_, err := env.client.Status(ctx, wire.StatusQuery{SubjectID: "a", Purpose: "p", MinSeq: beyond})
			return err
		},
		func(ctx context.Context) error {
			_, err := env.client.Check(ctx, wire.StatusQuery{SubjectID: "a", Purpose: "p", MinSeq: beyond})
			return err
		},
		func(ctx context.Context) error {
			_, err := env.client.List(ctx, wire.ListQuery{SubjectID: "a", MinSeq: 1 << 60})
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := call(ctx)
		cancel()
		require.ErrorIs(t, err, wire.ErrUnavailable)
		assert.Contains(t, err.Error(), "is beyond the stream's last sequence (5, as this instance knows it)")
	}
	assert.Empty(t, reader.waiting, "no lookup waited")
	data := endpointData(t, env.svc)
	for _, subj := range []string{wire.SubjectStatus, wire.SubjectCheck, wire.SubjectList} {
		assert.Equal(t, float64(1), data[subj]["min_seq_beyond_stream"], subj)
		assert.Equal(t, float64(0), data[subj]["answered_async"], subj)
	}

	// Within the margin a lookup waits, as for a write the index has not
	// applied yet.
	waited := make(chan error, 1)
	go func() {
		_, err := env.client.Status(context.Background(), wire.StatusQuery{SubjectID: "a", Purpose: "p", MinSeq: beyond - 1})
		waited <- err
	}()
	require.Equal(t, beyond-1, receive(t, reader.waiting))
	reader.advance(beyond - 1)
	require.NoError(t, receive(t, waited))
}

// Beyond what the index has seen, the service reads the stream's last
// sequence from the stream, so that a min_seq the stream holds is waited
// for once the index lags by more than the margin.
func TestServiceLearnsTheStreamsLastSequenceFromTheStream(t *testing.T) {
	env := startService(t, headReader{newFakeReader(0)}, ledger.ServiceConfig{MinSeqTimeout: 10 * time.Millisecond})
	js, err := jetstream.New(env.nc)
	require.NoError(t, err)
	const stored uint64 = ledger.MinSeqMargin + 100
	for i := range stored {
		_, err := js.PublishAsync(fmt.Sprintf("consent.events.acme.p.s%d", i), []byte("{}"))
		require.NoError(t, err)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publishes not acknowledged in 30s")
	}

	q := wire.StatusQuery{SubjectID: "a", Purpose: "p", MinSeq: stored}
	_, err = env.client.Status(t.Context(), q)
	require.ErrorIs(t, err, wire.ErrUnavailable)
	assert.Contains(t, err.Error(), "beyond the stream's last sequence (0,")
	// That answer started a read of the stream's info; once it is in, the
	// lookup waits (and times out: the fake index never gets there).
	require.Eventually(t, func() bool {
		_, err := env.client.Status(t.Context(), q)
		return err != nil && strings.Contains(err.Error(), "index has not reached min_seq in time")
	}, 10*time.Second, 10*time.Millisecond)

	// A min_seq beyond the stream's last sequence is still answered at once.
	_, err = env.client.Status(t.Context(), wire.StatusQuery{SubjectID: "a", Purpose: "p", MinSeq: stored + ledger.MinSeqMargin + 1})
	require.ErrorIs(t, err, wire.ErrUnavailable)
	assert.Contains(t, err.Error(), fmt.Sprintf("beyond the stream's last sequence (%d,", stored))
}

// Lookups waiting for min_seq take slots of their own (MaxWaiting): with
// every one taken, another is answered 503 at once instead of queueing.
func TestServiceAnswersMinSeqLookupsOverMaxWaitingAtOnce(t *testing.T) {
	reader := newFakeReader(1)
	env := startService(t, headReader{reader}, ledger.ServiceConfig{MinSeqTimeout: time.Hour, MaxWaiting: 2})
	waited := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := env.client.Status(context.Background(), wire.StatusQuery{SubjectID: "a", Purpose: "p", MinSeq: 2})
			waited <- err
		}()
		require.Equal(t, uint64(2), receive(t, reader.waiting))
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := env.client.Status(ctx, wire.StatusQuery{SubjectID: "a", Purpose: "p", MinSeq: 2})
	require.ErrorIs(t, err, wire.ErrUnavailable)
	assert.Contains(t, err.Error(), "too many lookups waiting for min_seq")
	// Lookups without min_seq and commands are not held up.
	_, err = env.client.Status(ctx, wire.StatusQuery{SubjectID: "a", Purpose: "p"})
	require.NoError(t, err)
	_, err = env.client.Grant(ctx, events.Command{SubjectID: "a", Purpose: "p"})
	require.NoError(t, err)

	reader.advance(2)
	require.NoError(t, receive(t, waited))
	require.NoError(t, receive(t, waited))
	assert.Equal(t, float64(1), endpointData(t, env.svc)[wire.SubjectStatus]["wait_pool_full"])
}

// During a flood of fire-and-forget lookups with far-future min_seq and
// with min_seq not reached yet, a grant is acknowledged and a plain lookup
// answered. Before lookups waiting for min_seq had their own pool, each
// held one of the commands' MaxInFlight slots for MinSeqTimeout, and the
// grant waited minutes for one.
func TestServiceCommandsAndLookupsGoOnDuringAMinSeqFlood(t *testing.T) {
	reader := newFakeReader(1)
	reader.waiting = make(chan uint64, 1<<15) // room for every waiter's announcement
	env := startService(t, headReader{reader}, ledger.ServiceConfig{Logger: slog.New(slog.DiscardHandler)})

	const flood = 20000
	for i := range flood {
		minSeq := uint64(1 << 40) // far beyond the stream
		if i%2 == 1 {
			minSeq = 2 + uint64(i)%ledger.MinSeqMargin // not reached yet
		}
		body := fmt.Appendf(nil, `{"subject":"s%d","purpose":"p","min_seq":%d}`, i, minSeq)
		// A reply subject nobody listens to: the service answers, the
		// server drops the answer.
		require.NoError(t, env.nc.PublishRequest(wire.SubjectStatus, "_INBOX.flood", body))
	}
	require.NoError(t, env.nc.Flush())

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := env.client.Grant(ctx, events.Command{SubjectID: "alice", Purpose: "marketing"})
	require.NoError(t, err, "a grant during the flood")
	// The flood fills the status endpoint's pending limit, over which the
	// server drops requests (bounded memory): a caller's lookup may be
	// dropped as any flooded endpoint's, and a caller asks again, as here.
	// What must not happen is a lookup held up for MinSeqTimeout.
	for {
		attemptCtx, cancelAttempt := context.WithTimeout(ctx, time.Second)
		_, err = env.client.Status(attemptCtx, wire.StatusQuery{SubjectID: "alice", Purpose: "marketing"})
		cancelAttempt()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	require.NoError(t, err, "a plain lookup during the flood")
}

// A lookup published without a reply subject is not worked on: nobody
// waits for its answer and a lookup changes nothing.
func TestServiceIgnoresLookupsWithoutAReplySubject(t *testing.T) {
	reader := newFakeReader(1)
	env := startService(t, headReader{reader}, ledger.ServiceConfig{MinSeqTimeout: time.Hour})
	bodies := map[string]string{
		wire.SubjectStatus: `{"subject":"a","purpose":"p"`,
		wire.SubjectCheck:  `{"subject":"a","purpose":"p"`,
		wire.SubjectList:   `{"subject":"a"`,
	}
	for subj, body := range bodies {
		for range 5 {
			require.NoError(t, env.nc.Publish(subj, []byte(body+`,"min_seq":3}`)))
		}
	}
	// Requests after them on the same endpoints, answered in order.
	for subj, body := range bodies {
		_, code, description := rawRequest(t, env.nc, subj, []byte(body+"}"))
		assert.Contains(t, []string{"", "403"}, code, "%s: %s", subj, description)
	}
	assert.Empty(t, reader.waiting, "no lookup waited")
	for _, subj := range []string{wire.SubjectStatus, wire.SubjectCheck, wire.SubjectList} {
		assert.Equal(t, float64(0), endpointData(t, env.svc)[subj]["in_flight"], subj)
	}
}

// heldReader is a fakeReader whose lookups without min_seq block until
// the gate opens: it holds an endpoint goroutine, so that requests queue.
type heldReader struct {
	*fakeReader
	gate chan struct{}
}

func (g heldReader) Consent(ctx context.Context, k events.Key, minSeq uint64) (events.Consent, uint64, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return events.Consent{}, 0, ctx.Err()
	}
	return g.fakeReader.Consent(ctx, k, minSeq)
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// An endpoint holds at most PendingBytes of requests its handler has not
// taken: the NATS client drops the rest, and the service counts the
// episodes and logs them at most every 10s, not once per request.
func TestServicePendingLimitsDropAFloodOfBigRequests(t *testing.T) {
	reader := heldReader{newFakeReader(0), make(chan struct{})}
	var logs lockedBuffer
	env := startService(t, reader, ledger.ServiceConfig{
		PendingBytes: 256 << 10,
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
	})
	t.Cleanup(func() { close(reader.gate) }) // before the service stops

	// The first request holds the endpoint; of the 64 KiB ones after it,
	// 4 fit in 256 KiB.
	require.NoError(t, env.nc.Publish(wire.SubjectStatus, []byte(`{"subject":"a","purpose":"p"}`)))
	big := fmt.Appendf(nil, `{"subject":"a","purpose":"p","pad":"%s"}`, strings.Repeat("x", wire.MaxRequestSize-64))
	for range 100 {
		require.NoError(t, env.nc.Publish(wire.SubjectStatus, big))
	}
	require.NoError(t, env.nc.Flush())
	require.Eventually(t, func() bool {
		n, _ := endpointData(t, env.svc)[wire.SubjectStatus]["slow_consumer"].(float64)
		return n >= 1
	}, 10*time.Second, 10*time.Millisecond)
	var status *micro.EndpointStats
	for _, e := range env.svc.Stats().Endpoints {
		if e.Subject == wire.SubjectStatus {
			status = e
		}
	}
	require.NotNil(t, status)
	assert.Contains(t, status.LastError, "slow consumer")
	assert.Equal(t, 1, strings.Count(logs.String(), "slow consumer"), "logged once:\n%s", logs.String())
}
