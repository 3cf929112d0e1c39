package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
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

// waitIdle waits until no instance is working on a command: a command
// whose caller gave up may still land, so the stream is only final once
// every instance is idle.
func (h *clusterHarness) waitIdle() {
	h.t.Helper()
	for _, in := range h.instances {
		waitServiceIdle(h.t, in.Main)
	}
}

// waitServiceIdle waits until m's service has no command in flight.
func waitServiceIdle(t *testing.T, m *Main) {
	t.Helper()
	require.Eventually(t, func() bool { return commandsInFlight(t, m) == 0 }, 30*time.Second, 5*time.Millisecond,
		"consentd still appending")
}

// commandsInFlight returns the commands m's service is working on, from
// the in_flight counters of its $SRV.STATS data.
func commandsInFlight(t *testing.T, m *Main) int64 {
	var n int64
	for _, e := range m.service.Stats().Endpoints {
		switch e.Subject {
		case ledger.SubjectRequest, ledger.SubjectGrant, ledger.SubjectDeny, ledger.SubjectRevoke:
			var d struct {
				InFlight int64 `json:"in_flight"`
			}
			require.NoError(t, json.Unmarshal(e.Data, &d))
			n += d.InFlight
		}
	}
	return n
}

// connect opens a connection to the cluster as a calling service would,
// reconnecting quickly to another node when its node goes away. It is
// closed at the end of the test.
func (h *clusterHarness) connect(name string) *nats.Conn {
	h.t.Helper()
	nc, err := nats.Connect(h.cluster.URLs(), nats.Name(name), nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond), nats.ReconnectJitter(0, 0))
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
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name(name), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond), nats.ReconnectJitter(0, 0))
	require.NoError(h.t, err)
	h.t.Cleanup(nc.Close)
	return nc
}

// client returns a consent client on a connection of its own.
func (h *clusterHarness) client(name string) *ledger.Client {
	return ledger.NewClient(h.connect(name), ledger.ClientOptions{})
}

// jetStream returns a JetStream context on a connection of its own.
func (h *clusterHarness) jetStream() jetstream.JetStream {
	h.t.Helper()
	js, err := jetstream.New(h.connect("test-jetstream"))
	require.NoError(h.t, err)
	return js
}
