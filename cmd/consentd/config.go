package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
)

// Config is everything consentd can be told, by flag or by environment
// variable (CONSENTD_ and the flag's name in upper snake case).
type Config struct {
	Listen  string // HOST:PORT of the embedded NATS server; port -1 picks a free one
	DataDir string // holds LOCK, jetstream/ (embedded server) and index/ (Pebble)

	// TLSCert and TLSKey make the embedded server require TLS from every
	// client that connects over TCP; TLSClientCA also makes it require a
	// client certificate signed by that CA. consentd's own connections are
	// in-process and need neither.
	TLSCert     string
	TLSKey      string
	TLSClientCA string
	// InsecureListenWithoutTLS lets the embedded server listen on an
	// address other hosts can reach without TLS; Validate refuses that
	// otherwise.
	InsecureListenWithoutTLS bool
	// AuthDir holds the NATS operator, accounts and role keys
	// (internal/auth) that consentd authenticates clients with; default
	// <DataDir>/auth with the embedded server. With --nats-url it names
	// the directory of the cluster's authority (consentd nats-config),
	// and without it consentd runs in the NATS deployment's one account.
	AuthDir string
	// KEKFile is the key-encryption key that wraps the persons' data keys
	// (internal/keystore), made there on first start. With it, consentd
	// seals the personal fields of every event it appends (schema version
	// 2); without, they are written in the clear (schema version 1).
	KEKFile string
	// InsecureNoAuth starts the embedded server without authentication:
	// every client may do everything, forgery of the trail included.
	InsecureNoAuth bool

	// NATSURL, when set, makes consentd use an existing NATS deployment
	// instead of embedding a server; the rest are its credentials and TLS.
	NATSURL      string
	NATSCreds    string
	NATSUser     string
	NATSPassword string
	NATSTLSCA    string
	NATSTLSCert  string
	NATSTLSKey   string

	Stream   string // stream name
	Replicas int    // replicas of the stream when consentd creates it
	Sync     string // embedded server: "always" (fsync every write) or "interval" (every 2 minutes)
	// GroupCommit is when concurrent appends are gathered into atomic
	// batches, so that one disk flush covers many events: GroupCommitAuto
	// (the default), GroupCommitOn or GroupCommitOff. See CommitsInGroups.
	GroupCommit string

	LogLevel string
	// LogFormat is how log lines on stderr are written: "text" (slog's
	// key=value) or "json" (one object per line).
	LogFormat string
	// MemoryLimit is the Go runtime's soft memory limit for the whole
	// process (embedded server included); 0 leaves the runtime's default,
	// which GOMEMLIMIT sets.
	MemoryLimit     ByteSize
	MinSeqTimeout   time.Duration // how long status, check and list wait for min_seq
	ShutdownTimeout time.Duration // how long Close waits for requests in flight
	// ExpiryInterval bounds how late consent.expired is appended after a
	// grant's expires_at: the expirer scans the index at least this often.
	ExpiryInterval time.Duration
	// RetentionInterval is how often the retainer scans the index for
	// persons whose consents all ended longer ago than their purposes'
	// retention (see ledger.Retainer).
	RetentionInterval time.Duration
	// StreamCheckInterval is how often the stream's configuration is read
	// while consentd runs (besides the JetStream advisories); writes are
	// refused while it is unsafe.
	StreamCheckInterval time.Duration

	// SigningKey is the ed25519 private key file (consentctl audit keygen)
	// that signs checkpoints and receipts; "" signs nothing.
	SigningKey string
	// CheckpointInterval is the length of a checkpoint window: with a
	// signing key, one signed checkpoint per window is appended to the
	// stream, whatever the number of instances.
	CheckpointInterval time.Duration

	// HTTPListen is the HOST:PORT of consentd's HTTP listener (/metrics,
	// /healthz, /readyz; see http.go); "" (the default) starts none.
	HTTPListen string
	// ReadyMaxLag is how many events the index may lag the stream while
	// /readyz still answers ready.
	ReadyMaxLag uint64
	// NATSMonitor is the HOST:PORT of the embedded NATS server's own
	// monitoring (/varz, /jsz, /healthz); "" starts none.
	NATSMonitor string
}

// Values of Config.Sync.
const (
	SyncAlways   = "always"
	SyncInterval = "interval"
)

// Values of Config.GroupCommit.
const (
	// GroupCommitAuto commits in groups where it was measured to win
	// (docs/performance.md): with the embedded server fsyncing every
	// write (--sync always), and against a stream of more than one
	// replica whose servers do, where every write costs a Raft round and
	// a flush on each replica (Main asks them when it holds the system
	// account).
	GroupCommitAuto = "auto"
	GroupCommitOn   = "on"
	GroupCommitOff  = "off"
)

// DefaultConfig returns the configuration of consentd run without flags.
func DefaultConfig() Config {
	return Config{
		Listen:          "127.0.0.1:4222",
		DataDir:         "consent-data",
		Stream:          wire.DefaultStream,
		Replicas:        1,
		Sync:            SyncAlways,
		GroupCommit:     GroupCommitAuto,
		LogLevel:        "info",
		LogFormat:       "text",
		MinSeqTimeout:   ledger.DefaultMinSeqTimeout,
		ShutdownTimeout: 8 * time.Second,
		ExpiryInterval:  ledger.DefaultExpiryInterval,

		RetentionInterval: ledger.DefaultRetentionInterval,

		CheckpointInterval: audit.DefaultCheckpointInterval,

		StreamCheckInterval: ledger.DefaultStreamCheckInterval,

		ReadyMaxLag: DefaultReadyMaxLag,
	}
}

// Embedded reports whether consentd runs its own NATS server.
func (c *Config) Embedded() bool { return c.NATSURL == "" }

// Validate checks every value, naming the flag of the first bad one.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	if c.Embedded() {
		host, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return fmt.Errorf("--listen %q: want HOST:PORT, such as 127.0.0.1:4222", c.Listen)
		}
		if p, err := strconv.Atoi(port); err != nil || p < -1 || p > 65535 || host == "" {
			return fmt.Errorf("--listen %q: want HOST:PORT with a port from 1 to 65535 (or -1 for any free port)", c.Listen)
		}
		if c.Replicas != 1 {
			return fmt.Errorf("--replicas %d needs a NATS cluster: the embedded server is a single node; use --nats-url", c.Replicas)
		}
		if err := c.validateTLS(host); err != nil {
			return err
		}
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("--replicas %d: want 1 to 5 (3 is the usual choice on a cluster)", c.Replicas)
	}
	if c.Sync != SyncAlways && c.Sync != SyncInterval {
		return fmt.Errorf("--sync %q: want %q or %q", c.Sync, SyncAlways, SyncInterval)
	}
	if !slices.Contains([]string{GroupCommitAuto, GroupCommitOn, GroupCommitOff}, c.GroupCommit) {
		return fmt.Errorf("--group-commit %q: want %s, %s or %s", c.GroupCommit, GroupCommitAuto, GroupCommitOn, GroupCommitOff)
	}
	if c.Stream == "" || strings.ContainsAny(c.Stream, ". *>\t\r\n") {
		return fmt.Errorf("--stream %q: want a name without spaces, dots, * or >", c.Stream)
	}
	if (c.NATSUser == "") != (c.NATSPassword == "") {
		return errors.New("--nats-user and --nats-password go together")
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		return errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	if c.MinSeqTimeout <= 0 {
		return fmt.Errorf("--min-seq-timeout %s: must be positive", c.MinSeqTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("--shutdown-timeout %s: must be positive", c.ShutdownTimeout)
	}
	if c.ExpiryInterval < 10*time.Millisecond {
		return fmt.Errorf("--expiry-interval %s: must be at least 10ms", c.ExpiryInterval)
	}
	if c.RetentionInterval < 10*time.Millisecond {
		return fmt.Errorf("--retention-interval %s: must be at least 10ms", c.RetentionInterval)
	}
	if c.StreamCheckInterval < 10*time.Millisecond {
		return fmt.Errorf("--stream-check-interval %s: must be at least 10ms", c.StreamCheckInterval)
	}
	if c.CheckpointInterval < time.Second {
		return fmt.Errorf("--checkpoint-interval %s: must be at least 1s", c.CheckpointInterval)
	}
	return c.validateHTTP()
}

// validateTLS checks the embedded server's TLS flags, and refuses to listen
// without TLS on host unless it is loopback or --insecure-listen-without-tls
// says so.
func (c *Config) validateTLS(host string) error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	hasTLS := c.TLSCert != ""
	if c.TLSClientCA != "" && !hasTLS {
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key: client certificates are asked for during the TLS handshake")
	}
	if hasTLS && c.InsecureListenWithoutTLS {
		return errors.New("--insecure-listen-without-tls contradicts --tls-cert: drop one of them")
	}
	if c.InsecureNoAuth && !isLoopback(host) {
		return fmt.Errorf("--listen %s with --insecure-no-auth: anyone on the network could read, forge and erase the consents; listen on loopback (127.0.0.1), or drop --insecure-no-auth", c.Listen)
	}
	if !hasTLS && !c.InsecureListenWithoutTLS && !isLoopback(host) {
		return fmt.Errorf("--listen %s: other hosts could connect to the embedded NATS server in plain text, and anyone on the network could read and forge consents; "+
			"give --tls-cert and --tls-key (and --tls-client-ca to admit only clients with a certificate from that CA), listen on loopback (127.0.0.1), "+
			"or, on a network you trust entirely, --insecure-listen-without-tls (clients still authenticate with their credentials, but in plain text)", c.Listen)
	}
	return nil
}

// isLoopback reports whether host (of --listen) only accepts connections
// from this machine: localhost, or an IP address in 127.0.0.0/8 or ::1.
// Any other name is not resolved, and counts as reachable from elsewhere.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// envPrefix starts the name of every environment variable consentd reads.
const envPrefix = "CONSENTD_"

// envName returns the environment variable of a flag: --nats-url is
// CONSENTD_NATS_URL.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// embeddedOnly are the flags that configure the embedded server; they make
// no sense with --nats-url.
var embeddedOnly = []string{"listen", "sync", "tls-cert", "tls-key", "tls-client-ca", "insecure-listen-without-tls", "insecure-no-auth", "nats-monitor"}

// newFlagSet returns consentd's flags, bound to c.
func newFlagSet(c *Config, output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("consentd", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&c.Listen, "listen", c.Listen, "`HOST:PORT` the embedded NATS server listens on; port -1 picks a free one; beyond loopback it needs --tls-cert (or --insecure-listen-without-tls)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "server certificate `FILE` (PEM, with --tls-key): the embedded NATS server then requires TLS from every client")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "private key `FILE` (PEM) of --tls-cert")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", c.TLSClientCA, "CA certificate `FILE` (PEM): with --tls-cert, the embedded NATS server also requires a client certificate signed by it")
	fs.BoolVar(&c.InsecureListenWithoutTLS, "insecure-listen-without-tls", c.InsecureListenWithoutTLS, "let the embedded NATS server listen on an address other hosts can reach (--listen 0.0.0.0:4222) without TLS: credentials and consents cross the network in plain text")
	fs.StringVar(&c.AuthDir, "auth-dir", c.AuthDir, "`DIR` of the NATS operator, accounts and role keys clients are authenticated with (default DATA-DIR/auth; with --nats-url, the directory consentd nats-config wrote)")
	fs.StringVar(&c.KEKFile, "kek-file", c.KEKFile, "key-encryption key `FILE` (mode 0600; made when absent) wrapping the persons' data keys: with it, the personal data of every event appended is sealed under the person's key, which erase destroys; give every instance the same file. Without it, events keep personal data in the clear")
	fs.BoolVar(&c.InsecureNoAuth, "insecure-no-auth", c.InsecureNoAuth, "start the embedded NATS server without authentication: every client that connects may read every consent, forge events and delete the stream (loopback only)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "`DIR` holding the JetStream store (jetstream/), the index (index/) and the LOCK file")
	fs.StringVar(&c.NATSURL, "nats-url", c.NATSURL, "use the NATS deployment at `URL` (comma-separated for several) instead of embedding a server")
	fs.StringVar(&c.NATSCreds, "nats-creds", c.NATSCreds, "credentials `FILE` for --nats-url")
	fs.StringVar(&c.NATSUser, "nats-user", c.NATSUser, "`USER` name for --nats-url")
	fs.StringVar(&c.NATSPassword, "nats-password", c.NATSPassword, "`PASSWORD` for --nats-user")
	fs.StringVar(&c.NATSTLSCA, "nats-tls-ca", c.NATSTLSCA, "CA certificate `FILE` that signed the NATS servers' certificates")
	fs.StringVar(&c.NATSTLSCert, "nats-tls-cert", c.NATSTLSCert, "client certificate `FILE` for NATS (with --nats-tls-key)")
	fs.StringVar(&c.NATSTLSKey, "nats-tls-key", c.NATSTLSKey, "client key `FILE` for NATS (with --nats-tls-cert)")
	fs.StringVar(&c.Stream, "stream", c.Stream, "`NAME` of the JetStream stream holding the audit trail")
	fs.IntVar(&c.Replicas, "replicas", c.Replicas, "`N` replicas of the stream when consentd creates it (needs --nats-url for more than 1)")
	fs.StringVar(&c.Sync, "sync", c.Sync, "`MODE` of the embedded server: always fsyncs every event before acknowledging it, interval every 2 minutes")
	fs.Var((*groupCommitMode)(&c.GroupCommit), "group-commit", "`MODE` of gathering concurrent appends into atomic batches, so that one disk flush covers many events: auto (with --sync always on the embedded server, and against a stream of more than one replica whose servers fsync every write, as far as consentd can ask them), on or off")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "`LEVEL` of the logs on stderr: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "`FORMAT` of the logs on stderr: text (key=value) or json (one object per line)")
	fs.Var(&c.MemoryLimit, "memory-limit", "soft memory limit of the process as a `SIZE` (200MiB, 1GiB): the Go runtime collects garbage and returns memory to the system harder near it; 0 keeps the runtime's default (GOMEMLIMIT)")
	fs.DurationVar(&c.MinSeqTimeout, "min-seq-timeout", c.MinSeqTimeout, "`DURATION` that status, check and list wait for min_seq before answering 503")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "`DURATION` that a shutdown waits for requests in flight")
	fs.DurationVar(&c.ExpiryInterval, "expiry-interval", c.ExpiryInterval, "`DURATION` at most between a grant's expires_at and its consent.expired event (the expirer scans the index this often)")
	fs.DurationVar(&c.RetentionInterval, "retention-interval", c.RetentionInterval, "`DURATION` between scans for persons whose consents all ended longer ago than their purposes' retention (who are then erased)")
	fs.DurationVar(&c.StreamCheckInterval, "stream-check-interval", c.StreamCheckInterval, "`DURATION` between two reads of the stream's configuration (also read on every JetStream advisory that it changed); writes are refused while it is unsafe")
	fs.StringVar(&c.SigningKey, "signing-key", c.SigningKey, "ed25519 private key `FILE` (consentctl audit keygen) that signs checkpoints and receipts; without one, neither is made")
	fs.DurationVar(&c.CheckpointInterval, "checkpoint-interval", c.CheckpointInterval, "with --signing-key, append one signed checkpoint per `DURATION` (across all instances)")
	fs.StringVar(&c.HTTPListen, "http-listen", c.HTTPListen, "`HOST:PORT` of consentd's HTTP listener serving /metrics (Prometheus), /healthz and /readyz; none by default. It shows no consent data; keep it on loopback or a monitoring network")
	fs.Uint64Var(&c.ReadyMaxLag, "ready-max-lag", c.ReadyMaxLag, "`EVENTS` the index may lag the stream while /readyz answers ready")
	fs.StringVar(&c.NATSMonitor, "nats-monitor", c.NATSMonitor, "`HOST:PORT` of the embedded NATS server's monitoring (/varz, /jsz, /healthz, as nats-server's --http_port); none by default")
	fs.Usage = func() { printUsage(fs) }
	return fs
}

func printUsage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, `Usage: consentd [flags]

consentd records consent in a NATS JetStream stream and answers the consent
service on consent.v1.*. Without flags it embeds a NATS server on
127.0.0.1:4222 and keeps its data in ./consent-data.

Flags (each also read from the environment variable shown):
`)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n    \t%s (%s", f.Name, name, usage, envName(f.Name))
		if f.DefValue != "" {
			fmt.Fprintf(w, ", default %s", f.DefValue)
		}
		fmt.Fprintln(w, ")")
	})
}

// CommitsInGroups reports whether appends to a stream of the given
// replicas are committed in groups: as GroupCommit says, or under
// GroupCommitAuto where it was measured to win (with the embedded server
// fsyncing every write, and against a replicated stream).
func (c *Config) CommitsInGroups(replicas int) bool {
	switch c.GroupCommit {
	case GroupCommitOn:
		return true
	case GroupCommitOff:
		return false
	}
	if c.Embedded() {
		return c.Sync == SyncAlways
	}
	return replicas > 1
}

// groupCommitMode is the flag.Value of --group-commit: a mode, or true and
// false as the boolean flag it was (on and off).
type groupCommitMode string

func (m *groupCommitMode) String() string { return string(*m) }

func (m *groupCommitMode) Set(v string) error {
	switch v {
	case "true":
		v = GroupCommitOn
	case "false":
		v = GroupCommitOff
	}
	*m = groupCommitMode(v)
	return nil
}
