package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/consentledger/consent/internal/auth"
)

// runNATSConfig is the subcommand consentd nats-config: it opens the
// authority in --auth-dir (creating one when the directory holds none),
// writes into --out what a NATS cluster and its clients need to run with it
// (auth.Authority.WriteClusterConfig: accounts.conf, consentd.creds,
// admin.creds, sys.creds), and prints what it wrote and how to use it. It
// returns the exit code: 0, 1 when the authority or the files cannot be
// written, 2 for bad arguments.
func runNATSConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("consentd nats-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	authDir := fs.String("auth-dir", "", "the authority's `DIR`: operator and account keys, users (created when it holds none; give consentd the same --auth-dir)")
	outDir := fs.String("out", "", "`DIR` to write accounts.conf, consentd.creds, admin.creds and sys.creds into (mode 0700)")
	resolverDir := fs.String("resolver-dir", auth.DefaultResolverDir, "`PATH` of each nats-server's account resolver directory, as accounts.conf names it (relative paths are from the server's working directory)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: consentd nats-config --auth-dir DIR --out DIR [--resolver-dir PATH]")
		fmt.Fprintln(stderr, "\nWrites the accounts and credentials a NATS cluster needs for consentd --nats-url.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(msg string) int {
		fmt.Fprintln(stderr, "consentd nats-config:", msg)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usage(fmt.Sprintf("unexpected argument %q: nats-config takes only flags", fs.Arg(0)))
	case *authDir == "":
		return usage("--auth-dir is required: the authority's directory")
	case *outDir == "":
		return usage("--out is required: the directory to write the configuration into")
	case filepath.Clean(*authDir) == filepath.Clean(*outDir):
		return usage("--out must not be --auth-dir: the authority's directory holds its secret keys, --out what you hand out")
	}
	a, err := auth.Open(*authDir)
	if err != nil {
		fmt.Fprintln(stderr, "consentd nats-config:", err)
		return 1
	}
	cc, err := a.WriteClusterConfig(*outDir, *resolverDir)
	if err != nil {
		fmt.Fprintln(stderr, "consentd nats-config:", err)
		return 1
	}
	printNATSConfig(stdout, *authDir, cc)
	return 0
}

// printNATSConfig says what runNATSConfig wrote and how to use it.
func printNATSConfig(w io.Writer, authDir string, cc *auth.ClusterConfig) {
	state := func(file string) string {
		if slices.Contains(cc.Issued, file) {
			return "new"
		}
		return "kept"
	}
	path := func(file string) string { return filepath.Join(cc.Dir, file) }
	fmt.Fprintf(w, "Wrote to %s:\n", cc.Dir)
	fmt.Fprintf(w, "  %-15s operator, system account, %d accounts, full resolver in %s\n", auth.AccountsConfFile, cc.Accounts, cc.ResolverDir)
	fmt.Fprintf(w, "  %-15s %s: user of the service account SVC, for consentd\n", auth.ConsentdCredsFile, state(auth.ConsentdCredsFile))
	fmt.Fprintf(w, "  %-15s %s: user %q, admin of every tenant\n", auth.AdminCredsFile, state(auth.AdminCredsFile), auth.AdminUserName)
	fmt.Fprintf(w, "  %-15s %s: user of the system account SYS, to push account updates\n", auth.SysCredsFile, state(auth.SysCredsFile))
	if cc.RevokedAdmin {
		fmt.Fprintf(w, "\nThe earlier credentials of user %q were not in %s: they are revoked.\n", auth.AdminUserName, cc.Dir)
	}
	fmt.Fprintf(w, `
Each nats-server's configuration (every server needs its own resolver directory %s):
  include "%s"   # relative to the configuration file
Servers that run already learn of changes when consentd (or nats --creds %s) pushes
the accounts on $SYS.REQ.CLAIMS.UPDATE; a server started later reads them from %s.

Each consentd:
  consentd --nats-url nats://HOST:4222,... --nats-creds %s --auth-dir %s

The nats tool, as the admin of every tenant:
  nats --creds %s --inbox-prefix %s req consent.v1.purpose.list '{"tenant":"default"}'
`, cc.ResolverDir, auth.AccountsConfFile, path(auth.SysCredsFile), auth.AccountsConfFile,
		path(auth.ConsentdCredsFile), authDir, path(auth.AdminCredsFile), auth.InboxPrefix(auth.AdminUserName))
}
