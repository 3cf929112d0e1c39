package ledger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Lazy holds whose bucket does not answer yet fail closed: a check is an
// error matching events.ErrNotReady (a 503), never "no hold"; once the
// bucket answers, the next use opens it.
func TestLazyHoldsFailClosedUntilTheBucketAnswers(t *testing.T) {
	js := natstest.JetStream(t, natstest.Connect(t, natstest.RunServer(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	real := LazyHolds(js, 1)
	answering := false
	h := &Holds{open: func(ctx context.Context) (jetstream.KeyValue, error) {
		if !answering {
			return nil, nats.ErrTimeout
		}
		return real.open(ctx)
	}}
	token := events.SubjectKey("acme", "alice")
	err := h.check(ctx, "acme", token)
	require.Error(t, err)
	assert.True(t, errors.Is(err, events.ErrNotReady), "%v", err)
	assert.Equal(t, 503, WireError(err).Code)

	answering = true
	require.NoError(t, h.check(ctx, "acme", token), "opened on the next use: no hold")
	kv, err := h.bucket(ctx)
	require.NoError(t, err)
	_, err = kv.Put(ctx, holdEntry("acme", token), []byte(`{"tenant":"acme","subject_key":"`+token+`","reason":"litigation"}`))
	require.NoError(t, err)
	var held *HeldError
	require.ErrorAs(t, h.check(ctx, "acme", token), &held)
	assert.Equal(t, "litigation", held.Hold.Reason)
}
