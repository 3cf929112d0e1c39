package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// clusterHarness is a three-node NATS JetStream cluster in the test
// process with consentd instances running in-process against it (Main
// with --nats-url and --replicas 3), each with its own data directory and
// Pebble index, all answering the consent service in one queue group.
type clusterHarness struct {
	t         *testing.T
	cluster   *natstest.Cluster
	instances []*clusterInstance
}

// clusterInstance is one consentd of a clusterHarness.
type clusterInstance struct {
	*Main
	name    string
	dataDir string
}

// startClusterHarness starts the cluster and n consentd instances.
func startClusterHarness(t *testing.T, n int) *clusterHarness {
	t.Helper()
	h := &clusterHarness{t: t, cluster: natstest.RunCluster(t, 3)}
	for i := range n {
		h.instances = append(h.instances, h.startInstance(string(rune('A'+i)), t.TempDir()))
	}
	return h
}

// startInstance runs a consentd against the cluster on dataDir and waits
// until it serves (its index has caught up with the stream). It is closed
// at the end of the test.
func (h *clusterHarness) startInstance(name, dataDir string) *clusterInstance {
	h.t.Helper()
	m := runOnCluster(h.t, h.cluster.URLs(), dataDir)
	return &clusterInstance{Main: m, name: name, dataDir: dataDir}
}

// runOnCluster runs consentd in-process with --nats-url urls, --replicas 3
// and --data-dir dataDir, closed at the end of the test.
func runOnCluster(t *testing.T, urls, dataDir string, flags ...string) *Main {
	t.Helper()
	m := NewMain()
	m.Environ = func() []string { return nil }
	m.Stdout, m.Stderr = io.Discard, testWriter{t}
	args := append([]string{"--nats-url", urls, "--replicas", "3", "--data-dir", dataDir, "--log-level", "error"}, flags...)
	require.NoError(t, m.ParseFlags(args))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err := m.Run(ctx)
	if err != nil {
		_ = m.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// stopServices stops the consent service of every instance: no request
// is taken any more, and the ones delivered are answered, their appends
// done. A command whose caller gave up may still land until then, so the
// stream is final only once the services have stopped. The projectors go
// on, so the indexes still catch up.
func (h *clusterHarness) stopServices() {
	h.t.Helper()
	for _, in := range h.instances {
		ctx, cancel := context.WithTimeout(h.t.Context(), 30*time.Second)
		err := in.service.Stop(ctx)
		cancel()
		require.NoError(h.t, err, "consentd %s", in.name)
	}
}

// writerOptions are the options of a calling service's connection: it
// reconnects at once when its server goes away, and does not buffer
// requests while it is disconnected (they fail, and the caller retries):
// a buffered request would be sent on reconnect, after its caller gave up.
func writerOptions(name string) []nats.Option {
	return []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1),
		nats.ReconnectWait(20 * time.Millisecond), nats.ReconnectJitter(0, 0)}
}

// connect opens a connection to the cluster as a calling service would,
// reconnecting quickly to another node when its node goes away. It is
// closed at the end of the test.
func (h *clusterHarness) connect(name string) *nats.Conn {
	h.t.Helper()
	nc, err := nats.Connect(h.cluster.URLs(), writerOptions(name)...)
	require.NoError(h.t, err)
	h.t.Cleanup(nc.Close)
	return nc
}

// connectTo opens a connection like connect, but to node first: the
// other nodes are only tried when it is gone.
func (h *clusterHarness) connectTo(node int, name string) *nats.Conn {
	h.t.Helper()
	urls := strings.Split(h.cluster.URLs(), ",")
	urls[0], urls[node] = urls[node], urls[0]
	nc, err := nats.Connect(strings.Join(urls, ","), append(writerOptions(name), nats.DontRandomize())...)
	require.NoError(h.t, err)
	h.t.Cleanup(nc.Close)
	return nc
}

// client returns a consent client on a connection of its own.
func (h *clusterHarness) client(name string) *client.Client {
	return client.NewClient(h.connect(name), client.ClientOptions{})
}

// jetStream returns a JetStream context on a connection of its own.
func (h *clusterHarness) jetStream() jetstream.JetStream {
	h.t.Helper()
	js, err := jetstream.New(h.connect("test-jetstream"))
	require.NoError(h.t, err)
	return js
}
