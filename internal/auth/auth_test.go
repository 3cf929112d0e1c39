package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
)

// authDir is a new directory for an authority: a subdirectory of the
// test's, which others may enter.
func authDir(t *testing.T) string { return filepath.Join(t.TempDir(), "auth") }

// waitFor bounds every wait on a condition.
const waitFor = 5 * time.Second

// env is an authority, an embedded server that trusts it, consentd's
// connection in SVC and a stub responder in SVC.
type env struct {
	a   *auth.Authority
	s   *server.Server
	svc *nats.Conn
}

// start opens the authority in dir and starts a server on storeDir with
// a stub responder in SVC: it answers every consent.v1.> request with the
// subject it saw and the Nats-Request-Info header.
func start(t *testing.T, dir, storeDir string) *env {
	t.Helper()
	a, err := auth.Open(dir)
	require.NoError(t, err)
	var creds []byte
	s := natstest.RunServer(t, natstest.StoreDir(storeDir), func(o *server.Options) {
		creds, err = a.ServerOptions(o)
		require.NoError(t, err)
	})
	opts, err := auth.ConnectOptions(creds)
	require.NoError(t, err)
	svc, err := nats.Connect("", append(opts, nats.InProcessServer(s))...)
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	_, err = svc.QueueSubscribe(auth.ServiceSubjects, ledger.ServiceQueueGroup, func(m *nats.Msg) {
		b, _ := json.Marshal(echo{Subject: m.Subject, Info: json.RawMessage(m.Header.Get("Nats-Request-Info"))})
		_ = m.Respond(b)
	})
	require.NoError(t, err)
	require.NoError(t, svc.Flush())
	return &env{a: a, s: s, svc: svc}
}

type echo struct {
	Subject string          `json:"subject"`
	Info    json.RawMessage `json:"info"`
}

// requestInfo is the part of Nats-Request-Info the tests look at.
type requestInfo struct {
	Account   string   `json:"acc"`
	User      string   `json:"user"`
	NameTag   string   `json:"name_tag"`
	IssuerKey string   `json:"issuer_key"`
	Tags      []string `json:"tags"`
}

// user is a client connection and the asynchronous errors the server
// sent it (permission violations, revocation).
type user struct {
	nc   *nats.Conn
	errs chan error
}

func (e *env) connect(t *testing.T, creds []byte) *user {
	t.Helper()
	u, err := e.dial(creds)
	require.NoError(t, err)
	t.Cleanup(u.nc.Close)
	return u
}

func (e *env) dial(creds []byte) (*user, error) {
	opts, err := auth.ConnectOptions(creds)
	if err != nil {
		return nil, err
	}
	u := &user{errs: make(chan error, 64)}
	opts = append(opts, nats.NoReconnect(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		u.errs <- err
	}))
	u.nc, err = nats.Connect(e.s.ClientURL(), opts...)
	return u, err
}

func (e *env) issue(t *testing.T, name string, role auth.Role, tenant string) []byte {
	t.Helper()
	creds, err := e.a.IssueUser(name, role, tenant)
	require.NoError(t, err)
	return creds
}

// call sends a request and returns what the stub saw.
func (u *user) call(t *testing.T, subject string) (echo, requestInfo) {
	t.Helper()
	m, err := u.nc.Request(subject, []byte(`{}`), waitFor)
	require.NoError(t, err, subject)
	var e echo
	require.NoError(t, json.Unmarshal(m.Data, &e))
	var info requestInfo
	require.NoError(t, json.Unmarshal(e.Info, &info))
	return e, info
}

// violation waits for the server's permission error naming what.
func (u *user) violation(t *testing.T, what string) {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case err := <-u.errs:
			if strings.Contains(err.Error(), "Permissions Violation for "+what) {
				return
			}
		case <-timeout:
			t.Fatalf("no permissions violation for %s", what)
		}
	}
}

// denyPublish publishes to subject and waits for the server to refuse it.
func (u *user) denyPublish(t *testing.T, subject string) {
	t.Helper()
	require.NoError(t, u.nc.Publish(subject, []byte(`{}`)))
	u.violation(t, `Publish to "`+subject+`"`)
}

// denySubscribe subscribes to subject and waits for the server to refuse
// it.
func (u *user) denySubscribe(t *testing.T, subject string) {
	t.Helper()
	_, err := u.nc.SubscribeSync(subject)
	require.NoError(t, err)
	u.violation(t, `Subscription to "`+subject+`"`)
}

func TestWriterGrantReachesTheServiceUnderItsTenantWithItsIdentity(t *testing.T) {
	e := start(t, authDir(t), t.TempDir())
	acmeKey, err := e.a.Tenant("acme")
	require.NoError(t, err)
	u := e.connect(t, e.issue(t, "mailer", auth.Writer, "acme"))

	got, info := u.call(t, wire.SubjectGrant)
	assert.Equal(t, "consent.v1.acme.grant", got.Subject)
	assert.Equal(t, acmeKey, info.Account)
	assert.Equal(t, "mailer", info.NameTag)
	assert.True(t, strings.HasPrefix(info.User, "U"), "user is the user's public key: %q", info.User)
	assert.ElementsMatch(t, []string{"consent-role:writer", "consent-tenant:acme"}, info.Tags)
	tenant, role, ok := e.a.Identify(info.Account, info.IssuerKey)
	assert.True(t, ok)
	assert.Equal(t, "acme", tenant)
	assert.Equal(t, auth.Writer, role)
	_, _, ok = e.a.Identify(info.Account, info.User)
	assert.False(t, ok, "a key that is not a role's signing key identifies nothing")

	// The default tenant is mapped like any other; the account of all
	// tenants to the reserved token _all.
	def := e.connect(t, e.issue(t, "app", auth.Checker, events.DefaultTenant))
	got, _ = def.call(t, wire.SubjectCheck)
	assert.Equal(t, "consent.v1.default.check", got.Subject)
	ops := e.connect(t, e.issue(t, "ops", auth.Auditor, auth.AllTenants))
	got, info = ops.call(t, wire.SubjectHistory)
	assert.Equal(t, "consent.v1._all.history", got.Subject)
	tenant, role, ok = e.a.Identify(info.Account, info.IssuerKey)
	assert.True(t, ok)
	assert.Equal(t, auth.AllTenants, tenant)
	assert.Equal(t, auth.Auditor, role)
}

func TestATenantCannotReachAnother(t *testing.T) {
	e := start(t, authDir(t), t.TempDir())
	_, err := e.a.Tenant("globex")
	require.NoError(t, err)
	writer := e.connect(t, e.issue(t, "mailer", auth.Writer, "acme"))
	admin := e.connect(t, e.issue(t, "root", auth.Admin, "acme"))

	// Another tenant's subject is outside the role's endpoints.
	writer.denyPublish(t, "consent.v1.globex.grant")
	// And whatever an acme user may send lands under acme: the import
	// maps the whole consent.v1.> of the account there.
	got, _ := admin.call(t, "consent.v1.admin.globex.grant")
	assert.Equal(t, "consent.v1.acme.admin.globex.grant", got.Subject)
	// Requests reach the service only through the import.
	_, err = writer.nc.Request("consent.v1.globex.grant", nil, 50*time.Millisecond)
	assert.Error(t, err)
}

// The role table: which endpoint each role may call.
func TestRoles(t *testing.T) {
	all := []string{
		wire.SubjectRequest, wire.SubjectGrant, wire.SubjectDeny, wire.SubjectRevoke,
		wire.SubjectStatus, wire.SubjectCheck, wire.SubjectList, wire.SubjectHistory,
		wire.SubjectStatusAt, wire.SubjectReceipt, wire.SubjectIndexDigest,
		wire.SubjectPurposeSet, wire.SubjectPurposeGet, wire.SubjectPurposeList,
		wire.SubjectQuarantine, wire.SubjectErase, wire.SubjectFeedOpen, wire.SubjectFeedPurposes, wire.SubjectAuditOpen, wire.SubjectFeedPersonal,
	}
	lookups := []string{wire.SubjectStatus, wire.SubjectCheck, wire.SubjectList}
	commands := []string{wire.SubjectRequest, wire.SubjectGrant, wire.SubjectDeny, wire.SubjectRevoke}
	audit := []string{wire.SubjectHistory, wire.SubjectStatusAt, wire.SubjectReceipt, wire.SubjectIndexDigest, wire.SubjectAuditOpen, wire.SubjectFeedPersonal}
	feed := []string{wire.SubjectFeedOpen, wire.SubjectFeedPurposes, wire.SubjectFeedPersonal}
	allowed := map[auth.Role][]string{
		auth.Checker:    lookups,
		auth.Writer:     append(append([]string{}, commands...), lookups...),
		auth.Subscriber: append(append([]string{}, feed...), lookups...), // and the consumer API of its feeds: feed_test.go
		auth.Auditor:    audit,
		auth.Admin:      all,
	}
	require.Len(t, allowed, len(auth.Roles))

	e := start(t, authDir(t), t.TempDir())
	for _, role := range auth.Roles {
		t.Run(string(role), func(t *testing.T) {
			u := e.connect(t, e.issue(t, "u-"+string(role), role, "acme"))
			for _, subj := range all {
				if contains(allowed[role], subj) {
					got, _ := u.call(t, subj)
					assert.Equal(t, "consent.v1.acme."+strings.TrimPrefix(subj, "consent.v1."), got.Subject)
				} else {
					u.denyPublish(t, subj)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestAppUsersCannotTouchTheTrail(t *testing.T) {
	e := start(t, authDir(t), t.TempDir())
	// The stream lives in SVC, created by consentd's connection.
	js := natstest.JetStream(t, e.svc)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: wire.DefaultStream, Subjects: []string{events.StreamSubjects, events.PurposeSubjects, events.CheckpointSubjects}})
	require.NoError(t, err)

	for _, role := range auth.Roles {
		t.Run(string(role), func(t *testing.T) {
			u := e.connect(t, e.issue(t, "u-"+string(role), role, "acme"))
			for _, subj := range []string{
				"consent.events.acme.marketing.x", "consent.purposes.acme.marketing", "consent.checkpoints.chain",
				"$JS.API.STREAM.INFO." + wire.DefaultStream, "$JS.API.STREAM.DELETE." + wire.DefaultStream,
				"$JS.API.CONSUMER.CREATE." + wire.DefaultStream, "$JS.API.STREAM.LIST",
			} {
				u.denyPublish(t, subj)
			}
			// Another user's replies, every reply, the service's queue
			// group and the trail itself.
			for _, subj := range []string{"_INBOX.>", "_INBOX_mailer.>", "_R_.>", "consent.v1.>", "consent.events.>", ">"} {
				u.denySubscribe(t, subj)
			}
			// The JetStream API, as nats.go calls it, answers nothing.
			ujs, err := jetstream.New(u.nc)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err = ujs.Stream(ctx, wire.DefaultStream)
			assert.Error(t, err)
		})
	}
	info, err := js.Stream(ctx, wire.DefaultStream)
	require.NoError(t, err)
	i, err := info.Info(ctx)
	require.NoError(t, err)
	assert.Zero(t, i.State.Msgs, "nothing reached the stream")
}

func TestAnonymousAndForeignConnectionsAreRefused(t *testing.T) {
	e := start(t, authDir(t), t.TempDir())
	_, err := nats.Connect(e.s.ClientURL(), nats.NoReconnect())
	assert.ErrorIs(t, err, nats.ErrAuthorization)

	// Credentials from another authority are not trusted.
	other, err := auth.Open(authDir(t))
	require.NoError(t, err)
	creds, err := other.IssueUser("mailer", auth.Admin, "acme")
	require.NoError(t, err)
	_, err = e.dial(creds)
	assert.ErrorIs(t, err, nats.ErrAuthorization)
}

func TestRevokeClosesTheLiveConnectionAndRefusesTheNext(t *testing.T) {
	e := start(t, authDir(t), t.TempDir())
	creds := e.issue(t, "mailer", auth.Writer, "acme")
	keep := e.connect(t, e.issue(t, "other", auth.Writer, "acme"))
	u := e.connect(t, creds)
	u.call(t, wire.SubjectGrant)

	require.NoError(t, e.a.Revoke("mailer", "acme"))
	select {
	case err := <-u.errs:
		assert.ErrorIs(t, err, nats.ErrAuthRevoked)
	case <-time.After(waitFor):
		t.Fatal("the revoked user's connection was not told")
	}
	require.Eventually(t, u.nc.IsClosed, waitFor, 10*time.Millisecond)
	_, err := u.nc.Request(wire.SubjectGrant, nil, time.Second)
	assert.ErrorIs(t, err, nats.ErrConnectionClosed)
	_, err = e.dial(creds)
	assert.ErrorIs(t, err, nats.ErrAuthorization)

	// Others of the account keep working, and the name can be issued
	// again, with a new key.
	keep.call(t, wire.SubjectGrant)
	again := e.connect(t, e.issue(t, "mailer", auth.Writer, "acme"))
	again.call(t, wire.SubjectGrant)
	users := e.a.Users("acme")
	require.Len(t, users, 3)
	assert.NotNil(t, users[0].RevokedAt)
	assert.Nil(t, users[2].RevokedAt)
	assert.NotEqual(t, users[0].PublicKey, users[2].PublicKey)
}

func TestRestartKeepsUsersRevocationsAndTheStream(t *testing.T) {
	dir, storeDir := authDir(t), t.TempDir()
	e := start(t, dir, storeDir)
	alice := e.issue(t, "alice", auth.Writer, "acme")
	bob := e.issue(t, "bob", auth.Checker, "acme")
	carol := e.issue(t, "carol", auth.Checker, "acme")
	require.NoError(t, e.a.Revoke("bob", "acme"))
	js := natstest.JetStream(t, e.svc)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: wire.DefaultStream, Subjects: []string{events.StreamSubjects}})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "consent.events.acme.marketing.x", []byte("{}"))
	require.NoError(t, err)
	e.svc.Close()
	e.s.Shutdown()
	e.s.WaitForShutdown()

	// Revoked while no server runs: applies from the next start.
	a2, err := auth.Open(dir)
	require.NoError(t, err)
	require.NoError(t, a2.Revoke("carol", "acme"))

	e2 := start(t, dir, storeDir)
	e2.connect(t, alice).call(t, wire.SubjectGrant)
	for _, creds := range [][]byte{bob, carol} {
		_, err = e2.dial(creds)
		assert.ErrorIs(t, err, nats.ErrAuthorization)
	}
	users := e2.a.Users("acme")
	require.Len(t, users, 3)
	assert.Nil(t, users[0].RevokedAt)
	assert.NotNil(t, users[1].RevokedAt)
	assert.NotNil(t, users[2].RevokedAt)
	// SVC's key is kept, so is its JetStream data.
	s, err := natstest.JetStream(t, e2.svc).Stream(ctx, wire.DefaultStream)
	require.NoError(t, err)
	i, err := s.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), i.State.Msgs)
}

func TestFilesArePrivateAndOpenRefusesReadableOnes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	a, err := auth.Open(dir)
	require.NoError(t, err)
	_, err = a.IssueUser("mailer", auth.Writer, "acme")
	require.NoError(t, err)
	s := natstest.RunServer(t, func(o *server.Options) {
		_, err := a.ServerOptions(o)
		require.NoError(t, err)
	})
	_ = s
	files := 0
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		fi, err := d.Info()
		require.NoError(t, err)
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm(), rel)
		} else if !strings.HasPrefix(rel, "resolver") { // the server's own files, in a 0700 directory
			assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), rel)
			files++
		}
		return nil
	}))
	assert.Greater(t, files, 10)

	for _, rel := range []string{"operator.seed", "accounts/acme/roles/writer.seed", "accounts/SVC/account.seed"} {
		t.Run(rel, func(t *testing.T) {
			p := filepath.Join(dir, rel)
			require.NoError(t, os.Chmod(p, 0o644))
			_, err := auth.Open(dir)
			require.Error(t, err)
			assert.Contains(t, err.Error(), p+": mode 0644")
			assert.Contains(t, err.Error(), "chmod 600")
			require.NoError(t, os.Chmod(p, 0o600))
		})
	}
	require.NoError(t, os.Chmod(dir, 0o755))
	_, err = auth.Open(dir)
	assert.ErrorContains(t, err, dir+": mode 0755")
	require.NoError(t, os.Chmod(dir, 0o700))
	_, err = auth.Open(dir)
	assert.NoError(t, err)
}

func TestIssueUserRefusesBadInput(t *testing.T) {
	a, err := auth.Open(authDir(t))
	require.NoError(t, err)
	var fe *events.FieldError
	_, err = a.IssueUser("Bad.Name", auth.Writer, "acme")
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "name", fe.Field)
	_, err = a.IssueUser("mailer", auth.Writer, "Acme")
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "tenant", fe.Field)
	_, err = a.IssueUser("mailer", auth.Role("root"), "acme")
	assert.ErrorContains(t, err, `role "root"`)
	_, err = a.IssueUser("mailer", auth.Writer, "acme")
	require.NoError(t, err)
	_, err = a.IssueUser("mailer", auth.Checker, "acme")
	assert.ErrorIs(t, err, auth.ErrUserExists)
	err = a.Revoke("nobody", "acme")
	assert.ErrorIs(t, err, auth.ErrNoUser)
	err = a.Revoke("mailer", "globex")
	assert.ErrorIs(t, err, auth.ErrNoUser)
	_, err = auth.ConnectOptions([]byte("not creds"))
	assert.Error(t, err)
	assert.False(t, errors.Is(err, auth.ErrNoUser))
}

func TestOpenRestoresRoleTemplatesAndSkipsUnfinishedTenants(t *testing.T) {
	dir := authDir(t)
	a, err := auth.Open(dir)
	require.NoError(t, err)
	_, err = a.IssueUser("mailer", auth.Writer, "acme")
	require.NoError(t, err)
	accJWT := filepath.Join(dir, "accounts", "acme", "account.jwt")
	before, err := os.ReadFile(accJWT)
	require.NoError(t, err)

	// Opening again changes nothing.
	_, err = auth.Open(dir)
	require.NoError(t, err)
	after, err := os.ReadFile(accJWT)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after))

	// A writer template of an older version (here: everything) is
	// replaced by the current one.
	ac, err := jwt.DecodeAccountClaims(string(before))
	require.NoError(t, err)
	var writerKey string
	for _, k := range ac.SigningKeys.Keys() {
		scope, _ := ac.SigningKeys.GetScope(k)
		if us := scope.(*jwt.UserScope); us.Role == string(auth.Writer) {
			us.Template.Pub.Allow = jwt.StringList{"consent.v1.>"}
			writerKey = k
		}
	}
	require.NotEmpty(t, writerKey)
	seed, err := os.ReadFile(filepath.Join(dir, "operator.seed"))
	require.NoError(t, err)
	op, err := nkeys.FromSeed(seed)
	require.NoError(t, err)
	old, err := ac.Encode(op)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(accJWT, []byte(old), 0o600))
	_, err = auth.Open(dir)
	require.NoError(t, err)
	now, err := os.ReadFile(accJWT)
	require.NoError(t, err)
	ac, err = jwt.DecodeAccountClaims(string(now))
	require.NoError(t, err)
	scope, _ := ac.SigningKeys.GetScope(writerKey)
	assert.ElementsMatch(t, auth.Writer.Subjects(), []string(scope.(*jwt.UserScope).Template.Pub.Allow))

	// A tenant whose creation stopped before its account.jwt is created
	// again.
	require.NoError(t, os.Remove(filepath.Join(dir, "accounts", "acme", "account.jwt")))
	a, err = auth.Open(dir)
	require.NoError(t, err)
	assert.Empty(t, a.Tenants())
	_, err = a.IssueUser("mailer", auth.Writer, "acme")
	require.NoError(t, err)
	assert.Equal(t, []string{"acme"}, a.Tenants())
}

// A server the authority did not configure in-process (one of a cluster,
// say) gets its accounts and revocations through Push.
func TestPushUpdatesAServerConfiguredElsewhere(t *testing.T) {
	a, err := auth.Open(authDir(t))
	require.NoError(t, err)
	mailer, err := a.IssueUser("mailer", auth.Writer, "acme")
	require.NoError(t, err)
	op, err := jwt.DecodeOperatorClaims(a.OperatorJWT())
	require.NoError(t, err)
	res, err := server.NewDirAccResolver(t.TempDir(), 0, time.Minute, server.NoDelete)
	require.NoError(t, err)
	require.NoError(t, res.Store(a.SystemAccountKey(), a.AccountJWTs()[a.SystemAccountKey()]))
	s := natstest.RunServer(t, func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{op}
		o.SystemAccount = a.SystemAccountKey()
		o.AccountResolver = res
	})
	e := &env{a: a, s: s}
	_, err = e.dial(mailer)
	require.Error(t, err, "the server does not know acme yet")

	sysCreds, err := a.SystemUser()
	require.NoError(t, err)
	opts, err := auth.ConnectOptions(sysCreds)
	require.NoError(t, err)
	sys := natstest.Connect(t, s, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, a.Push(ctx, sys))
	u := e.connect(t, mailer)

	require.NoError(t, a.Revoke("mailer", "acme"))
	require.NoError(t, a.Push(ctx, sys))
	select {
	case err := <-u.errs:
		assert.ErrorIs(t, err, nats.ErrAuthRevoked)
	case <-time.After(waitFor):
		t.Fatal("the revoked user's connection was not told")
	}
	_, err = e.dial(mailer)
	assert.ErrorIs(t, err, nats.ErrAuthorization)
}

// A client without its inbox prefix fails closed: its replies would
// arrive on _INBOX.>, which it may not subscribe to.
func TestAClientWithoutItsInboxPrefixGetsNoReplies(t *testing.T) {
	e := start(t, authDir(t), t.TempDir())
	creds := e.issue(t, "mailer", auth.Writer, "acme")
	tok, err := jwt.ParseDecoratedJWT(creds)
	require.NoError(t, err)
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	u := &user{errs: make(chan error, 64)}
	u.nc = natstest.Connect(t, e.s, nats.UserJWTAndSeed(tok, string(seed)), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		u.errs <- err
	}))
	_, err = u.nc.Request(wire.SubjectGrant, nil, 200*time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout)
	u.violation(t, `Subscription to "_INBOX.`)
}

// SVC's activation for acme covers consent.v1.acme.> only: an account of
// acme whose import names globex's subjects (as a mistake, or a JWT edited
// by whoever holds the operator key) is refused by the server, its users
// with it.
func TestAnActivationCoversOneTenantOnly(t *testing.T) {
	dir := authDir(t)
	a, err := auth.Open(dir)
	require.NoError(t, err)
	creds, err := a.IssueUser("mailer", auth.Writer, "acme")
	require.NoError(t, err)
	accJWT := filepath.Join(dir, "accounts", "acme", "account.jwt")
	b, err := os.ReadFile(accJWT)
	require.NoError(t, err)
	ac, err := jwt.DecodeAccountClaims(string(b))
	require.NoError(t, err)
	require.Len(t, ac.Imports, 2) // consent.v1 and $SRV
	i := slices.IndexFunc(ac.Imports, func(im *jwt.Import) bool { return im.Name == "consent" })
	require.Equal(t, jwt.Subject("consent.v1.acme.>"), ac.Imports[i].Subject)
	ac.Imports[i].Subject = "consent.v1.globex.>"
	seed, err := os.ReadFile(filepath.Join(dir, "operator.seed"))
	require.NoError(t, err)
	op, err := nkeys.FromSeed(seed)
	require.NoError(t, err)
	tampered, err := ac.Encode(op)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(accJWT, []byte(tampered), 0o600))

	e := start(t, dir, t.TempDir())
	_, err = e.dial(creds)
	assert.ErrorIs(t, err, nats.ErrAuthorization)
}
