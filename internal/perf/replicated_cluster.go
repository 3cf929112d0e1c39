package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Cluster is a JetStream cluster of embedded servers on loopback ports,
// routed to each other, each fsyncing every write (sync_interval: always,
// as deploy/nats.conf configures the nodes of docker-compose.yml), storing
// under a directory of its own that Close removes.
type Cluster struct {
	Nodes []*server.Server
	dir   string
}

// StartCluster starts n such servers under a new directory in dir ("" for
// the system's temporary directory) and waits until every one of them is
// a JetStream peer of the meta leader. The ports are chosen free before
// the nodes listen on them, so another process may take one in between:
// then the cluster is started again on other ports, twice at most. It
// returns the last start's error, or an error when the nodes do not see
// each other in 30s. The caller owns the cluster: Close stops it.
func StartCluster(dir string, n int) (*Cluster, error) {
	store, err := os.MkdirTemp(dir, "consentbench-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: store}
	for attempt := 1; ; attempt++ {
		err = c.start(n, attempt)
		if err == nil {
			break
		}
		c.shutdown()
		if attempt == 3 {
			_ = os.RemoveAll(store)
			return nil, err
		}
	}
	if err := c.waitFor("JetStream peers", func() bool {
		for _, s := range c.Nodes {
			if s.JetStreamIsLeader() {
				return len(s.JetStreamClusterPeers()) >= n
			}
		}
		return false
	}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(n, attempt int) error {
	clusterPorts, err := freePorts(n)
	if err != nil {
		return err
	}
	routes := make([]string, n)
	for i, p := range clusterPorts {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	c.Nodes = nil
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			JetStream: true, SyncAlways: true,
			StoreDir: filepath.Join(c.dir, fmt.Sprintf("a%d-n%d", attempt, i+1)),
			Cluster:  server.ClusterOpts{Name: "consentbench", Host: "127.0.0.1", Port: clusterPorts[i]},
			Routes:   server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(o)
		if err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		go s.Start()
		if !s.ReadyForConnections(30 * time.Second) {
			s.Shutdown()
			return fmt.Errorf("node %d not listening on cluster port %d after 30s", i+1, clusterPorts[i])
		}
		c.Nodes = append(c.Nodes, s)
	}
	return nil
}

// StreamLeader returns the node leading stream name, waiting until one is
// elected.
func (c *Cluster) StreamLeader(name string) (*server.Server, error) {
	var leader *server.Server
	err := c.waitFor("leader of stream "+name, func() bool {
		for _, s := range c.Nodes {
			if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, name) {
				leader = s
				return true
			}
		}
		return false
	})
	return leader, err
}

// MoveStreamLeader moves the leadership of stream name to node to (a leader
// stepdown with to as the preferred server, requested on nc) and waits
// until it leads. It returns the server's refusal of the stepdown, or an
// error when to does not lead after 30s.
func (c *Cluster) MoveStreamLeader(ctx context.Context, nc *nats.Conn, name string, to *server.Server) error {
	if to.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, name) {
		return nil
	}
	req, _ := json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: to.Name()}})
	resp, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+name, req)
	if err != nil {
		return fmt.Errorf("leader stepdown of %s: %w", name, err)
	}
	if err := ackError(resp.Data); err != nil {
		return fmt.Errorf("leader stepdown of %s: %w", name, err)
	}
	return c.waitFor("leader of stream "+name+" on "+to.Name(), func() bool {
		return to.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, name)
	})
}

func (c *Cluster) waitFor(what string, cond func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: no %s after 30s", what)
		}
		<-tick.C
	}
	return nil
}

func (c *Cluster) shutdown() {
	for _, s := range c.Nodes {
		s.Shutdown()
		s.WaitForShutdown()
	}
	c.Nodes = nil
}

// Close stops every node and removes their stores.
func (c *Cluster) Close() {
	c.shutdown()
	_ = os.RemoveAll(c.dir)
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
