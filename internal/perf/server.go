package perf

import (
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is an embedded NATS server with JetStream, as consentd runs it,
// storing under a directory of its own that Close removes.
type Server struct {
	*server.Server
	dir   string
	owned bool // Close removes dir
	conns []*nats.Conn
}

// StartServer starts an embedded server on a free loopback port; with
// syncAlways it fsyncs every write before acknowledging it (consentd's
// default). dir is the parent of its store directory ("" for the system's
// temporary directory).
func StartServer(dir string, syncAlways bool) (*Server, error) {
	store, err := os.MkdirTemp(dir, "consentbench-")
	if err != nil {
		return nil, err
	}
	s, err := StartServerAt(store, syncAlways)
	if err != nil {
		_ = os.RemoveAll(store)
		return nil, err
	}
	s.owned = true
	return s, nil
}

// StartServerAt starts an embedded server on the store directory store,
// which Close leaves in place.
func StartServerAt(store string, syncAlways bool) (*Server, error) {
	return startServer(serverOptions(store, syncAlways))
}

// serverOptions are the options of an embedded server on a free loopback
// port storing under store.
func serverOptions(store string, syncAlways bool) *server.Options {
	return &server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: store, SyncAlways: syncAlways,
	}
}

// startServer starts an embedded server with opts and waits until it takes
// connections.
func startServer(opts *server.Options) (*Server, error) {
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS server not ready in 30s")
	}
	return &Server{Server: s, dir: opts.StoreDir}, nil
}

// InProcess opens a connection inside the process, as consentd's own,
// with opts (credentials) added.
func (s *Server) InProcess(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect("", append(opts, nats.InProcessServer(s.Server))...)
	if err == nil {
		s.conns = append(s.conns, nc)
	}
	return nc, err
}

// TCP opens a connection over loopback TCP, as a client's, with opts
// (credentials) added.
func (s *Server) TCP(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err == nil {
		s.conns = append(s.conns, nc)
	}
	return nc, err
}

// JetStream opens an in-process connection and returns a JetStream
// context on it.
func (s *Server) JetStream() (jetstream.JetStream, error) {
	nc, err := s.InProcess()
	if err != nil {
		return nil, err
	}
	return jetstream.New(nc)
}

// Close closes the connections and stops the server; a server started by
// StartServer also loses its store.
func (s *Server) Close() {
	for _, nc := range s.conns {
		nc.Close()
	}
	s.Shutdown()
	s.WaitForShutdown()
	if s.owned {
		_ = os.RemoveAll(s.dir)
	}
}
