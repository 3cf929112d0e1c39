package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/metrics"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/nats-io/nats-server/v2/server"
)

// DefaultReadyMaxLag is the default --ready-max-lag: several seconds of
// appends at the group commit rate measured in docs/performance.md. A
// live index lags by a handful of events; one catching up after a
// restart, or stuck, by far more.
const DefaultReadyMaxLag = 10_000

// Set by the build (-ldflags "-X main.version=... -X main.commit=...");
// consent_build_info shows them. Without, the version is the service's
// and the commit the one the Go toolchain stamped, if any.
var (
	version = ledger.ServiceVersion
	commit  = ""
)

// ops is what consentd's HTTP listener serves and reads: the metrics, and
// the parts of consentd that start in the background (the guard and the
// expirer exist once the stream is found).
type ops struct {
	metrics *metrics.Metrics // nil without --http-listen
	guard   atomic.Pointer[ledger.StreamGuard]
	expirer atomic.Pointer[ledger.Expirer]

	srv    *http.Server
	addr   net.Addr
	served chan struct{} // closed when Serve returned
}

// observer is the ledger.Observer of the service and the ledger: nil
// without metrics, so that the request paths do no extra work.
func (o *ops) observer() ledger.Observer {
	if o.metrics == nil {
		return nil
	}
	return o.metrics
}

// observeCheckpoint is the checkpointer's Observe, nil without metrics.
func (o *ops) observeCheckpoint() func(audit.CheckpointResult, error) {
	if o.metrics == nil {
		return nil
	}
	return func(res audit.CheckpointResult, err error) { o.metrics.Checkpoint(res.Published, err) }
}

// newOps makes consentd's metrics when --http-listen is given. Its
// sources read m.projector, m.index and m.feed, which Run sets before
// serveHTTP starts the listener and does not change afterwards.
func (m *Main) newOps() {
	m.ops = &ops{}
	if m.Config.HTTPListen == "" {
		return
	}
	m.ops.metrics = metrics.New(buildInfo(), metrics.Sources{
		Projector: m.projector.Health,
		StreamSafe: func() (bool, bool) {
			g := m.ops.guard.Load()
			if g == nil {
				return false, false
			}
			return g.Health().Safe, true
		},
		Expiry: func() (ledger.ExpiryStats, bool) {
			e := m.ops.expirer.Load()
			if e == nil {
				return ledger.ExpiryStats{}, false
			}
			return e.Stats(), true
		},
		ExpiryBacklog: func(ctx context.Context) (int, error) {
			due, _, err := m.index.DueGrants(ctx, time.Now(), metrics.ExpiryBacklogCap)
			return len(due), err
		},
		Feeds: func(ctx context.Context) (ledger.FeedConsumerStats, error) { return m.feed.ConsumerStats(ctx) },
	})
}

// buildInfo labels consent_build_info.
func buildInfo() metrics.BuildInfo {
	b := metrics.BuildInfo{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if b.Commit == "" {
		b.Commit = "unknown"
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					b.Commit = s.Value
				}
			}
		}
	}
	return b
}

// serveHTTP starts the --http-listen listener: /metrics (Prometheus, from
// consentd's own registry), /healthz (200 "ok" while the process runs)
// and /readyz (200 "ready", or 503 with the reasons, one a line). None of
// them shows consent data: no subject, tenant or purpose appears in a
// metric or a reason. It does nothing without --http-listen, and fails
// when the address cannot be listened on.
func (m *Main) serveHTTP() error {
	if m.Config.HTTPListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", m.Config.HTTPListen)
	if err != nil {
		return fmt.Errorf("--http-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.ops.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if reasons := m.notReady(); len(reasons) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready:\n" + strings.Join(reasons, "\n") + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	m.ops.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	m.ops.addr, m.ops.served = ln.Addr(), make(chan struct{})
	go func() {
		defer close(m.ops.served)
		if err := m.ops.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("http listener stopped", "error", err)
		}
	}()
	if host, _, _ := net.SplitHostPort(m.Config.HTTPListen); !isLoopback(host) {
		m.log.Warn("the HTTP listener is reachable from other hosts: it shows no consent data, but the metrics tell how busy the ledger is; firewall it to the monitoring network",
			"addr", m.ops.addr.String())
	}
	m.log.Info("serving /metrics, /healthz and /readyz", "addr", m.ops.addr.String())
	return nil
}

// HTTPAddr returns the address the --http-listen listener listens on, ""
// without one (or before Run).
func (m *Main) HTTPAddr() string {
	if m.ops == nil || m.ops.addr == nil {
		return ""
	}
	return m.ops.addr.String()
}

// stopHTTP closes the HTTP listener first on shutdown, so that /readyz
// stops answering before the rest goes.
func (m *Main) stopHTTP(ctx context.Context) error {
	if m.ops == nil || m.ops.srv == nil {
		return nil
	}
	err := m.ops.srv.Shutdown(ctx)
	<-m.ops.served
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	return nil
}

// notReady returns why consentd is not ready to answer (see readiness).
func (m *Main) notReady() []string {
	var guard *ledger.StreamHealth
	if g := m.ops.guard.Load(); g != nil {
		h := g.Health()
		guard = &h
	}
	return readiness(m.Config.Stream, guard, m.projector.Health(), m.Config.ReadyMaxLag)
}

// readiness returns why consentd is not ready to answer, none when it is:
// the stream not found yet (guard nil) or unsafe (writes refused), the
// projector not running, the index still catching up, or behind the
// stream by more than maxLag events.
func readiness(stream string, guard *ledger.StreamHealth, h projector.Health, maxLag uint64) []string {
	var reasons []string
	switch {
	case guard == nil:
		reasons = append(reasons, fmt.Sprintf("stream %s: not found yet", stream))
	case !guard.Safe && guard.WritesRefused != "":
		reasons = append(reasons, guard.WritesRefused)
	case !guard.Safe:
		reasons = append(reasons, fmt.Sprintf("stream %s is unsafe: %s", stream, strings.Join(guard.Problems, "; ")))
	}
	switch {
	case !h.Running && h.Err != "":
		reasons = append(reasons, "projector not running: "+h.Err)
	case !h.Running:
		reasons = append(reasons, "projector not running")
	case !h.Ready:
		reasons = append(reasons, fmt.Sprintf("index catching up: at seq %d of %d", h.IndexSeq, h.StreamSeq))
	}
	if lag := h.StreamSeq - h.IndexSeq; h.StreamSeq > h.IndexSeq && lag > maxLag {
		reasons = append(reasons, fmt.Sprintf("index lags the stream by %d events (index at seq %d, stream at %d; --ready-max-lag %d)",
			lag, h.IndexSeq, h.StreamSeq, maxLag))
	}
	return reasons
}

// configureMonitor turns on the embedded NATS server's monitoring on
// --nats-monitor, as nats-server's http listener: /varz, /jsz, /healthz
// and the rest of its endpoints.
func (m *Main) configureMonitor(opts *server.Options) error {
	if m.Config.NATSMonitor == "" {
		return nil
	}
	host, port, err := splitAddr("--nats-monitor", m.Config.NATSMonitor, -1)
	if err != nil {
		return err
	}
	opts.HTTPHost, opts.HTTPPort = host, port
	if !isLoopback(host) {
		m.log.Warn("the embedded NATS server's monitoring is reachable from other hosts: it shows connections, accounts and streams (no consent data); firewall it to the monitoring network",
			"addr", m.Config.NATSMonitor)
	}
	return nil
}

// monitorAddr returns where the embedded server's monitoring listens, ""
// without one.
func (m *Main) monitorAddr() string {
	if m.server == nil {
		return ""
	}
	if a := m.server.MonitorAddr(); a != nil {
		return a.String()
	}
	return ""
}

// validateHTTP checks --http-listen, --ready-max-lag and --nats-monitor.
func (c *Config) validateHTTP() error {
	if c.HTTPListen != "" {
		if _, _, err := splitAddr("--http-listen", c.HTTPListen, 0); err != nil {
			return err
		}
	}
	if c.ReadyMaxLag == 0 {
		return errors.New("--ready-max-lag 0: must be at least 1 (a live index lags the stream by a few events for a moment)")
	}
	if c.NATSMonitor != "" {
		if _, _, err := splitAddr("--nats-monitor", c.NATSMonitor, -1); err != nil {
			return err
		}
	}
	return nil
}

// splitAddr splits the HOST:PORT of flag; the port is from 1 to 65535, or
// anyPort (0 or -1: the listener picks a free one). An empty host listens
// on every interface.
func splitAddr(flag, addr string, anyPort int) (string, int, error) {
	host, portText, err := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil || (port != anyPort && (port < 1 || port > 65535)) {
		return "", 0, fmt.Errorf("%s %q: want HOST:PORT with a port from 1 to 65535 (or %d for any free port), such as 127.0.0.1:9090", flag, addr, anyPort)
	}
	return host, port, nil
}
