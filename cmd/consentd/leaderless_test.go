package main

import (
	"testing"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProbeIndex: a replica's direct get says the index is current only
// when it holds the checkpoint's message and nothing after it; a later
// message says the index is behind; anything else proves nothing.
func TestProbeIndex(t *testing.T) {
	s := natstest.RunServer(t)
	nc := natstest.Connect(t, s)
	ctx := t.Context()

	got, err := probeIndex(ctx, nc, wire.DefaultStream, 1)
	assert.Equal(t, probeUnknown, got, "no stream")
	require.ErrorIs(t, err, nats.ErrNoResponders)

	js := natstest.JetStream(t, nc)
	_, err = ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	require.NoError(t, err)
	for range 3 {
		_, err := js.Publish(ctx, "consent.events.t.s.p", []byte("{}"))
		require.NoError(t, err)
	}
	for _, tt := range []struct {
		checkpoint uint64
		want       indexProbe
	}{
		{0, probeUnknown}, // an empty index: an empty replica would answer the same
		{1, probeBehind},
		{2, probeBehind},
		{3, probeCurrent},
		{4, probeUnknown}, // the replica is behind the index: 404
	} {
		got, err := probeIndex(ctx, nc, wire.DefaultStream, tt.checkpoint)
		assert.Equal(t, tt.want, got, "checkpoint %d (%v)", tt.checkpoint, err)
		if tt.want == probeUnknown {
			assert.Error(t, err, "checkpoint %d", tt.checkpoint)
		}
	}
}
