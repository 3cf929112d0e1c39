package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startConsentdWithAuth wires what the default consentd runs with
// authentication: an authority (internal/auth) the embedded server trusts,
// the stream, projector, service and feed in the service account, the
// service deciding every request with the authority (and issuing users),
// and the administrator's credentials, written (mode 0600) where consentd
// writes them: <dir>/consent-data/admin.creds. It returns the URL and dir.
func startConsentdWithAuth(t *testing.T) (url, dir string) {
	t.Helper()
	dir = t.TempDir()
	dataDir := filepath.Join(dir, "consent-data")
	a, err := auth.Open(filepath.Join(dataDir, "auth"))
	require.NoError(t, err)
	var svcCreds []byte
	s := natstest.RunServer(t, natstest.SyncAlways(), func(o *server.Options) {
		svcCreds, err = a.ServerOptions(o)
		require.NoError(t, err)
	})
	connOpts, err := auth.ConnectOptions(svcCreds)
	require.NoError(t, err)
	admin, err := a.IssueUser("admin", auth.Admin, auth.AllTenants)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, "admin.creds"), admin, 0o600))

	runStack(t, s, connOpts, dataDir,
		ledger.ServiceConfig{Authorize: a.ServiceAuthorize(), Users: a.ServiceUsers()},
		ledger.FeedConfig{Identify: a.ServiceAuthorize(), Authorize: a.GrantFeed})
	return s.ClientURL(), dir
}

// adminCreds is the administrator's credentials file of a consentd of
// startConsentdWithAuth.
func adminCreds(dir string) string { return filepath.Join(dir, "consent-data", "admin.creds") }

// addUser issues a user with consentctl user add --out and returns the
// credentials file.
func addUser(t *testing.T, url, dir, name, role, tenant string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), name+"-"+tenant+".creds")
	code, _, errOut := ctl(t, url, "--creds", adminCreds(dir), "user", "add", name, "--role", role, "--tenant", tenant, "--out", file)
	require.Equal(t, exitOK, code, errOut)
	return file
}

// TestConsentctlUsers: an admin issues credentials with consentctl user
// add (a private file, and how to use it), they work for what their role
// may do, user list shows them, and after user revoke the next call with
// them fails.
func TestConsentctlUsers(t *testing.T) {
	url, dir := startConsentdWithAuth(t)
	file := filepath.Join(t.TempDir(), "app.creds")
	code, out, errOut := ctl(t, url, "--creds", adminCreds(dir), "user", "add", "app", "--role", "writer", "--tenant", "acme", "--out", file)
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, fmt.Sprintf("user app (writer of tenant acme) written to %s\n  connect with: nats --creds %s --inbox-prefix _INBOX_app ...\n", file, file), out)
	fi, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	creds, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Contains(t, string(creds), "-----BEGIN NATS USER JWT-----")
	assert.Contains(t, string(creds), "-----BEGIN USER NKEY SEED-----")

	// The same name again is refused while its credentials are in force;
	// --out never overwrites a file, and is checked before anything is
	// issued (user list below has no "other").
	code, _, errOut = ctl(t, url, "--creds", adminCreds(dir), "user", "add", "app", "--role", "writer", "--tenant", "acme")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, `user "app" of tenant "acme": user exists; revoke it first (consentctl user revoke)`)
	code, _, errOut = ctl(t, url, "--creds", adminCreds(dir), "user", "add", "other", "--role", "writer", "--tenant", "acme", "--out", file)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "--out: open "+file+": file exists")

	// The writer writes and looks up in its tenant.
	code, out, errOut = ctl(t, url, "--creds", file, "--tenant", "acme", "grant", "alice", "newsletter")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "consent.granted at seq 1")
	code, out, errOut = ctl(t, url, "--creds", file, "--tenant", "acme", "check", "alice", "newsletter", "--min-seq", "1")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^acme\s+alice\s+newsletter\s+granted\s+yes\s`, out)
	// The history names it as the recorder.
	code, out, errOut = ctl(t, url, "--creds", adminCreds(dir), "--tenant", "acme", "history", "alice", "--json")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"recorded_by": "app@acme"`)

	// A checker looks up but records nothing.
	checker := addUser(t, url, dir, "gate", "checker", "acme")
	code, _, errOut = ctl(t, url, "--creds", checker, "--tenant", "acme", "status", "alice", "newsletter")
	require.Equal(t, exitOK, code, errOut)
	code, _, errOut = ctl(t, url, "--creds", checker, "--tenant", "acme", "grant", "bob", "newsletter")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, `Permissions Violation for Publish to "consent.v1.grant"`)

	code, out, errOut = ctl(t, url, "--creds", adminCreds(dir), "--tenant", "acme", "user", "list")
	require.Equal(t, exitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	assert.Regexp(t, `^NAME\s+ROLE\s+TENANT\s+ISSUED\s+REVOKED\s+PUBLIC KEY$`, lines[0])
	assert.Regexp(t, `^app\s+writer\s+acme\s+\S+\s+-\s+U[A-Z0-9]{55}$`, lines[1])
	assert.Regexp(t, `^gate\s+checker\s+acme\s+\S+\s+-\s+U`, lines[2])

	code, out, errOut = ctl(t, url, "--creds", adminCreds(dir), "--tenant", "acme", "user", "revoke", "app")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "user app revoked\n", out)
	code, _, errOut = ctl(t, url, "--creds", file, "--tenant", "acme", "status", "alice", "newsletter")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "nats: Authorization Violation\n  The server refused the credentials: none were given (--creds FILE, or consent-data/admin.creds in this directory), or they were revoked or are another consentd's. An admin issues new ones: consentctl user add NAME --role ROLE --out FILE.\n")
	assert.NotContains(t, errOut, "Start consentd")
	code, out, errOut = ctl(t, url, "--creds", adminCreds(dir), "--tenant", "acme", "user", "list")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^app\s+writer\s+acme\s+\S+\s+\d{4}-\d\d-\d\dT\S+\s+U`, out, "revoked")
	// Revoking it again: nothing in force.
	code, _, errOut = ctl(t, url, "--creds", adminCreds(dir), "--tenant", "acme", "user", "revoke", "app")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, `name: "app" has no credentials in force in tenant "acme"`)
}

// TestConsentctlRefusesCredsOthersMayRead: --creds of a file group or
// others may read is refused before connecting, naming chmod.
func TestConsentctlRefusesCredsOthersMayRead(t *testing.T) {
	url, dir := startConsentdWithAuth(t)
	file := addUser(t, url, dir, "app", "writer", "acme")
	require.NoError(t, os.Chmod(file, 0o644))
	code, _, errOut := ctl(t, url, "--creds", file, "--tenant", "acme", "status", "alice", "newsletter")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, fmt.Sprintf("--creds %s: mode 0644 lets other users read these credentials; chmod 600 %s", file, file))
}

// TestConsentctlUsesTheAdminCredsBesideIt: run in the directory where
// consentd keeps consent-data, consentctl uses consent-data/admin.creds
// without --creds; elsewhere it connects without credentials, which the
// server refuses.
func TestConsentctlUsesTheAdminCredsBesideIt(t *testing.T) {
	url, dir := startConsentdWithAuth(t)
	t.Chdir(dir)
	code, out, errOut := ctl(t, url, "user", "add", "app", "--role", "writer", "--tenant", "acme", "--out", "app.creds")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "written to app.creds")
	code, _, errOut = ctl(t, url, "--tenant", "acme", "grant", "alice", "newsletter")
	require.Equal(t, exitOK, code, errOut)
	code, out, errOut = ctl(t, url, "--tenant", "acme", "history", "alice", "--json")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"recorded_by": "admin@_all"`)

	t.Chdir(t.TempDir())
	code, _, errOut = ctl(t, url, "--tenant", "acme", "status", "alice", "newsletter")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "nats: Authorization Violation\n  The server refused the credentials: none were given")
}

// TestConsentctlFailsAtOnceOnAPermissionViolation: a request the
// credentials' role may not make fails when the server refuses it, long
// before --timeout, with the hint naming consentctl user add.
func TestConsentctlFailsAtOnceOnAPermissionViolation(t *testing.T) {
	url, dir := startConsentdWithAuth(t)
	checker := addUser(t, url, dir, "gate", "checker", "acme")
	const timeout = 30 * time.Second
	for _, args := range [][]string{
		{"grant", "alice", "newsletter"},
		{"purpose", "set", "newsletter", "--policy-version", "2"},
		{"history", "alice"},
		{"user", "list"},
	} {
		t.Run(args[0], func(t *testing.T) {
			start := time.Now()
			code, out, errOut := ctl(t, url, append([]string{"--creds", checker, "--tenant", "acme", "--timeout", timeout.String()}, args...)...)
			elapsed := time.Since(start)
			assert.Equal(t, exitError, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, "nats: permissions violation: Permissions Violation for Publish to")
			assert.Contains(t, errOut, "an admin issues a user with the role it needs: consentctl user add NAME --role ROLE")
			assert.NotContains(t, errOut, "No answer within")
			assert.Less(t, elapsed, timeout/3, "failed after %v, not at once", elapsed)
		})
	}
}

// TestConsentctlWatchAsTenantSubscriber: consentctl watch with the
// credentials of acme's subscriber prints acme's changes and none of
// globex's.
func TestConsentctlWatchAsTenantSubscriber(t *testing.T) {
	url, dir := startConsentdWithAuth(t)
	acme := addUser(t, url, dir, "app", "writer", "acme")
	globex := addUser(t, url, dir, "app", "writer", "globex")
	mailer := addUser(t, url, dir, "mailer", "subscriber", "acme")
	for _, step := range []struct {
		creds, tenant, who string
	}{{acme, "acme", "alice"}, {globex, "globex", "bob"}, {acme, "acme", "carol"}, {globex, "globex", "dave"}} {
		code, _, errOut := ctl(t, url, "--creds", step.creds, "--tenant", step.tenant, "grant", step.who, "newsletter")
		require.Equal(t, exitOK, code, errOut)
	}

	// Every change from the start, until --for ends the watch: acme's two
	// (consentctl watch opens it through the service by default).
	code, out, errOut := ctl(t, url, "--creds", mailer, "--tenant", "acme", "watch", "--from-seq", "1", "--for", "3s")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, errOut, "Watching changes from seq 1 of every purpose in tenant acme")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	assert.Regexp(t, `^1 \S+ acme alice newsletter granted \(recorded by app@acme\) -> granted, allowed$`, lines[0])
	assert.Regexp(t, `^3 \S+ acme carol newsletter granted \(recorded by app@acme\) -> granted, allowed$`, lines[1])

	// Without --tenant the feed is the account's tenant's.
	code, again, errOut := ctl(t, url, "--creds", mailer, "watch", "--from-seq", "1", "--count", "2", "--for", "10s")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, out, again)

	// A durable watch likewise.
	code, out, errOut = ctl(t, url, "--creds", mailer, "--tenant", "acme", "watch", "--durable", "mails", "--from-seq", "1", "--count", "2", "--for", "10s")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, 2, strings.Count(out, " acme "), out)
	assert.NotContains(t, out, "globex")

	// Another tenant's feed is refused.
	code, _, errOut = ctl(t, url, "--creds", mailer, "--tenant", "globex", "watch", "--for", "3s")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, `forbidden: tenant "globex": your credentials are for tenant "acme" only`)
}

// TestConsentctlCredsPerRole: with --creds of each role of tenant acme,
// consentctl does what the role may and fails at once on what it may
// not.
func TestConsentctlCredsPerRole(t *testing.T) {
	url, dir := startConsentdWithAuth(t)
	code, _, errOut := ctl(t, url, "--creds", adminCreds(dir), "--tenant", "acme", "grant", "alice", "newsletter")
	require.Equal(t, exitOK, code, errOut)
	for _, tt := range []struct {
		role        string
		may, mayNot [][]string
	}{
		{"checker", [][]string{{"status", "alice", "newsletter"}, {"check", "alice", "newsletter"}, {"list", "alice"}}, [][]string{{"grant", "bob", "newsletter"}, {"history", "alice"}}},
		{"writer", [][]string{{"grant", "bob", "newsletter"}, {"status", "bob", "newsletter"}}, [][]string{{"history", "alice"}, {"purpose", "list"}}},
		{"subscriber", [][]string{{"status", "alice", "newsletter"}, {"watch", "--from-seq", "1", "--count", "1", "--for", "10s"}}, [][]string{{"grant", "bob", "newsletter"}, {"history", "alice"}}},
		{"auditor", [][]string{{"history", "alice"}}, [][]string{{"status", "alice", "newsletter"}, {"revoke", "alice", "newsletter"}}},
		{"admin", [][]string{{"purpose", "set", "newsletter", "--policy-version", "1"}, {"user", "list"}, {"history", "alice"}, {"revoke", "alice", "newsletter"}}, nil},
	} {
		t.Run(tt.role, func(t *testing.T) {
			creds := addUser(t, url, dir, "u-"+tt.role, tt.role, "acme")
			for _, args := range tt.may {
				code, _, errOut := ctl(t, url, append([]string{"--creds", creds, "--tenant", "acme"}, args...)...)
				assert.Equal(t, exitOK, code, "%v: %s", args, errOut)
			}
			for _, args := range tt.mayNot {
				code, _, errOut := ctl(t, url, append([]string{"--creds", creds, "--tenant", "acme"}, args...)...)
				assert.Equal(t, exitError, code, "%v", args)
				assert.Contains(t, errOut, "Permissions Violation for Publish to", "%v", args)
			}
		})
	}
	// An admin of acme is not one of globex.
	creds := addUser(t, url, dir, "boss", "admin", "acme")
	code, _, errOut = ctl(t, url, "--creds", creds, "--tenant", "globex", "user", "list")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, `forbidden: tenant "globex": your credentials are for tenant "acme" only (403)`)
}
