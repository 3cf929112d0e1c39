package natstest

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a NATS JetStream cluster of embedded servers on loopback
// ports, routed to each other, for tests of replicated streams and
// failover. Nodes can be stopped and restarted on their own storage.
type Cluster struct {
	tb    testing.TB
	name  string
	opts  []*server.Options
	nodes []*server.Server
}

// RunCluster starts a cluster of n JetStream servers and waits until it has
// elected a meta leader. The nodes are shut down at the end of the test.
func RunCluster(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, name: "C" + strings.ReplaceAll(tb.Name(), "/", "_")}
	if len(c.name) > 32 {
		c.name = c.name[:32]
	}
	// The ports are chosen free before the nodes listen on them, so another
	// process may take one in between: then the whole cluster is started
	// again on other ports.
	for attempt := 1; ; attempt++ {
		c.opts, c.nodes = nil, nil
		err := c.startOnFreePorts(n, opts)
		if err == nil {
			break
		}
		c.Shutdown()
		if attempt == 3 {
			tb.Fatalf("natstest: %v", err)
		}
		tb.Logf("natstest: %v; starting the cluster again on other ports", err)
	}
	tb.Cleanup(c.Shutdown)
	c.WaitForMetaLeader()
	c.WaitForPeers()
	return c
}

// Start starts node i (again) on its own ports and storage.
func (c *Cluster) Start(i int) {
	c.tb.Helper()
	if err := c.start(i); err != nil {
		c.tb.Fatalf("natstest: %v", err)
	}
}

func (c *Cluster) start(i int) error {
	o := c.opts[i].Clone()
	s, err := server.NewServer(o)
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("node %d not listening on ports %d and %d after 10s", i, o.Port, o.Cluster.Port)
	}
	c.nodes[i] = s
	return nil
}

// startOnFreePorts configures n nodes on free loopback ports, routed to
// each other, and starts them.
func (c *Cluster) startOnFreePorts(n int, opts []Option) error {
	tb := c.tb
	clusterPorts := freePorts(tb, n)
	clientPorts := freePorts(tb, n)
	routes := make([]string, n)
	for i, p := range clusterPorts {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   tb.TempDir(),
			Cluster: server.ClusterOpts{
				Name: c.name,
				Host: "127.0.0.1",
				Port: clusterPorts[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		for _, opt := range opts {
			opt(o)
		}
		c.opts = append(c.opts, o)
		c.nodes = append(c.nodes, nil)
	}
	for i := range n {
		if err := c.start(i); err != nil {
			return err
		}
	}
	return nil
}

// Stop shuts node i down, as a crash of that machine would (its storage
// stays for a later Start).
func (c *Cluster) Stop(i int) {
	if s := c.nodes[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.nodes[i] = nil
	}
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for i := range c.nodes {
		c.Stop(i)
	}
}

// Node returns node i, or nil while it is stopped.
func (c *Cluster) Node(i int) *server.Server { return c.nodes[i] }

// Size returns the number of nodes, running or not.
func (c *Cluster) Size() int { return len(c.nodes) }

// URLs returns the client URLs of all nodes, comma-separated, the form
// nats.Connect takes for a cluster.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.opts))
	for i, o := range c.opts {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", o.Port)
	}
	return strings.Join(urls, ",")
}

// WaitForMetaLeader waits until the running nodes agree on a JetStream meta
// leader.
func (c *Cluster) WaitForMetaLeader() {
	c.tb.Helper()
	c.waitFor("JetStream meta leader", func() bool {
		for _, s := range c.nodes {
			if s != nil && s.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
}

// WaitForPeers waits until the JetStream meta leader counts every running
// node as an available peer. Before that, creating a stream with as many
// replicas as nodes fails with "no suitable peers for placement" (10005).
func (c *Cluster) WaitForPeers() {
	c.tb.Helper()
	running := 0
	for _, s := range c.nodes {
		if s != nil {
			running++
		}
	}
	c.waitFor("JetStream peers", func() bool {
		for _, s := range c.nodes {
			if s != nil && s.JetStreamIsLeader() {
				return len(s.JetStreamClusterPeers()) >= running
			}
		}
		return false
	})
}

// StreamLeader returns the index of the node leading stream name in the
// global account, waiting until one is elected.
func (c *Cluster) StreamLeader(stream string) int {
	c.tb.Helper()
	leader := -1
	c.waitFor("leader of stream "+stream, func() bool {
		for i, s := range c.nodes {
			if s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
				leader = i
				return true
			}
		}
		return false
	})
	return leader
}

func (c *Cluster) waitFor(what string, cond func() bool) {
	c.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			c.tb.Fatalf("natstest: no %s after 20s", what)
		}
		<-tick.C
	}
}

// FreePort returns a loopback TCP port that was free a moment ago: for a
// server that must restart on the same port, so that clients reconnect to
// it.
func FreePort(tb testing.TB) int { return freePorts(tb, 1)[0] }

// freePorts reserves n free loopback TCP ports. The ports are released
// before return, so a race with another process is possible but unlikely.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, n)
	var ls []net.Listener
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("natstest: free port: %v", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
