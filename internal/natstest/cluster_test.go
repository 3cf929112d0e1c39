package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

func TestClusterReplicatesAndSurvivesLeaderLoss(t *testing.T) {
	c := natstest.RunCluster(t, 3)
	nc, err := nats.Connect(c.URLs())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "t.1", []byte("one"))
	require.NoError(t, err)

	old := c.StreamLeader("T")
	c.Stop(old)
	require.Eventually(t, func() bool {
		// A publish sent to the stopped node is never answered: give up
		// on it soon and send again.
		attempt, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := js.Publish(attempt, "t.2", []byte("two"))
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "writes resume after the stream leader is lost")
	require.NotEqual(t, old, c.StreamLeader("T"))

	c.Start(old)
	s, err := js.Stream(ctx, "T")
	require.NoError(t, err)
	msg, err := s.GetMsg(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "one", string(msg.Data))
}
