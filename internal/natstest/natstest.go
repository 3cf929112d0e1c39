// Package natstest starts embedded NATS servers with JetStream for tests and
// benchmarks: on a random loopback port, with storage under the test's
// temporary directory, shut down by the test's cleanup.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Option adjusts the server options before the server starts.
type Option func(*server.Options)

// SyncAlways makes the server fsync every write before acknowledging it, as
// consentd does by default.
func SyncAlways() Option { return func(o *server.Options) { o.SyncAlways = true } }

// StoreDir sets the JetStream storage directory (default: a new t.TempDir()).
// Use it to restart a server on the same data.
func StoreDir(dir string) Option { return func(o *server.Options) { o.StoreDir = dir } }

// RunServer starts an embedded NATS server with JetStream and returns it
// once it accepts connections. The server is shut down at the end of the
// test.
func RunServer(tb testing.TB, opts ...Option) *server.Server {
	tb.Helper()
	o := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		NoLog:     true,
		NoSigs:    true,
		JetStream: true,
		StoreDir:  tb.TempDir(),
	}
	for _, opt := range opts {
		opt(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		tb.Fatalf("natstest: new server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		tb.Fatal("natstest: server not ready in 10s")
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a client connection to s over TCP, closed at the end of the
// test.
func Connect(tb testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		tb.Fatalf("natstest: connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on nc.
func JetStream(tb testing.TB, nc *nats.Conn) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("natstest: jetstream: %v", err)
	}
	return js
}

// Run starts a server and returns it with a connected JetStream context:
// the common case of a test that needs one of each.
func Run(tb testing.TB, opts ...Option) (*server.Server, *nats.Conn, jetstream.JetStream) {
	tb.Helper()
	s := RunServer(tb, opts...)
	nc := Connect(tb, s)
	return s, nc, JetStream(tb, nc)
}
