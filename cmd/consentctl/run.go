package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
)

// Exit codes.
const (
	exitOK       = 0
	exitRequired = 1 // check: consent is required
	exitError    = 2 // anything else, usage errors included
)

// globals are the flags every command takes, before or after its name.
type globals struct {
	server   string
	creds    string
	user     string
	password string
	tlsCA    string
	tlsCert  string
	tlsKey   string
	tenant   string
	json     bool
	timeout  time.Duration
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", g.server, "NATS `URL` where consentd's service runs ($NATS_URL if set)")
	fs.StringVar(&g.creds, "creds", g.creds, "NATS credentials `FILE` (default: "+defaultCreds+" when it exists, as consentd writes it on its first start)")
	fs.StringVar(&g.user, "user", g.user, "NATS `USER` name")
	fs.StringVar(&g.password, "password", g.password, "NATS `PASSWORD`")
	fs.StringVar(&g.tlsCA, "tls-ca", g.tlsCA, "CA certificate `FILE` (PEM) that signed the server's certificate; connects over TLS")
	fs.StringVar(&g.tlsCert, "tls-cert", g.tlsCert, "client certificate `FILE` (PEM, with --tls-key), for a server that asks for one")
	fs.StringVar(&g.tlsKey, "tls-key", g.tlsKey, "private key `FILE` (PEM) of --tls-cert")
	fs.StringVar(&g.tenant, "tenant", g.tenant, "`TENANT` the consents belong to (default: default)")
	fs.BoolVar(&g.json, "json", g.json, "print the service's JSON instead of a table")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "how long to wait for an answer (`DURATION`)")
}

// command is one subcommand: its positional arguments, its own flags, and
// what it does once connected.
type command struct {
	name    string
	args    string // positional arguments, for the usage line
	summary string
	nargs   [2]int                 // minimum and maximum number of positional arguments
	flags   func(fs *flag.FlagSet) // registers the command's own flags
	do      func(ctx context.Context, e *env, args []string) int
	// untimed commands (watch) run until interrupted: their ctx ends on
	// SIGINT or SIGTERM, not after --timeout.
	untimed bool
	// offline commands (audit keygen, audit verify-receipt) need no NATS:
	// env.nc and env.client are nil.
	offline bool
}

// env is what a command runs with.
type env struct {
	g      *globals
	nc     *nats.Conn
	client *client.Client
	stdout io.Writer
	stderr io.Writer
	set    map[string]bool // flags given on the command line
	ctx    context.Context // the command's; its cause says why it was cut short
}

func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{server: nats.DefaultURL, timeout: 5 * time.Second}
	if u := os.Getenv("NATS_URL"); u != "" {
		g.server = u
	}
	cmds := allCommands()

	top := globalFlags(g)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, top, cmds)
			return exitOK
		}
		return flagError(stderr, err, "consentctl --help")
	}
	if top.NArg() == 0 {
		usage(stderr, top, cmds)
		return exitError
	}
	name, rest := top.Arg(0), top.Args()[1:]
	if name == "help" {
		return help(stdout, stderr, g, cmds, rest)
	}
	if len(rest) > 0 && findCommand(cmds, name+" "+rest[0]) != nil {
		name, rest = name+" "+rest[0], rest[1:] // a two-word command: audit export
	}
	cmd := findCommand(cmds, name)
	if cmd == nil {
		if len(subcommands(cmds, name)) > 0 && len(rest) > 0 && isHelp(rest[0]) {
			groupUsage(stdout, cmds, name)
			return exitOK
		}
		return unknownCommand(stderr, cmds, name, rest)
	}

	fs := commandFlags(g, cmd)
	positional, err := parseInterleaved(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(stdout, fs, cmd)
			return exitOK
		}
		return flagError(stderr, err, "consentctl "+cmd.name+" --help")
	}
	if len(positional) < cmd.nargs[0] || len(positional) > cmd.nargs[1] {
		fmt.Fprintf(stderr, "consentctl: usage: %s\nRun consentctl %s --help for its arguments and flags.\n", usageLine(cmd), cmd.name)
		return exitError
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var nc *nats.Conn
	// The server refuses a publish the user's permissions do not allow
	// by telling the connection, not the request: waiting for the answer
	// would take --timeout.
	refused := make(chan error, 1)
	if !cmd.offline {
		if (g.tlsCert == "") != (g.tlsKey == "") {
			fmt.Fprintln(stderr, "consentctl: --tls-cert and --tls-key go together")
			return exitError
		}
		if nc, err = connect(g, refused); err != nil {
			fmt.Fprintf(stderr, "consentctl: cannot reach NATS at %s: %v\n  %s\n", g.server, err, connectHint(err))
			return exitError
		}
		defer nc.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	if cmd.untimed {
		cancel()
		ctx, cancel = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	}
	defer cancel()
	ctx, refuse := context.WithCancelCause(ctx)
	defer refuse(nil)
	go func() {
		select {
		case err := <-refused:
			refuse(err)
		case <-ctx.Done():
		}
	}()
	e := &env{g: g, nc: nc, client: client.NewClient(nc, client.ClientOptions{Timeout: g.timeout, ServiceFeed: true}), stdout: stdout, stderr: stderr, set: set, ctx: ctx}
	return cmd.do(ctx, e, positional)
}

// allCommands lists every command of consentctl, in the order of
// consentctl --help.
func allCommands() []command {
	return append(commands(), auditCommands()...)
}

// globalFlags returns the flag set of consentctl before the command: the
// global flags alone. It prints nothing; run reports its errors.
func globalFlags(g *globals) *flag.FlagSet {
	top := flag.NewFlagSet("consentctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	top.Usage = func() {}
	g.register(top)
	return top
}

// commandFlags returns the flag set of a command: the global flags and
// its own. It prints nothing; run reports its errors.
func commandFlags(g *globals, cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet("consentctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	g.register(fs)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	return fs
}

// findCommand returns the command named name, or nil.
func findCommand(cmds []command, name string) *command {
	for i := range cmds {
		if cmds[i].name == name {
			return &cmds[i]
		}
	}
	return nil
}

// subcommands returns the second words of the two-word commands that start
// with group (audit: export, verify, ...).
func subcommands(cmds []command, group string) []string {
	var out []string
	for _, c := range cmds {
		if sub, ok := strings.CutPrefix(c.name, group+" "); ok {
			out = append(out, sub)
		}
	}
	return out
}

// parseInterleaved parses flags that may come before, between and after the
// positional arguments, which it returns.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		rest := fs.Args()
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// defaultCreds is where consentd, run with its defaults in this
// directory, writes the administrator's credentials.
var defaultCreds = filepath.Join("consent-data", "admin.creds")

func connect(g *globals, refused chan<- error) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("consentctl"), nats.Timeout(g.timeout),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				select {
				case refused <- err:
				default:
				}
			}
		})}
	creds := g.creds
	if creds == "" && g.user == "" {
		if _, err := os.Stat(defaultCreds); err == nil {
			creds = defaultCreds
		}
	}
	if creds != "" {
		credOpts, err := credsOptions(creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, credOpts...)
	}
	if g.user != "" {
		opts = append(opts, nats.UserInfo(g.user, g.password))
	}
	// A tls:// URL connects over TLS by itself, trusting the system's CAs
	// unless --tls-ca names one.
	if g.tlsCA != "" {
		opts = append(opts, nats.RootCAs(g.tlsCA))
	}
	if g.tlsCert != "" {
		opts = append(opts, nats.ClientCert(g.tlsCert, g.tlsKey))
	}
	return nats.Connect(g.server, opts...)
}

// credsOptions reads a credentials file: the user's JWT and seed, and the
// inbox prefix its permissions require. It refuses a file that others may
// read.
func credsOptions(path string) ([]nats.Option, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--creds: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("--creds %s: mode %#o lets other users read these credentials; chmod 600 %s", path, info.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--creds: %w", err)
	}
	opts, err := auth.ConnectOptions(data)
	if err != nil {
		return nil, fmt.Errorf("--creds %s: %w", path, err)
	}
	return opts, nil
}

// clientCertRefused matches the errors of a server that refuses the client
// certificate (or its absence): its TLS alert, or its hang-up right after
// the handshake, depending on timing.
var clientCertRefused = regexp.MustCompile(`certificate required|bad certificate|unknown certificate authority|closed by remote after TLS handshake`)

// connectHint says what to do when NATS cannot be reached: mostly start
// consentd, but a TLS failure needs a certificate instead.
func connectHint(err error) string {
	var unknownCA x509.UnknownAuthorityError
	switch {
	case errors.As(err, &unknownCA):
		return "The server's certificate is signed by a CA this machine does not trust: give that CA with --tls-ca FILE."
	case clientCertRefused.MatchString(err.Error()):
		return "The server refused the connection during TLS: it asks for a client certificate signed by a CA it trusts (--tls-cert FILE --tls-key FILE)."
	case errors.Is(err, fs.ErrNotExist):
		return "Check the files given to --tls-ca, --tls-cert, --tls-key and --creds."
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAuthExpired):
		return "The server refused the credentials: none were given (--creds FILE, or consent-data/" + filepath.Base(defaultCreds) + " in this directory), or they were revoked or are another consentd's. An admin issues new ones: consentctl user add NAME --role ROLE --out FILE."
	case errors.Is(err, nats.ErrSecureConnWanted):
		return "The server does not offer TLS: use a nats:// URL without --tls-ca, or start consentd with --tls-cert and --tls-key."
	}
	return fmt.Sprintf("Start consentd (it listens on %s by default), or point --server at the NATS server where it runs.", nats.DefaultURL)
}

// fail reports an error that is not "consent required" and returns
// exitError, with a hint when the error has an obvious remedy.
func (e *env) fail(err error) int {
	if cause := context.Cause(e.ctx); errors.Is(err, context.Canceled) && errors.Is(cause, nats.ErrPermissionViolation) {
		fmt.Fprintf(e.stderr, "consentctl: %v\n  The credentials in use may not do this (each role has its own endpoints: see docs/security.md); an admin issues a user with the role it needs: consentctl user add NAME --role ROLE.\n", cause)
		return exitError
	}
	fmt.Fprintf(e.stderr, "consentctl: %v\n", err)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		fmt.Fprintf(e.stderr, "  Nothing answers the consent service at %s: start consentd, or point --server at the NATS server where it runs.\n", e.g.server)
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(e.stderr, "  No answer within %s; try again, or raise --timeout.\n", e.g.timeout)
	case errors.Is(err, wire.ErrUnavailable) && passes(err):
		fmt.Fprintln(e.stderr, "  The service is not ready; try again in a moment.")
	}
	return exitError
}

// passes reports whether a 503 will pass by itself (not ready yet, index
// behind: its description says to retry) rather than last until consentd
// is configured otherwise (receipts without a signing key, no purpose
// registry), which the description says and a retry does not change.
func passes(err error) bool {
	var we *wire.Error
	if !errors.As(err, &we) {
		return true
	}
	d := we.Description
	return d == "" || strings.Contains(d, "retry") || strings.Contains(d, "not ready")
}
