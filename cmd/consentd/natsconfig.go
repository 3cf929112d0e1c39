package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/auth"
	"github.com/nats-io/nats.go"
)

// runNATSConfig is the subcommand consentd nats-config: it opens the
// authority in --auth-dir (creating one when the directory holds none),
// issues (--user, --role, --tenant) or revokes (--revoke, --tenant) one
// user if asked, writes into --out what a NATS cluster and its clients
// need to run with it (auth.Authority.WriteClusterConfig: accounts.conf,
// consentd.creds, admin.creds, sys.creds; the issued user's
// users/<tenant>/<name>.creds), pushes the accounts to the servers at
// --nats-url if given (with sys.creds), and prints what it did and how to
// use it. It returns the exit code: 0; 1 when the authority or the files
// cannot be written, the user cannot be issued or revoked, or the push
// fails; 2 for bad arguments.
func runNATSConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("consentd nats-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	authDir := fs.String("auth-dir", "", "the authority's `DIR`: operator and account keys, users (created when it holds none; give consentd the same --auth-dir)")
	outDir := fs.String("out", "", "`DIR` to write accounts.conf, consentd.creds, admin.creds and sys.creds into (mode 0700)")
	resolverDir := fs.String("resolver-dir", auth.DefaultResolverDir, "`PATH` of each nats-server's account resolver directory, as accounts.conf names it (relative paths are from the server's working directory)")
	user := fs.String("user", "", "issue credentials to user `NAME` (with --role and --tenant), written to --out's users/<tenant>/<name>.creds")
	role := fs.String("role", "", "the `ROLE` of --user: checker, writer, subscriber, auditor or admin")
	tenant := fs.String("tenant", events.DefaultTenant, "the `TENANT` of --user or --revoke; * for every tenant")
	revoke := fs.String("revoke", "", "revoke the credentials in force of user `NAME` of --tenant")
	natsURL := fs.String("nats-url", "", "push every account (new tenants, revocations) to the servers at `URLS`, connecting with --out's sys.creds")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: consentd nats-config --auth-dir DIR --out DIR [--resolver-dir PATH]")
		fmt.Fprintln(stderr, "                            [--user NAME --role ROLE | --revoke NAME] [--tenant TENANT] [--nats-url URLS]")
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
	case *user != "" && *revoke != "":
		return usage("--user and --revoke: one at a time")
	case (*user != "") != (*role != ""):
		return usage("--user and --role go together")
	}
	if *user != "" || *revoke != "" {
		flagName, name := "user", *user
		if *revoke != "" {
			flagName, name = "revoke", *revoke
		}
		if err := validUserArgs(flagName, name, *role, *tenant); err != nil {
			return usage(err.Error())
		}
	}
	failed := func(err error) int {
		fmt.Fprintln(stderr, "consentd nats-config:", err)
		return 1
	}
	a, err := auth.Open(*authDir)
	if err != nil {
		return failed(err)
	}
	var userFile string
	var userCreds []byte
	switch {
	case *user != "":
		if userCreds, err = a.IssueUser(*user, auth.Role(*role), *tenant); err != nil {
			return failed(err)
		}
	case *revoke != "":
		if err := a.Revoke(*revoke, *tenant); err != nil {
			return failed(err)
		}
	}
	cc, err := a.WriteClusterConfig(*outDir, *resolverDir)
	if err == nil && userCreds != nil {
		dir := filepath.Join(*outDir, "users", tenantDir(*tenant))
		userFile = filepath.Join(dir, *user+".creds")
		if err = os.MkdirAll(dir, 0o700); err == nil {
			err = os.WriteFile(userFile, userCreds, 0o600)
		}
	}
	if err != nil {
		if userCreds != nil {
			err = fmt.Errorf("%w (user %s of tenant %s is issued, but its credentials are not written: revoke it with --revoke %s --tenant %s)", err, *user, *tenant, *user, *tenant)
		}
		return failed(err)
	}
	printNATSConfig(stdout, *authDir, cc)
	if userFile != "" {
		fmt.Fprintf(stdout, "\nIssued %s (role %s, tenant %s) to %s; give the client --inbox-prefix %s.\n", *user, *role, *tenant, userFile, auth.InboxPrefix(*user))
	}
	if *revoke != "" {
		fmt.Fprintf(stdout, "\nRevoked %s of tenant %s.\n", *revoke, *tenant)
	}
	if *natsURL == "" {
		if *user != "" || *revoke != "" {
			fmt.Fprintln(stdout, "Running servers learn of it once the accounts are pushed: run again with --nats-url.")
		}
		return 0
	}
	if err := pushAccounts(a, *natsURL, filepath.Join(*outDir, auth.SysCredsFile)); err != nil {
		return failed(err)
	}
	fmt.Fprintf(stdout, "Pushed every account to %s.\n", *natsURL)
	return 0
}

// validUserArgs checks the user name given to flagName (user or revoke),
// --role and --tenant, naming the flag.
func validUserArgs(flagName, name, role, tenant string) error {
	if err := events.ValidateName(flagName, name); err != nil {
		return fmt.Errorf("--%w", err)
	}
	if role != "" {
		if err := auth.Role(role).Validate(); err != nil {
			return fmt.Errorf("--%w", err)
		}
	}
	if tenant != auth.AllTenants {
		if err := events.ValidateName("tenant", tenant); err != nil {
			return fmt.Errorf("--%w", err)
		}
	}
	return nil
}

// tenantDir is the directory of a tenant's users under --out/users.
func tenantDir(tenant string) string {
	if tenant == auth.AllTenants {
		return auth.AllTenantsToken
	}
	return tenant
}

// pushAccounts connects to urls with the SYS credentials in sysCreds and
// pushes every account of a (auth.Authority.Push).
func pushAccounts(a *auth.Authority, urls, sysCreds string) error {
	nc, err := nats.Connect(urls, nats.UserCredentials(sysCreds), nats.Name("consentd nats-config"))
	if err != nil {
		return fmt.Errorf("connect to %s as the system user: %w", urls, err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a.Push(ctx, nc)
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
	if cc.AdminElsewhere {
		fmt.Fprintf(w, "  %-15s not written: user %q, admin of every tenant, has credentials elsewhere\n", auth.AdminCredsFile, auth.AdminUserName)
	} else {
		fmt.Fprintf(w, "  %-15s %s: user %q, admin of every tenant\n", auth.AdminCredsFile, state(auth.AdminCredsFile), auth.AdminUserName)
	}
	fmt.Fprintf(w, "  %-15s %s: user of the system account SYS, to push account updates\n", auth.SysCredsFile, state(auth.SysCredsFile))
	if cc.AdminElsewhere {
		fmt.Fprintf(w, "\nUser %q is in force with credentials written elsewhere: use those, or run again with\n--revoke %s --tenant '*' to have new ones written here.\n", auth.AdminUserName, auth.AdminUserName)
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
