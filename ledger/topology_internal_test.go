package ledger

import (
	"context"
	"testing"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// Topology is where a test's stream lives: on one embedded server, or on a
// cluster of as many servers as the stream has replicas.
type Topology struct {
	Name     string
	Replicas int // of the stream; above 1, the servers of the cluster
}

// The topologies ForTopologies runs a test on.
var (
	OneNode = Topology{Name: "one node", Replicas: 1}
	R3      = Topology{Name: "R3", Replicas: 3}
)

// ForTopologies runs test as a subtest on one node and on R3, each on
// servers of its own.
func ForTopologies(t *testing.T, test func(t *testing.T, top Topology)) {
	t.Helper()
	for _, top := range []Topology{OneNode, R3} {
		t.Run(top.Name, func(t *testing.T) { test(t, top) })
	}
}

// JetStream starts the topology's servers and returns a JetStream connected
// to them (to any node of a cluster). The servers are shut down at the end
// of the test.
func (top Topology) JetStream(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	if top.Replicas <= 1 {
		_, _, js := natstest.Run(tb)
		return js
	}
	c := natstest.RunCluster(tb, top.Replicas)
	nc, err := nats.Connect(c.URLs())
	require.NoError(tb, err)
	tb.Cleanup(nc.Close)
	return natstest.JetStream(tb, nc)
}

// EnsureStream is EnsureStream with the topology's replicas.
func (top Topology) EnsureStream(tb testing.TB, js jetstream.JetStream, opts StreamOptions) jetstream.Stream {
	tb.Helper()
	opts.Replicas = top.Replicas
	stream, err := EnsureStream(tb.Context(), js, opts)
	require.NoError(tb, err)
	require.Equal(tb, top.Replicas, stream.CachedInfo().Config.Replicas)
	return stream
}

// LeaderReads returns a handle on stream for a test's assertions, whose
// GetMsg and GetLastMsgForSubject the stream's leader answers; a stream of
// one replica is returned as it is.
//
// The ledger's stream allows direct gets, which any replica answers: on a
// replicated stream, a follower that has not yet applied a write the
// leader acknowledged answers that the message is not there, or that an
// older one is the last on its subject. The leader has applied every write
// it acknowledged. nats.go sends a handle's gets to the leader's
// STREAM.MSG.GET API when the config cached in the handle does not allow
// direct gets (see (*stream).getMsg), so the gets go through a second
// handle whose cached config is changed here and never refreshed: Info,
// which refreshes it, and every other call go to stream (and its Info is
// the leader's too).
//
// The handle is for reads: a ledger under test must be given stream
// itself, as its own tip reads are part of what is tested.
func LeaderReads(tb testing.TB, js jetstream.JetStream, stream jetstream.Stream) jetstream.Stream {
	tb.Helper()
	cfg := stream.CachedInfo().Config
	if cfg.Replicas <= 1 {
		return stream
	}
	gets, err := js.Stream(tb.Context(), cfg.Name)
	require.NoError(tb, err)
	gets.CachedInfo().Config.AllowDirect = false
	return leaderReads{Stream: stream, gets: gets}
}

type leaderReads struct {
	jetstream.Stream
	gets jetstream.Stream // AllowDirect false in its cached config
}

func (s leaderReads) GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	return s.gets.GetMsg(ctx, seq, opts...)
}

func (s leaderReads) GetLastMsgForSubject(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	return s.gets.GetLastMsgForSubject(ctx, subject)
}

// The gets of LeaderReads go to the leader's STREAM.MSG.GET API, also after
// an Info that refreshes the handle's cached config; the stream's own
// handle uses direct gets.
func TestLeaderReadsAskTheLeader(t *testing.T) {
	ctx := t.Context()
	js := R3.JetStream(t)
	stream := R3.EnsureStream(t, js, StreamOptions{})
	ack, err := js.Publish(ctx, "consent.events.default.p.a", []byte("first"))
	require.NoError(t, err)
	// The server delivers a request published on js's connection to that
	// connection's own subscriptions before it answers a later PING: after
	// a Flush, the gets made so far have been counted.
	nc := js.Conn()
	leaderGets, err := nc.SubscribeSync("$JS.API.STREAM.MSG.GET.>")
	require.NoError(t, err)
	directGets, err := nc.SubscribeSync("$JS.API.DIRECT.GET.>")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	pending := func(sub *nats.Subscription) int {
		require.NoError(t, nc.Flush())
		n, _, err := sub.Pending()
		require.NoError(t, err)
		return n
	}

	reads := LeaderReads(t, js, stream)
	msg, err := reads.GetMsg(ctx, ack.Sequence)
	require.NoError(t, err)
	require.Equal(t, "first", string(msg.Data))
	_, err = reads.Info(ctx)
	require.NoError(t, err)
	msg, err = reads.GetLastMsgForSubject(ctx, "consent.events.default.p.a")
	require.NoError(t, err)
	require.Equal(t, "first", string(msg.Data))
	require.Equal(t, 2, pending(leaderGets))
	require.Zero(t, pending(directGets))

	_, err = stream.GetMsg(ctx, ack.Sequence)
	require.NoError(t, err)
	require.Equal(t, 1, pending(directGets), "the stream's own handle uses direct gets")
}
