package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A stream made before the ledger kept checkpoints captures only the
// events: EnsureStream adds the missing filter and keeps every message.
func TestEnsureStreamAddsMissingSubjects(t *testing.T) {
	_, _, js := natstest.Run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	old := ledger.StreamOptions{}.Config()
	old.Subjects = []string{"consent.events.>"}
	_, err := js.CreateStream(ctx, old)
	require.NoError(t, err)
	_, err = js.Publish(ctx, "consent.events.default.p.k", []byte(`{}`))
	require.NoError(t, err)

	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	require.NoError(t, err)
	info := stream.CachedInfo()
	assert.Equal(t, ledger.CapturedSubjects(), info.Config.Subjects)
	assert.Equal(t, uint64(1), info.State.Msgs, "the update keeps the stored messages")
	assert.Empty(t, ledger.CheckStreamConfig(info.Config))

	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: "consent.checkpoints.chain", Data: []byte(`{}`)})
	require.NoError(t, err, "the stream now captures checkpoints")
	assert.Equal(t, uint64(2), ack.Sequence)
}
