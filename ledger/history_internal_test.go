package ledger

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A batched direct get stops at its byte cap; History must ask again from
// where it stopped rather than return a short page that reads as the last
// one, and the idempotency scan must see past it. (Internal: the cap is not
// configurable from outside.)
func TestReadsContinuePastBatchByteCap(t *testing.T) {
	_, _, js := natstest.Run(t)
	ctx := context.Background()
	stream, err := EnsureStream(ctx, js, StreamOptions{})
	require.NoError(t, err)
	l := New(js, stream, Options{})
	l.batchBytes = 4 << 10
	evidence := json.RawMessage(`{"note":"` + strings.Repeat("e", 1500) + `"}`)
	first, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "a", Purpose: "p", IdempotencyKey: "first"})
	require.NoError(t, err)
	for range 19 {
		_, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "a", Purpose: "p", Evidence: evidence})
		require.NoError(t, err)
	}

	h, err := l.History(ctx, wire.HistoryQuery{SubjectID: "a", Purpose: "p", Limit: 15})
	require.NoError(t, err)
	assert.Len(t, h.Events, 15)
	h, err = l.History(ctx, wire.HistoryQuery{SubjectID: "a", Purpose: "p"})
	require.NoError(t, err)
	require.Len(t, h.Events, 20)
	for i, r := range h.Events {
		assert.Equal(t, uint64(i+1), r.Seq)
	}

	again, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "a", Purpose: "p", IdempotencyKey: "first"})
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, first.Seq, again.Seq)
	last, err := l.Append(ctx, events.KindRevoke, events.Command{SubjectID: "a", Purpose: "p", IdempotencyKey: "new"})
	require.NoError(t, err)
	assert.Equal(t, uint64(21), last.Seq)
	assert.Equal(t, h.Events[19].Event.Hash, last.Event.PrevHash, "the tip read in pages is the last event")
}

// Without direct get on the stream nobody answers a batched read: the
// ledger must say so at once rather than wait for its timeout.
func TestBatchedReadWithoutDirectGetFailsFast(t *testing.T) {
	_, _, js := natstest.Run(t)
	ctx := context.Background()
	cfg := StreamOptions{}.Config()
	cfg.AllowDirect = false
	stream, err := js.CreateStream(ctx, cfg)
	require.NoError(t, err)
	l := New(js, stream, Options{})

	start := time.Now()
	_, err = l.History(ctx, wire.HistoryQuery{SubjectID: "a"})
	require.ErrorIs(t, err, nats.ErrNoResponders)
	assert.Less(t, time.Since(start), time.Second)
}
