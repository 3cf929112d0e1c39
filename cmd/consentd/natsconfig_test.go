package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
)

// natsConfig runs consentd nats-config with args and returns its exit code
// and output.
func natsConfig(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runNATSConfig(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestNATSConfigWritesPrivateFilesAndKeepsValidCredentials(t *testing.T) {
	root := t.TempDir()
	authDir, out := filepath.Join(root, "auth"), filepath.Join(root, "out")
	code, stdout, stderr := natsConfig("--auth-dir", authDir, "--out", out, "--resolver-dir", "/data/jwt")
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{
		`include "accounts.conf"`,
		"--nats-creds " + filepath.Join(out, "consentd.creds") + " --auth-dir " + authDir,
		"nats --creds " + filepath.Join(out, "admin.creds") + " --inbox-prefix _INBOX_admin",
		"consentd.creds  new", "admin.creds     new", "sys.creds       new",
	} {
		assert.Contains(t, stdout, want)
	}
	fi, err := os.Stat(out)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())
	files := map[string][]byte{}
	for _, name := range []string{"accounts.conf", "consentd.creds", "admin.creds", "sys.creds"} {
		p := filepath.Join(out, name)
		fi, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), name)
		files[name], err = os.ReadFile(p)
		require.NoError(t, err)
	}
	conf := string(files["accounts.conf"])
	a, err := auth.Open(authDir)
	require.NoError(t, err)
	assert.Contains(t, conf, fmt.Sprintf("operator: %q", a.OperatorJWT()))
	assert.Contains(t, conf, "system_account: "+a.SystemAccountKey())
	assert.Contains(t, conf, `dir: "/data/jwt"`)
	for key, tok := range a.AccountJWTs() {
		assert.Contains(t, conf, fmt.Sprintf("%s: %q", key, tok))
	}
	// Who each credential is.
	issuer := func(name string) *jwt.UserClaims {
		tok, err := jwt.ParseDecoratedJWT(files[name])
		require.NoError(t, err)
		uc, err := jwt.DecodeUserClaims(tok)
		require.NoError(t, err)
		return uc
	}
	assert.Equal(t, a.ServiceAccountKey(), issuer("consentd.creds").Issuer)
	assert.Equal(t, a.SystemAccountKey(), issuer("sys.creds").Issuer)
	allKey, err := a.Tenant(auth.AllTenants)
	require.NoError(t, err)
	admin := issuer("admin.creds")
	assert.Equal(t, allKey, admin.IssuerAccount)
	assert.Equal(t, "admin", admin.Name)
	users := a.Users(auth.AllTenants)
	require.Len(t, users, 1)
	assert.Equal(t, auth.Admin, users[0].Role)

	// Again: the credentials stay, accounts.conf has the new tenant.
	_, err = a.IssueUser("mailer", auth.Writer, "acme")
	require.NoError(t, err)
	code, stdout, stderr = natsConfig("--auth-dir", authDir, "--out", out)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "admin.creds     kept")
	for _, name := range []string{"consentd.creds", "admin.creds", "sys.creds"} {
		again, err := os.ReadFile(filepath.Join(out, name))
		require.NoError(t, err)
		assert.Equal(t, string(files[name]), string(again), name)
	}
	acme, err := a.Tenant("acme")
	require.NoError(t, err)
	conf2, err := os.ReadFile(filepath.Join(out, "accounts.conf"))
	require.NoError(t, err)
	assert.Contains(t, string(conf2), acme+": ")
	assert.Contains(t, string(conf2), `dir: "./jwt"`, "the default resolver directory")

	// Into another directory: the admin in force keeps its credentials,
	// none are written there, until it is revoked.
	other := filepath.Join(root, "other")
	code, stdout, stderr = natsConfig("--auth-dir", authDir, "--out", other)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, `admin.creds     not written: user "admin", admin of every tenant, has credentials elsewhere`)
	assert.Contains(t, stdout, `--revoke admin --tenant '*' to have new ones written here`)
	assert.NoFileExists(t, filepath.Join(other, "admin.creds"))
	assert.FileExists(t, filepath.Join(other, "consentd.creds"))
	require.Len(t, a.Users(auth.AllTenants), 1)
	code, stdout, stderr = natsConfig("--auth-dir", authDir, "--out", other, "--revoke", "admin", "--tenant", "*")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "admin.creds     new")
	users = a.Users(auth.AllTenants)
	require.Len(t, users, 2)
	assert.NotNil(t, users[0].RevokedAt)
	assert.Nil(t, users[1].RevokedAt)
	fresh, err := os.ReadFile(filepath.Join(other, "admin.creds"))
	require.NoError(t, err)
	tok, err := jwt.ParseDecoratedJWT(fresh)
	require.NoError(t, err)
	uc, err := jwt.DecodeUserClaims(tok)
	require.NoError(t, err)
	assert.Equal(t, users[1].PublicKey, uc.Subject)
}

func TestNATSConfigRefusesBadArguments(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--out", dir + "/o"}, 2, "--auth-dir is required"},
		{[]string{"--auth-dir", dir + "/a"}, 2, "--out is required"},
		{[]string{"--auth-dir", dir + "/a", "--out", dir + "/a/"}, 2, "--out must not be --auth-dir"},
		{[]string{"--auth-dir", dir + "/a", "--out", dir + "/o", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--data-dir", "x"}, 2, "flag provided but not defined: -data-dir"},
		{[]string{"--auth-dir", dir + "/a", "--out", dir + "/o", "--resolver-dir", `a"b`}, 1, "resolver_dir: must not hold a double quote"},
		{[]string{"--auth-dir", dir + "/a", "--out", dir + "/o", "--user", "bob"}, 2, "--user and --role go together"},
		{[]string{"--auth-dir", dir + "/a", "--out", dir + "/o", "--role", "writer"}, 2, "--user and --role go together"},
		{[]string{"--auth-dir", dir + "/a", "--out", dir + "/o", "--user", "bob", "--role", "writer", "--revoke", "bob"}, 2, "--user and --revoke: one at a time"},
		{[]string{"--auth-dir", dir + "/a", "--out", dir + "/o", "--user", "Bob", "--role", "writer"}, 2, "--user: "},
		{[]string{"--auth-dir", dir + "/a", "--out", dir + "/o", "--revoke", "a.b"}, 2, "--revoke: "},
		{[]string{"--auth-dir", dir + "/a", "--out", dir + "/o", "--user", "bob", "--role", "root"}, 2, `--role "root": must be one of`},
		{[]string{"--auth-dir", dir + "/a", "--out", dir + "/o", "--user", "bob", "--role", "writer", "--tenant", "Acme"}, 2, "--tenant: "},
		{[]string{"--auth-dir", dir + "/a", "--out", dir + "/o", "--revoke", "nobody"}, 1, `user "nobody" of tenant "default": no such user`},
	} {
		code, _, stderr := natsConfig(tc.args...)
		assert.Equal(t, tc.code, code, tc.args)
		assert.Contains(t, stderr, tc.want, tc.args)
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "open"), 0o755))
	code, _, stderr := natsConfig("--auth-dir", dir+"/a", "--out", dir+"/open")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, dir+"/open: mode 0755")
	code, _, _ = natsConfig("--help")
	assert.Equal(t, 0, code)
}

// authCluster is three nats-servers in this process, each started with
// server.ProcessConfigFile from a configuration file that includes the
// accounts.conf consentd nats-config wrote for it.
type authCluster struct {
	nodes []*server.Server
	confs []string // each node's configuration file
	out   string   // nats-config's --out: the credentials
}

// startAuthCluster runs consentd nats-config for each node (one --out,
// so the credentials are written once; each node its own resolver
// directory, copying accounts.conf beside its configuration) and starts
// the cluster, waiting for every JetStream peer.
func startAuthCluster(t *testing.T, authDir string) *authCluster {
	t.Helper()
	return startAuthClusterSyncing(t, authDir, "always")
}

// startAuthClusterSyncing is startAuthCluster with the nodes' JetStream
// sync_interval set to syncInterval ("always", or a duration).
func startAuthClusterSyncing(t *testing.T, authDir, syncInterval string) *authCluster {
	t.Helper()
	root := t.TempDir()
	c := &authCluster{out: filepath.Join(root, "out")}
	ports := make([]int, 6)
	for i := range ports {
		ports[i] = natstest.FreePort(t)
	}
	routes := fmt.Sprintf("nats-route://127.0.0.1:%d, nats-route://127.0.0.1:%d, nats-route://127.0.0.1:%d", ports[3], ports[4], ports[5])
	for i := range 3 {
		dir := filepath.Join(root, fmt.Sprintf("n%d", i+1))
		require.NoError(t, os.MkdirAll(dir, 0o700))
		code, _, stderr := natsConfig("--auth-dir", authDir, "--out", c.out, "--resolver-dir", filepath.Join(dir, "jwt"))
		require.Equal(t, 0, code, stderr)
		accounts, err := os.ReadFile(filepath.Join(c.out, "accounts.conf"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "accounts.conf"), accounts, 0o600))
		conf := filepath.Join(dir, "nats.conf")
		require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, `
server_name: n%d
listen: 127.0.0.1:%d
jetstream { store_dir: %q, sync_interval: %s }
cluster { name: consent, listen: 127.0.0.1:%d, routes: [%s] }
include "accounts.conf"
`, i+1, ports[i], filepath.Join(dir, "js"), syncInterval, ports[3+i], routes), 0o600))
		c.confs = append(c.confs, conf)
		c.nodes = append(c.nodes, nil)
	}
	for i := range c.confs {
		c.start(t, i)
	}
	require.Eventually(t, func() bool {
		for _, s := range c.nodes {
			if s.JetStreamIsLeader() {
				return len(s.JetStreamClusterPeers()) == 3
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "a JetStream meta leader with 3 peers")
	return c
}

// start starts node i from its configuration file, shut down at the end of
// the test.
func (c *authCluster) start(t *testing.T, i int) {
	t.Helper()
	o, err := server.ProcessConfigFile(c.confs[i])
	require.NoError(t, err)
	o.NoLog, o.NoSigs = true, true
	s, err := server.NewServer(o)
	require.NoError(t, err)
	go s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	require.True(t, s.ReadyForConnections(10*time.Second), "node %d", i+1)
	c.nodes[i] = s
}

// restart shuts node i down and starts it again on the same files.
func (c *authCluster) restart(t *testing.T, i int) {
	t.Helper()
	c.nodes[i].Shutdown()
	c.nodes[i].WaitForShutdown()
	c.start(t, i)
}

func (c *authCluster) creds(name string) string { return filepath.Join(c.out, name) }

func (c *authCluster) urls() string {
	var urls []string
	for _, s := range c.nodes {
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ",")
}

// authClient is a user's connection and the errors the server sent it.
type authClient struct {
	nc   *nats.Conn
	errs chan error
}

// dialUser connects to url with creds (and the user's inbox prefix),
// without reconnecting.
func dialUser(url string, creds []byte) (*authClient, error) {
	opts, err := auth.ConnectOptions(creds)
	if err != nil {
		return nil, err
	}
	c := &authClient{errs: make(chan error, 64)}
	c.nc, err = nats.Connect(url, append(opts, nats.NoReconnect(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		c.errs <- err
	}))...)
	return c, err
}

func connectUser(t *testing.T, url string, creds []byte) *authClient {
	t.Helper()
	c, err := dialUser(url, creds)
	require.NoError(t, err)
	t.Cleanup(c.nc.Close)
	return c
}

// refused waits for the server's error containing what.
func (c *authClient) refused(t *testing.T, what string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case err := <-c.errs:
			if strings.Contains(err.Error(), what) {
				return
			}
		case <-timeout:
			t.Fatalf("the server did not refuse: no %q", what)
		}
	}
}

type echoed struct {
	Subject string `json:"subject"`
	Info    struct {
		Account   string `json:"acc"`
		IssuerKey string `json:"issuer_key"`
		NameTag   string `json:"name_tag"`
	} `json:"info"`
}

func (c *authClient) check(t *testing.T) echoed {
	t.Helper()
	m, err := c.nc.Request(wire.SubjectCheck, []byte(`{}`), 10*time.Second)
	require.NoError(t, err)
	var e echoed
	require.NoError(t, json.Unmarshal(m.Data, &e), string(m.Data))
	return e
}

// The configuration consentd nats-config writes runs a three-node
// cluster: consentd's user holds a replicated stream and answers the
// service; a tenant's user reaches it only through its account's import,
// under its tenant and with its identity, and nothing else; users issued
// and revoked while the cluster runs apply on every node once pushed with
// sys.creds.
func TestNATSConfigRunsAThreeNodeClusterWithAccounts(t *testing.T) {
	authDir := filepath.Join(t.TempDir(), "auth")
	a, err := auth.Open(authDir)
	require.NoError(t, err)
	mailerCreds, err := a.IssueUser("mailer", auth.Writer, "acme")
	require.NoError(t, err)
	c := startAuthCluster(t, authDir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// consentd: the stream with 3 replicas, and a responder.
	svc, err := nats.Connect(c.urls(), nats.UserCredentials(c.creds("consentd.creds")))
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	js, err := jetstream.New(svc)
	require.NoError(t, err)
	// Each node enables JetStream for SVC once it has loaded the account,
	// which follows the first connection: until then, 10039.
	var stream jetstream.Stream
	require.Eventually(t, func() bool {
		stream, err = ledger.EnsureStream(ctx, js, ledger.StreamOptions{Replicas: 3})
		return !errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)
	}, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, 3, stream.CachedInfo().Config.Replicas)
	_, err = svc.Subscribe("consent.v1.*.check", func(m *nats.Msg) {
		b, _ := json.Marshal(map[string]any{"subject": m.Subject, "info": json.RawMessage(m.Header.Get("Nats-Request-Info"))})
		_ = m.Respond(b)
	})
	require.NoError(t, err)
	require.NoError(t, svc.Flush())

	// The tenant's writer, on every node: its tenant and identity.
	acmeKey, err := a.Tenant("acme")
	require.NoError(t, err)
	var mailers []*authClient
	for _, s := range c.nodes {
		u := connectUser(t, s.ClientURL(), mailerCreds)
		got := u.check(t)
		assert.Equal(t, "consent.v1.acme.check", got.Subject)
		assert.Equal(t, acmeKey, got.Info.Account)
		assert.Equal(t, "mailer", got.Info.NameTag)
		tenant, role, ok := a.Identify(got.Info.Account, got.Info.IssuerKey)
		assert.True(t, ok)
		assert.Equal(t, "acme", tenant)
		assert.Equal(t, auth.Writer, role)
		mailers = append(mailers, u)
	}

	// Nothing else: the trail, the JetStream API, others' replies, the
	// service's subjects.
	u := mailers[0]
	for _, subj := range []string{"consent.events.acme.marketing.alice", "$JS.API.STREAM.DELETE." + wire.DefaultStream, "$JS.API.STREAM.INFO." + wire.DefaultStream} {
		_, err := u.nc.Request(subj, []byte(`{}`), 200*time.Millisecond)
		assert.Error(t, err, subj)
		u.refused(t, `Permissions Violation for Publish to "`+subj+`"`)
	}
	for _, subj := range []string{"_INBOX.>", "consent.v1.>"} {
		_, err := u.nc.SubscribeSync(subj)
		require.NoError(t, err)
		u.refused(t, `Permissions Violation for Subscription to "`+subj+`"`)
	}
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	assert.Zero(t, info.State.Msgs, "nothing reached the stream")

	// No credentials, no connection.
	_, err = nats.Connect(c.nodes[0].ClientURL(), nats.NoReconnect())
	assert.ErrorIs(t, err, nats.ErrAuthorization)

	// A new user of a tenant the servers know connects at once: its
	// account does not change.
	secondCreds, err := a.IssueUser("second", auth.Checker, "acme")
	require.NoError(t, err)
	second := connectUser(t, c.nodes[2].ClientURL(), secondCreds)
	assert.Equal(t, "consent.v1.acme.check", second.check(t).Subject)

	// A user of a tenant created while the cluster runs: refused until
	// the accounts are pushed, then accepted on every node.
	lateCreds, err := a.IssueUser("late", auth.Writer, "globex")
	require.NoError(t, err)
	_, err = dialUser(c.nodes[1].ClientURL(), lateCreds)
	require.Error(t, err, "no node knows globex yet")
	sys, err := nats.Connect(c.urls(), nats.UserCredentials(c.creds("sys.creds")))
	require.NoError(t, err)
	t.Cleanup(sys.Close)
	require.NoError(t, a.Push(ctx, sys))
	for _, s := range c.nodes {
		var late *authClient
		require.Eventually(t, func() bool {
			late, err = dialUser(s.ClientURL(), lateCreds)
			return err == nil
		}, 10*time.Second, 20*time.Millisecond, "%s accepts the new user: %v", s.Name(), err)
		t.Cleanup(late.nc.Close)
		assert.Equal(t, "consent.v1.globex.check", late.check(t).Subject)
	}

	// A revoked user is disconnected from every node and refused.
	require.NoError(t, a.Revoke("mailer", "acme"))
	require.NoError(t, a.Push(ctx, sys))
	for i, u := range mailers {
		u.refused(t, nats.ErrAuthRevoked.Error())
		require.Eventually(t, u.nc.IsClosed, 10*time.Second, 10*time.Millisecond)
		// A node closes the revoked user's connections as it applies the
		// pushed account; a new connection may reach it a moment before
		// its resolver answers with the update.
		require.Eventually(t, func() bool {
			_, err = dialUser(c.nodes[i].ClientURL(), mailerCreds)
			return errors.Is(err, nats.ErrAuthorization)
		}, 10*time.Second, 20*time.Millisecond, "node %d refuses the revoked user: %v", i+1, err)
	}

	// What was pushed outlives a restart, although the node's
	// accounts.conf preloads older JWTs: the resolver keeps the newer.
	c.restart(t, 0)
	_, err = dialUser(c.nodes[0].ClientURL(), mailerCreds)
	assert.ErrorIs(t, err, nats.ErrAuthorization, "still revoked after the restart")
	late, err := dialUser(c.nodes[0].ClientURL(), lateCreds)
	require.NoError(t, err, "globex, which the node's accounts.conf does not hold, after the restart")
	late.nc.Close()

	// The same offline, with the subcommand, while a (another process)
	// keeps the directory open.
	code, stdout, stderr := natsConfig("--auth-dir", authDir, "--out", c.out, "--user", "ops", "--role", "checker", "--tenant", "initech", "--nats-url", c.urls())
	require.Equal(t, 0, code, stderr)
	opsFile := filepath.Join(c.out, "users", "initech", "ops.creds")
	assert.Contains(t, stdout, "Issued ops (role checker, tenant initech) to "+opsFile)
	assert.Contains(t, stdout, "Pushed every account to ")
	opsCreds, err := os.ReadFile(opsFile)
	require.NoError(t, err)
	var ops []*authClient
	for _, s := range c.nodes {
		var u *authClient
		require.Eventually(t, func() bool {
			u, err = dialUser(s.ClientURL(), opsCreds)
			return err == nil
		}, 10*time.Second, 20*time.Millisecond, "%s accepts the new user: %v", s.Name(), err)
		t.Cleanup(u.nc.Close)
		got := u.check(t)
		assert.Equal(t, "consent.v1.initech.check", got.Subject)
		tenant, role, ok := a.Identify(got.Info.Account, got.Info.IssuerKey)
		assert.True(t, ok, "a knows the tenant another process created")
		assert.Equal(t, "initech", tenant)
		assert.Equal(t, auth.Checker, role)
		ops = append(ops, u)
	}
	code, stdout, stderr = natsConfig("--auth-dir", authDir, "--out", c.out, "--revoke", "ops", "--tenant", "initech", "--nats-url", c.urls())
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "Revoked ops of tenant initech.")
	for i, u := range ops {
		u.refused(t, nats.ErrAuthRevoked.Error())
		require.Eventually(t, u.nc.IsClosed, 10*time.Second, 10*time.Millisecond)
		// Each node applies the pushed account on its own; a connection
		// accepted meanwhile is closed again by the same update.
		assert.Eventually(t, func() bool {
			again, err := dialUser(c.nodes[i].ClientURL(), opsCreds)
			if err == nil {
				again.nc.Close()
			}
			return errors.Is(err, nats.ErrAuthorization)
		}, 10*time.Second, 20*time.Millisecond, "node %d refuses the revoked user", i+1)
	}
}

// consentd itself runs on that cluster with consentd.creds: it creates the
// stream (3 replicas) in SVC and serves.
func TestConsentdRunsOnTheClusterWithTheGeneratedCredentials(t *testing.T) {
	authDir := filepath.Join(t.TempDir(), "auth")
	c := startAuthCluster(t, authDir)
	runOnCluster(t, c.urls(), t.TempDir(), "--nats-creds", c.creds("consentd.creds"))

	svc, err := nats.Connect(c.urls(), nats.UserCredentials(c.creds("consentd.creds")))
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	js, err := jetstream.New(svc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, wire.DefaultStream)
	require.NoError(t, err)
	assert.Equal(t, 3, stream.CachedInfo().Config.Replicas)
	a, err := auth.Open(authDir)
	require.NoError(t, err)
	for _, s := range c.nodes {
		acc, err := s.LookupAccount(a.ServiceAccountKey())
		require.NoError(t, err)
		assert.True(t, acc.JetStreamEnabled(), "%s: the stream is SVC's", s.Name())
	}
}

// TestConsentdOnTheClusterAuthenticatesAsEmbedded runs two consentd with
// --auth-dir on the cluster nats-config configured: users issued through
// the service (by the admin nats-config wrote) reach it in their tenant
// from any node, recorded_by names them, the attacks of the embedded
// setup fail here too, and a revocation pushed by one consentd closes the
// user's connection on whichever node it is.
func TestConsentdOnTheClusterAuthenticatesAsEmbedded(t *testing.T) {
	authDir := filepath.Join(t.TempDir(), "auth")
	c := startAuthCluster(t, authDir)
	for range 2 {
		runOnCluster(t, c.urls(), t.TempDir(), "--nats-creds", c.creds("consentd.creds"), "--auth-dir", authDir)
	}
	adminCreds, err := os.ReadFile(c.creds("admin.creds"))
	require.NoError(t, err)
	admin, err := dialUser(c.urls(), adminCreds)
	require.NoError(t, err)
	t.Cleanup(admin.nc.Close)
	adminClient := client.NewClient(admin.nc, client.ClientOptions{})
	ctx := t.Context()

	issue := func(name, role, tenant string) *authClient {
		t.Helper()
		u, err := adminClient.AddUser(ctx, wire.UserRequest{Name: name, Role: role, Tenant: tenant})
		require.NoError(t, err)
		var cl *authClient
		// A new tenant's account reaches every node by the push the
		// service made before answering.
		for _, s := range c.nodes {
			cl, err = dialUser(s.ClientURL(), []byte(u.Creds))
			require.NoError(t, err, "%s on %s", name, s.Name())
			t.Cleanup(cl.nc.Close)
		}
		return cl
	}
	acme := issue("app", "writer", "acme")
	globex := issue("app", "writer", "globex")
	acmeClient := client.NewClient(acme.nc, client.ClientOptions{})
	globexClient := client.NewClient(globex.nc, client.ClientOptions{})

	granted, err := acmeClient.Grant(ctx, events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	assert.Equal(t, "acme", granted.Event.Tenant)
	assert.Equal(t, "app@acme", granted.Event.RecordedBy)
	st, err := acmeClient.Check(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter", MinSeq: granted.Seq})
	require.NoError(t, err)
	assert.True(t, st.Allowed)

	// globex sees nothing of acme's and may not name it.
	st, err = globexClient.Status(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter", MinSeq: granted.Seq})
	require.NoError(t, err)
	assert.Equal(t, events.StateNone, st.State)
	_, err = globexClient.Revoke(ctx, events.Command{Tenant: "acme", SubjectID: "alice", Purpose: "newsletter"})
	require.ErrorIs(t, err, wire.ErrForbidden)

	// The trail is out of reach.
	for _, subj := range []string{"consent.events.acme.newsletter.x", "$JS.API.STREAM.DELETE." + wire.DefaultStream} {
		require.NoError(t, acme.nc.Publish(subj, []byte(`{}`)))
		require.NoError(t, acme.nc.Flush())
		select {
		case err := <-acme.errs:
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
			assert.Contains(t, err.Error(), subj)
		case <-time.After(10 * time.Second):
			t.Fatalf("no permissions violation for %s", subj)
		}
	}

	for _, subj := range []string{"consent.events.>", "_INBOX.>", "consent.v1.>"} {
		_, err := acme.nc.QueueSubscribe(subj, ledger.ServiceQueueGroup, func(*nats.Msg) {})
		require.NoError(t, err)
		require.NoError(t, acme.nc.Flush())
		select {
		case err := <-acme.errs:
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
			assert.Contains(t, err.Error(), "Subscription to \""+subj+"\"")
		case <-time.After(10 * time.Second):
			t.Fatalf("no permissions violation for a subscription to %s", subj)
		}
	}

	// Revoked through one consentd, refused on every node.
	require.NoError(t, adminClient.RevokeUser(ctx, wire.UserRequest{Name: "app", Tenant: "acme"}))
	select {
	case err := <-acme.errs:
		require.ErrorIs(t, err, nats.ErrAuthRevoked)
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked user's connection was not closed")
	}
	_, err = acmeClient.Status(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter"})
	require.Error(t, err)
}

// Under --group-commit auto, a consentd with the deployment's system
// account commits in groups only when the stream's servers fsync every
// write (where group commit wins); --group-commit on overrides it.
func TestGroupCommitAutoAsksTheServersTheirSync(t *testing.T) {
	for _, tt := range []struct {
		name, syncInterval string
		grouped            bool
	}{
		{"servers fsync every write", "always", true},
		{"servers fsync every 2 minutes", "2m", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			authDir := filepath.Join(t.TempDir(), "auth")
			c := startAuthClusterSyncing(t, authDir, tt.syncInterval)
			m := runOnCluster(t, c.urls(), t.TempDir(), "--nats-creds", c.creds("consentd.creds"), "--auth-dir", authDir)
			_, grouped := m.ledger.GroupCommitStats()
			assert.Equal(t, tt.grouped, grouped, "auto")
			// Every server of the stream answered: this is what they said,
			// not what consentd assumes without an answer.
			js, err := jetstream.New(m.dataConn)
			require.NoError(t, err)
			stream, err := js.Stream(t.Context(), wire.DefaultStream)
			require.NoError(t, err)
			always, known := streamServersSyncEveryWrite(t.Context(), m.sysConn, stream.CachedInfo())
			assert.True(t, known, "the stream's servers answered")
			assert.Equal(t, tt.syncInterval == "always", always)
			if !tt.grouped {
				on := runOnCluster(t, c.urls(), t.TempDir(), "--nats-creds", c.creds("consentd.creds"), "--auth-dir", authDir, "--group-commit", "on")
				_, grouped := on.ledger.GroupCommitStats()
				assert.True(t, grouped, "--group-commit on")
			}
		})
	}
}
