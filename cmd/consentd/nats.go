package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/consentledger/consent/internal/auth"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startServer starts the embedded NATS server with JetStream, storing under
// dataDir/jetstream, trusting m.authority when there is one (and then sets
// m.connOpts and writes the admin credentials), and sets m.server once it
// accepts connections.
func (m *Main) startServer(dataDir string) error {
	s, err := startServer(&m.Config, dataDir, m.log, func(opts *server.Options) error {
		if err := m.configureMonitor(opts); err != nil {
			return err
		}
		if m.authority == nil {
			return nil
		}
		if err := moveAccountStore(dataDir, m.authority.ServiceAccountKey()); err != nil {
			return err
		}
		creds, err := m.authority.ServerOptions(opts)
		if err != nil {
			return err
		}
		if m.connOpts, err = auth.ConnectOptions(creds); err != nil {
			return err
		}
		path, created, err := ensureAdminCreds(m.authority, dataDir)
		if err != nil {
			return fmt.Errorf("admin credentials: %w", err)
		}
		if created {
			m.log.Info("wrote the administrator's credentials (keep them secret)", "file", path)
		}
		m.adminCreds = path
		return nil
	})
	m.server = s
	return err
}

// startServer starts the embedded NATS server with JetStream, storing under
// dataDir/jetstream, and returns it once it accepts connections. configure
// adjusts the server's options before it starts.
func startServer(cfg *Config, dataDir string, log *slog.Logger, configure func(*server.Options) error) (*server.Server, error) {
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	opts := &server.Options{
		ServerName: "consentd",
		Host:       host,
		Port:       port,
		JetStream:  true,
		// The server keeps its store in StoreDir/jetstream.
		StoreDir:   dataDir,
		SyncAlways: cfg.Sync == SyncAlways,
		NoSigs:     true,
	}
	if cfg.TLSCert != "" {
		if opts.TLSConfig, err = serverTLSConfig(cfg); err != nil {
			return nil, err
		}
		// Clients over TCP must use TLS (and present a certificate with
		// --tls-client-ca); in-process connections, consentd's own, skip it.
		opts.TLS = true
		opts.TLSVerify = cfg.TLSClientCA != ""
	}
	if err := configure(opts); err != nil {
		return nil, err
	}
	if cfg.InsecureNoAuth {
		log.Warn("the embedded NATS server runs without authentication (--insecure-no-auth): every client that connects may read every consent, forge events and delete the stream", "listen", cfg.Listen)
	}
	if cfg.InsecureListenWithoutTLS && !isLoopback(host) {
		log.Warn("the embedded NATS server listens without TLS on an address other hosts can reach (--insecure-listen-without-tls): anyone who can connect reads and writes everything in plain text", "listen", cfg.Listen)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	fatal := make(chan string, 1)
	s.SetLoggerV2(natsLogger{log: log.With("component", "nats-server"), fatal: fatal}, false, false, false)
	go s.Start()
	ready := make(chan bool, 1)
	go func() { ready <- s.ReadyForConnections(30 * time.Second) }()
	select {
	case ok := <-ready:
		if ok {
			return s, nil
		}
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS server did not accept connections on %s within 30s", cfg.Listen)
	case msg := <-fatal:
		// A port in use, for instance: the server cannot go on.
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s: %s", cfg.Listen, msg)
	}
}

// serverTLSConfig loads the embedded server's certificate and, with
// --tls-client-ca, the CA its clients' certificates must be signed by. The
// errors name the flag of the file at fault.
func serverTLSConfig(cfg *Config) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		tc.ClientCAs = x509.NewCertPool()
		if !tc.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-client-ca %s: no PEM certificate in it", cfg.TLSClientCA)
		}
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// connect opens one of consentd's connections: in-process to the embedded
// server s, or to cfg.NATSURL when s is nil.
func connect(ctx context.Context, cfg *Config, s *server.Server, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "connection", name, "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "connection", name, "url", nc.ConnectedUrlRedacted())
		}),
	}
	opts = append(opts, extra...)
	if s != nil {
		nc, err := nats.Connect("", append(opts, nats.InProcessServer(s))...)
		if err != nil {
			return nil, fmt.Errorf("connect to the embedded NATS server: %w", err)
		}
		return nc, nil
	}
	if cfg.NATSCreds != "" {
		if err := privateFile("--nats-creds", cfg.NATSCreds); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSUser != "" {
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	if cfg.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSTLSCA))
	}
	if cfg.NATSTLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSTLSCert, cfg.NATSTLSKey))
	}
	// NATS may still be starting (a cluster coming up next to consentd):
	// try again until ctx ends.
	for attempt := 0; ; attempt++ {
		nc, err := nats.Connect(cfg.NATSURL, opts...)
		if err == nil {
			return nc, nil
		}
		if !retryable(err) {
			return nil, fmt.Errorf("connect to NATS at %s: %w", cfg.NATSURL, err)
		}
		log.Warn("NATS not reachable yet; retrying", "url", cfg.NATSURL, "error", err)
		if err := pause(ctx, attempt); err != nil {
			return nil, fmt.Errorf("connect to NATS at %s: %w", cfg.NATSURL, errors.Join(err, ctx.Err()))
		}
	}
}

// retryable reports whether a connection error may go away by itself.
func retryable(err error) bool {
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionClosed)
}

// pause waits before attempt+1: 250ms doubling up to 5s, or until ctx ends.
func pause(ctx context.Context, attempt int) error {
	d := min(250*time.Millisecond<<min(attempt, 5), 5*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain drains nc and waits until it is closed, or until ctx ends.
func drain(ctx context.Context, nc *nats.Conn) error {
	if nc == nil || nc.IsClosed() {
		return nil
	}
	closed := nc.StatusChanged(nats.CLOSED)
	if err := nc.Drain(); err != nil {
		nc.Close()
		return err
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("drain NATS connection: %w", ctx.Err())
	}
}

// natsLogger sends the embedded server's logs to slog. Its notices (the
// start-up banner, mostly) are debug: consentd says itself where it listens.
// A fatal error (the server cannot go on) is also sent on fatal, if there
// is room.
type natsLogger struct {
	log   *slog.Logger
	fatal chan<- string
}

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}
func (l natsLogger) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

// absDir returns dir as an absolute path, for messages.
func absDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}
