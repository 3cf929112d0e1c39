package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// processCluster is a three-node NATS JetStream cluster whose nodes run as
// nats-server child processes (built from the module's own nats-server
// dependency), so that a node can be killed with SIGKILL: it dies without
// stepping down from anything, as a machine that loses power does. The
// in-process cluster (natstest.RunCluster) can only shut a node down
// gracefully, which hands its leaderships over first.
type processCluster struct {
	t     *testing.T
	bin   string
	names []string
	ports []int // client ports
	confs []string
	procs []*exec.Cmd
	logs  []*lockedBuffer
	dead  []chan struct{}
}

var (
	natsServerOnce sync.Once
	natsServerBin  string
	natsServerErr  error
)

// natsServerBinary builds nats-server once per test process, at the
// version go.mod requires.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	natsServerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "consentd-nats-server-")
		if err != nil {
			natsServerErr = err
			return
		}
		natsServerBin = filepath.Join(dir, "nats-server")
		out, err := exec.Command("go", "build", "-o", natsServerBin, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsServerErr = fmt.Errorf("go build nats-server: %w: %s", err, out)
		}
	})
	require.NoError(t, natsServerErr)
	return natsServerBin
}

// startProcessCluster starts three nats-server processes, routed to each
// other, with JetStream fsyncing every write (sync_interval: always, as
// deploy/nats.conf), and waits until they have a meta leader.
func startProcessCluster(t *testing.T) *processCluster {
	t.Helper()
	c := &processCluster{t: t, bin: natsServerBinary(t)}
	const n = 3
	var routes []string
	clusterPorts := make([]int, n)
	for i := range n {
		clusterPorts[i] = natstest.FreePort(t)
		c.ports = append(c.ports, natstest.FreePort(t))
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", clusterPorts[i]))
	}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		dir := t.TempDir()
		conf := filepath.Join(dir, "nats.conf")
		require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, `server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q, sync_interval: always }
cluster { name: failover, listen: 127.0.0.1:%d, routes: [%s] }
`, name, c.ports[i], filepath.Join(dir, "store"), clusterPorts[i], strings.Join(routes, ", ")), 0o600))
		c.names = append(c.names, name)
		c.confs = append(c.confs, conf)
		c.procs = append(c.procs, nil)
		c.logs = append(c.logs, nil)
		c.dead = append(c.dead, nil)
	}
	for i := range n {
		c.Start(i)
	}
	t.Cleanup(func() {
		for i := range n {
			c.Kill(i)
		}
	})
	c.waitForJetStream(c.connect(0, "meta-wait"))
	return c
}

// Start starts node i (again, on its own storage and ports) and waits
// until it accepts connections.
func (c *processCluster) Start(i int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, "-c", c.confs[i])
	c.logs[i] = &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = c.logs[i], c.logs[i]
	require.NoError(c.t, cmd.Start())
	dead := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(dead)
	}()
	c.procs[i], c.dead[i] = cmd, dead
	require.Eventually(c.t, func() bool {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.ports[i]), 100*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}, 20*time.Second, 10*time.Millisecond, "node %s does not listen; its log: %s", c.names[i], c.logs[i])
}

// Kill kills node i with SIGKILL and waits until it is gone. It does
// nothing when the node is not running.
func (c *processCluster) Kill(i int) {
	if c.procs[i] == nil {
		return
	}
	_ = c.procs[i].Process.Signal(syscall.SIGKILL)
	<-c.dead[i]
	c.procs[i] = nil
}

// URLs returns the client URLs of all nodes, comma-separated.
func (c *processCluster) URLs() string {
	var urls []string
	for _, p := range c.ports {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return strings.Join(urls, ",")
}

// connect opens a connection as a calling service would (writerOptions),
// to node first, the others only when it is gone. It is closed at the end
// of the test.
func (c *processCluster) connect(first int, name string) *nats.Conn {
	c.t.Helper()
	urls := strings.Split(c.URLs(), ",")
	urls[0], urls[first] = urls[first], urls[0]
	nc, err := nats.Connect(strings.Join(urls, ","), append(writerOptions(name), nats.DontRandomize())...)
	require.NoError(c.t, err)
	c.t.Cleanup(nc.Close)
	return nc
}

// waitForJetStream waits until the cluster answers JetStream requests
// (it has a meta leader and every node as a peer).
func (c *processCluster) waitForJetStream(nc *nats.Conn) {
	c.t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(c.t, err)
	require.Eventually(c.t, func() bool {
		ctx, cancel := context.WithTimeout(c.t.Context(), 500*time.Millisecond)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	}, 30*time.Second, 20*time.Millisecond, "no JetStream meta leader")
}

// streamLeader returns the index of the node leading stream, asking
// through nc, waiting until there is one.
func (c *processCluster) streamLeader(nc *nats.Conn, stream string) int {
	c.t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(c.t, err)
	leader := -1
	require.Eventually(c.t, func() bool {
		ctx, cancel := context.WithTimeout(c.t.Context(), 500*time.Millisecond)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil || s.CachedInfo().Cluster == nil {
			return false
		}
		for i, name := range c.names {
			if name == s.CachedInfo().Cluster.Leader {
				leader = i
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "no leader of stream %s", stream)
	return leader
}

// leaderElected returns a channel that gets the time and name of every
// stream leader elected for stream from now on (JetStream's
// LEADER_ELECTED advisory, sent by the new leader), through nc.
func leaderElected(t *testing.T, nc *nats.Conn, stream string) <-chan electedLeader {
	t.Helper()
	ch := make(chan electedLeader, 16)
	sub, err := nc.Subscribe("$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED."+stream, func(m *nats.Msg) {
		var adv struct {
			Leader string `json:"leader"`
		}
		_ = json.Unmarshal(m.Data, &adv)
		select {
		case ch <- electedLeader{at: time.Now(), name: adv.Leader}:
		default:
		}
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

type electedLeader struct {
	at   time.Time
	name string
}

// runOnProcessCluster runs consentd in-process against c (--replicas 3),
// on dataDir, closed at the end of the test.
func runOnProcessCluster(t *testing.T, c *processCluster, dataDir string) *Main {
	t.Helper()
	return runOnCluster(t, c.URLs(), dataDir, "--log-level", "warn")
}

// ledgerStream returns the ledger's stream through nc.
func ledgerStream(t *testing.T, nc *nats.Conn) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(t.Context(), wire.DefaultStream)
	require.NoError(t, err)
	return js, s
}
