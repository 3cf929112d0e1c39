package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The security model against the default consentd (authentication on,
// embedded server), over real TCP connections: what each kind of client
// can and cannot do, each "cannot" shown by the server's permissions
// violation or the service's error code.

// secured is a default consentd and a client of its administrator's
// credentials (admin.creds: admin of every tenant).
type secured struct {
	m     *Main
	admin *client.Client
}

func startSecured(t *testing.T) *secured {
	t.Helper()
	m := startConsentd(t, t.TempDir())
	return &secured{m: m, admin: connectClient(t, m.ClientURL(), adminOptions(t, m.Config.DataDir)...)}
}

// issue returns new credentials of user name with role in tenant ("*": all
// tenants), issued by the administrator through consent.v1.admin.user.add.
func (s *secured) issue(t *testing.T, name string, role auth.Role, tenant string) []byte {
	t.Helper()
	u, err := s.admin.AddUser(secCtx(t), wire.UserRequest{Name: name, Role: string(role), Tenant: tenant})
	require.NoError(t, err)
	return []byte(u.Creds)
}

// dial connects a user, as secConn.
func (s *secured) dial(t *testing.T, name string, role auth.Role, tenant string) *secConn {
	t.Helper()
	return dialCreds(t, s.m.ClientURL(), s.issue(t, name, role, tenant))
}

// adminConn connects with admin.creds.
func (s *secured) adminConn(t *testing.T) *secConn {
	t.Helper()
	creds, err := os.ReadFile(filepath.Join(s.m.Config.DataDir, AdminCredsFile))
	require.NoError(t, err)
	return dialCreds(t, s.m.ClientURL(), creds)
}

// lastSeq is the stream's last sequence, read with the service account's
// credentials (what only consentd holds).
func (s *secured) lastSeq(t *testing.T) uint64 {
	t.Helper()
	nc, err := nats.Connect(s.m.ClientURL(), serviceOptions(t, s.m.Config.DataDir)...)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(secCtx(t), wire.DefaultStream)
	require.NoError(t, err)
	return stream.CachedInfo().State.LastSeq
}

// secConn is a client connection whose asynchronous errors (the server's
// permissions violations) arrive on errs.
type secConn struct {
	*nats.Conn
	errs   chan error
	client *client.Client
}

func dialCreds(t *testing.T, url string, creds []byte) *secConn {
	t.Helper()
	opts, err := auth.ConnectOptions(creds)
	require.NoError(t, err)
	c := &secConn{errs: make(chan error, 64)}
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.errs <- err }))
	c.Conn, err = nats.Connect(url, opts...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	c.client = client.NewClient(c.Conn, client.ClientOptions{ServiceFeed: true})
	return c
}

// violation waits for the server's permissions violation of what, e.g.
// `Publish to "consent.events.acme.x.y"` or `Subscription to "_INBOX.>"`.
// It fails on any other asynchronous error.
func (c *secConn) violation(t *testing.T, what string) {
	t.Helper()
	select {
	case err := <-c.errs:
		require.ErrorIs(t, err, nats.ErrPermissionViolation)
		assert.Contains(t, err.Error(), "Permissions Violation for "+what)
	case <-time.After(10 * time.Second):
		t.Fatalf("no permissions violation for %s", what)
	}
}

// subscribeRefused subscribes to subject (in queue group queue unless "")
// and waits for the server's refusal.
func (c *secConn) subscribeRefused(t *testing.T, subject, queue string) {
	t.Helper()
	var err error
	if queue == "" {
		_, err = c.SubscribeSync(subject)
	} else {
		_, err = c.QueueSubscribeSync(subject, queue)
	}
	require.NoError(t, err)
	require.NoError(t, c.Flush())
	want := `Subscription to "` + subject + `"`
	if queue != "" {
		want += ` using queue "` + queue + `"`
	}
	c.violation(t, want)
}

// publishRefused publishes a request to subject and waits for the server's
// refusal: the message went nowhere.
func (c *secConn) publishRefused(t *testing.T, subject string, data []byte) {
	t.Helper()
	require.NoError(t, c.PublishRequest(subject, c.NewRespInbox(), data))
	require.NoError(t, c.Flush())
	c.violation(t, `Publish to "`+subject+`"`)
}

// noErrors checks that no asynchronous error came so far.
func (c *secConn) noErrors(t *testing.T) {
	t.Helper()
	require.NoError(t, c.Flush())
	select {
	case err := <-c.errs:
		t.Fatalf("unexpected error: %v", err)
	default:
	}
}

func secCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// forbidden asserts that err is the service's 403 "forbidden: ..." (not a
// check's "consent required").
func forbidden(t *testing.T, err error, contains string) {
	t.Helper()
	we, ok := errors.AsType[*wire.Error](err)
	require.True(t, ok, "want a service error, got %v", err)
	assert.Equal(t, 403, we.Code)
	assert.True(t, strings.HasPrefix(we.Description, "forbidden: "), we.Description)
	assert.Contains(t, we.Description, contains)
}

func TestSecurityAnonymousConnectionIsRefused(t *testing.T) {
	s := startSecured(t)
	_, err := nats.Connect(s.m.ClientURL())
	require.ErrorIs(t, err, nats.ErrAuthorization)
}

// TestSecurityAttacksFail: the attacks of issue 15, each tried with a
// writer of acme and with admin.creds (admin of every tenant).
func TestSecurityAttacksFail(t *testing.T) {
	s := startSecured(t)
	ctx := secCtx(t)
	alice := events.Command{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email"}
	key := events.Key{Tenant: "acme", SubjectID: alice.SubjectID, Purpose: alice.Purpose}
	aliceQuery := wire.StatusQuery{Tenant: "acme", SubjectID: alice.SubjectID, Purpose: alice.Purpose}
	requested, err := s.admin.Request(ctx, alice)
	require.NoError(t, err)

	attackers := map[string]*secConn{
		"writer of acme": s.dial(t, "app", auth.Writer, "acme"),
		"admin.creds":    s.adminConn(t),
	}
	for name, c := range attackers {
		t.Run(name, func(t *testing.T) {
			// Read every event, everyone's replies.
			c.subscribeRefused(t, "consent.events.>", "")
			c.subscribeRefused(t, "_INBOX.>", "")
			c.subscribeRefused(t, ">", "")

			// Forge a grant straight onto the stream, after acme's last event.
			before := s.lastSeq(t)
			forged := events.Event{V: 1, Type: events.TypeGranted, Tenant: "acme", SubjectID: alice.SubjectID, Purpose: alice.Purpose,
				Actor: "subject", PrevHash: requested.Event.Hash, OccurredAt: time.Now().UTC(), RecordedAt: time.Now().UTC()}
			data, err := json.Marshal(forged)
			require.NoError(t, err)
			c.publishRefused(t, key.NATSSubject(), data)
			c.publishRefused(t, "consent.events.acme.x.y", data)
			c.publishRefused(t, "consent.purposes.acme.marketing_email", []byte(`{"policy_version":2147483647}`))
			assert.Equal(t, before, s.lastSeq(t), "nothing reached the stream")
			_, err = s.admin.Check(ctx, aliceQuery)
			require.ErrorIs(t, err, wire.ErrConsentRequired, "the forged grant does not allow anything")

			// The stream's admin API: the client accounts have no route
			// to it, and their users may not even publish there.
			for _, api := range []string{"$JS.API.STREAM.DELETE.CONSENT", "$JS.API.STREAM.UPDATE.CONSENT", "$JS.API.STREAM.INFO.CONSENT",
				"$JS.API.CONSUMER.CREATE.CONSENT", "$JS.API.INFO"} {
				c.publishRefused(t, api, []byte(`{}`))
			}

			// Answer checks in the service's queue group.
			c.subscribeRefused(t, "consent.v1.>", "consent")
			c.subscribeRefused(t, "consent.v1.*.check", "consent")
			c.subscribeRefused(t, "consent.v1.acme.check", "consent")
			c.noErrors(t)
		})
	}
	_, err = s.admin.Status(ctx, aliceQuery)
	require.NoError(t, err, "the service still answers")
	st, err := s.admin.Status(ctx, aliceQuery)
	require.NoError(t, err)
	assert.Equal(t, events.StateRequested, st.State)
	assert.Equal(t, requested.Seq, st.Seq)
}

// TestSecurityRepliesAreTheirUsersOwn: bob of acme cannot read alice's
// replies, nor anyone's.
func TestSecurityRepliesAreTheirUsersOwn(t *testing.T) {
	s := startSecured(t)
	alice := s.dial(t, "alice", auth.Checker, "acme")
	bob := s.dial(t, "bob", auth.Checker, "acme")
	bob.subscribeRefused(t, auth.InboxPrefix("alice")+".>", "")
	bob.subscribeRefused(t, "_INBOX.>", "")
	bob.subscribeRefused(t, "_INBOX_alice.*", "")

	// Alice's own inbox works, and her answers reach her only.
	_, err := alice.client.Status(secCtx(t), wire.StatusQuery{SubjectID: "x", Purpose: "newsletter"})
	require.NoError(t, err)
	alice.noErrors(t)
	bob.noErrors(t)
}

// TestSecurityTenantsAreApart: a user of globex cannot read or change
// acme's consents or purposes, whatever tenant it names in the body or the
// subject; what it names as its identity is overwritten by the server.
func TestSecurityTenantsAreApart(t *testing.T) {
	s := startSecured(t)
	ctx := secCtx(t)
	key := wire.StatusQuery{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email"}
	granted, err := s.admin.Grant(ctx, events.Command{Tenant: "acme", SubjectID: key.SubjectID, Purpose: key.Purpose})
	require.NoError(t, err)
	_, err = s.admin.SetPurpose(ctx, events.PurposeCommand{Tenant: "acme", Purpose: key.Purpose, PolicyVersion: 1})
	require.NoError(t, err)

	writer := s.dial(t, "gw", auth.Writer, "globex")
	auditor := s.dial(t, "ga", auth.Auditor, "globex")
	admin := s.dial(t, "gadmin", auth.Admin, "globex")
	const notAcme = `tenant "acme": your credentials are for tenant "globex" only`

	_, err = writer.client.List(ctx, wire.ListQuery{Tenant: "acme", SubjectID: key.SubjectID})
	forbidden(t, err, notAcme)
	_, err = writer.client.Check(ctx, key)
	forbidden(t, err, notAcme)
	_, err = writer.client.Status(ctx, key)
	forbidden(t, err, notAcme)
	_, err = writer.client.Revoke(ctx, events.Command{Tenant: "acme", SubjectID: key.SubjectID, Purpose: key.Purpose})
	forbidden(t, err, notAcme)
	_, err = writer.client.Grant(ctx, events.Command{Tenant: "acme", SubjectID: "mallory", Purpose: key.Purpose})
	forbidden(t, err, notAcme)
	_, err = auditor.client.History(ctx, wire.HistoryQuery{Tenant: "acme", SubjectID: key.SubjectID})
	forbidden(t, err, notAcme)
	_, err = auditor.client.StatusAt(ctx, wire.StatusAtQuery{Tenant: "acme", SubjectID: key.SubjectID, Purpose: key.Purpose, At: time.Now()})
	forbidden(t, err, notAcme)
	_, err = admin.client.SetPurpose(ctx, events.PurposeCommand{Tenant: "acme", Purpose: key.Purpose, PolicyVersion: 2147483647})
	forbidden(t, err, notAcme)
	_, err = admin.client.ListPurposes(ctx, wire.PurposeListQuery{Tenant: "acme"})
	forbidden(t, err, notAcme)
	_, err = admin.client.Users(ctx, wire.UserRequest{Tenant: "acme"})
	forbidden(t, err, notAcme)

	// Naming acme in the subject: the user may not publish there.
	writer.publishRefused(t, "consent.v1.acme.check", []byte(`{"subject":"alice@example.com","purpose":"marketing_email"}`))
	writer.publishRefused(t, "consent.v1.acme.revoke", []byte(`{"subject":"alice@example.com","purpose":"marketing_email"}`))
	// Subjects the role may use map into globex's own namespace.
	// A forged identity header is replaced by the server's: the request
	// is globex's, so it is refused for naming acme...
	hdr := nats.Header{}
	info, err := json.Marshal(map[string]string{"acc": "whatever", "user": "admin", "issuer_key": "forged"})
	require.NoError(t, err)
	hdr.Set(ledger.HeaderRequestInfo, string(info))
	msg, err := writer.RequestMsgWithContext(ctx, &nats.Msg{Subject: wire.SubjectRevoke, Header: hdr,
		Data: []byte(`{"tenant":"acme","subject":"alice@example.com","purpose":"marketing_email"}`)})
	require.NoError(t, err)
	assert.Equal(t, "403", msg.Header.Get("Nats-Service-Error-Code"))
	assert.Contains(t, msg.Header.Get("Nats-Service-Error"), notAcme)
	// ... and recorded as globex's, by its writer, without a tenant.
	msg, err = writer.RequestMsgWithContext(ctx, &nats.Msg{Subject: wire.SubjectGrant, Header: hdr,
		Data: []byte(`{"subject":"alice@example.com","purpose":"marketing_email"}`)})
	require.NoError(t, err)
	require.Empty(t, msg.Header.Get("Nats-Service-Error"))
	var reply wire.Reply
	require.NoError(t, json.Unmarshal(msg.Data, &reply))
	assert.Equal(t, "globex", reply.Event.Tenant)
	assert.Equal(t, "gw@globex", reply.Event.RecordedBy)

	// acme is as it was.
	st, err := s.admin.Check(ctx, key)
	require.NoError(t, err)
	assert.Equal(t, granted.Seq, st.Seq)
	p, err := s.admin.GetPurpose(ctx, wire.PurposeQuery{Tenant: "acme", Purpose: key.Purpose})
	require.NoError(t, err)
	assert.Equal(t, 1, p.PolicyVersion)
	for _, c := range []*secConn{writer, auditor, admin} {
		c.noErrors(t)
	}
}

// roleCall is one call of an endpoint, for a user of tenant ("" for the
// caller's own), through the Go client.
type roleCall func(ctx context.Context, c *client.Client, tenant string) error

// roleCalls are calls of one endpoint of each role, named as under
// consent.v1. Each needs the grants seedRoles records.
var roleCalls = map[string]roleCall{
	"status": func(ctx context.Context, c *client.Client, tenant string) error {
		_, err := c.Status(ctx, wire.StatusQuery{Tenant: tenant, SubjectID: "alice", Purpose: "newsletter"})
		return err
	},
	"check": func(ctx context.Context, c *client.Client, tenant string) error {
		_, err := c.Check(ctx, wire.StatusQuery{Tenant: tenant, SubjectID: "alice", Purpose: "newsletter"})
		return err
	},
	"list": func(ctx context.Context, c *client.Client, tenant string) error {
		l, err := c.List(ctx, wire.ListQuery{Tenant: tenant, SubjectID: "alice"})
		if err == nil && len(l) != 1 {
			err = errors.New("list: want alice's one consent")
		}
		return err
	},
	"grant": func(ctx context.Context, c *client.Client, tenant string) error {
		_, err := c.Grant(ctx, events.Command{Tenant: tenant, SubjectID: "bob", Purpose: "newsletter"})
		return err
	},
	"history": func(ctx context.Context, c *client.Client, tenant string) error {
		h, err := c.History(ctx, wire.HistoryQuery{Tenant: tenant, SubjectID: "alice"})
		if err == nil && len(h.Events) == 0 {
			err = errors.New("history: want alice's grant")
		}
		return err
	},
	"status_at": func(ctx context.Context, c *client.Client, tenant string) error {
		_, err := c.StatusAt(ctx, wire.StatusAtQuery{Tenant: tenant, SubjectID: "alice", Purpose: "newsletter", At: time.Now()})
		return err
	},
	"feed.open": func(ctx context.Context, c *client.Client, tenant string) error {
		w, err := c.Watch(ctx, client.WatchOptions{Tenant: tenant, StartSeq: 1})
		if err != nil {
			return err
		}
		defer w.Stop()
		ch, err := w.Next(ctx)
		if err == nil && (ch.Event == nil || ch.Event.SubjectID != "alice") {
			err = errors.New("feed: want alice's grant first")
		}
		return err
	},
	"purpose.set": func(ctx context.Context, c *client.Client, tenant string) error {
		_, err := c.SetPurpose(ctx, events.PurposeCommand{Tenant: tenant, Purpose: "analytics"})
		return err
	},
	"admin.user.list": func(ctx context.Context, c *client.Client, tenant string) error {
		_, err := c.Users(ctx, wire.UserRequest{Tenant: tenant})
		return err
	},
}

// seedRoles grants alice the newsletter in acme and globex.
func seedRoles(t *testing.T, s *secured) {
	t.Helper()
	for _, tenant := range []string{"acme", "globex"} {
		_, err := s.admin.Grant(secCtx(t), events.Command{Tenant: tenant, SubjectID: "alice", Purpose: "newsletter"})
		require.NoError(t, err)
	}
}

// TestSecurityRoles: a user of each role, scoped to acme, may use its
// role's endpoints in acme only, and the server refuses it every other
// role's endpoint (one of each kind in roleCalls).
func TestSecurityRoles(t *testing.T) {
	s := startSecured(t)
	seedRoles(t, s)
	tests := []struct {
		role    auth.Role
		allowed []string
	}{
		{auth.Checker, []string{"status", "check", "list"}},
		{auth.Writer, []string{"status", "check", "list", "grant"}},
		{auth.Subscriber, []string{"status", "check", "list", "feed.open"}},
		{auth.Auditor, []string{"history", "status_at"}},
		{auth.Admin, []string{"status", "check", "list", "grant", "history", "status_at", "feed.open", "purpose.set", "admin.user.list"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			c := s.dial(t, "acme-"+string(tt.role), tt.role, "acme")
			for endpoint, call := range roleCalls {
				if slices.Contains(tt.allowed, endpoint) {
					require.NoError(t, call(secCtx(t), c.client, ""), endpoint)
					require.NoError(t, call(secCtx(t), c.client, "acme"), endpoint)
					err := call(secCtx(t), c.client, "globex")
					forbidden(t, err, `tenant "globex": your credentials are for tenant "acme" only`)
				} else {
					c.publishRefused(t, "consent.v1."+endpoint, []byte(`{}`))
				}
			}
			c.noErrors(t)
		})
	}
}

// TestSecurityRolesOfEveryTenant: an admin and an auditor of every tenant
// ('*') reach every tenant named in the body; the auditor still only
// reads.
func TestSecurityRolesOfEveryTenant(t *testing.T) {
	s := startSecured(t)
	seedRoles(t, s)
	admin := s.dial(t, "root", auth.Admin, "*")
	auditor := s.dial(t, "inspector", auth.Auditor, "*")
	for _, tenant := range []string{"acme", "globex"} {
		for endpoint, call := range roleCalls {
			require.NoError(t, call(secCtx(t), admin.client, tenant), "admin: %s of %s", endpoint, tenant)
		}
		for _, endpoint := range []string{"history", "status_at"} {
			require.NoError(t, roleCalls[endpoint](secCtx(t), auditor.client, tenant), "auditor: %s of %s", endpoint, tenant)
		}
	}
	for _, endpoint := range []string{"status", "check", "list", "grant", "feed.open", "purpose.set", "admin.user.list", "admin.user.add"} {
		auditor.publishRefused(t, "consent.v1."+endpoint, []byte(`{"tenant":"acme"}`))
	}
	admin.noErrors(t)
	auditor.noErrors(t)
}

// TestSecurityRevokeTakesAUserAwayAtOnce: the revoked user's live
// connection is closed by the server and its next request fails, its
// credentials are refused from then on, and the same name issued again
// gets new credentials that work.
func TestSecurityRevokeTakesAUserAwayAtOnce(t *testing.T) {
	s := startSecured(t)
	ctx := secCtx(t)
	creds := s.issue(t, "carol", auth.Writer, "acme")
	opts, err := auth.ConnectOptions(creds)
	require.NoError(t, err)
	errs, closed := make(chan error, 16), make(chan struct{})
	nc, err := nats.Connect(s.m.ClientURL(), append(opts, nats.ReconnectWait(50*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	carol := client.NewClient(nc, client.ClientOptions{})
	_, err = carol.Grant(ctx, events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)

	require.NoError(t, s.admin.RevokeUser(ctx, wire.UserRequest{Name: "carol", Tenant: "acme"}))
	select {
	case err := <-errs:
		require.ErrorIs(t, err, nats.ErrAuthRevoked, "the server closed the connection")
	case <-ctx.Done():
		t.Fatal("the revoked user's connection stays open")
	}
	select {
	case <-closed: // it cannot come back: its reconnects are refused
	case <-ctx.Done():
		t.Fatal("the revoked user's connection reconnected")
	}
	_, err = carol.Revoke(ctx, events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
	_, err = nats.Connect(s.m.ClientURL(), opts...)
	require.ErrorIs(t, err, nats.ErrAuthorization)

	users, err := s.admin.Users(ctx, wire.UserRequest{Tenant: "acme"})
	require.NoError(t, err)
	require.Len(t, users, 1)
	assert.Equal(t, "carol", users[0].Name)
	assert.NotNil(t, users[0].RevokedAt)

	// Issued again: new credentials, which work; the old stay refused.
	again := s.issue(t, "carol", auth.Writer, "acme")
	assert.NotEqual(t, string(creds), string(again))
	c := dialCreds(t, s.m.ClientURL(), again)
	reply, err := c.client.Revoke(ctx, events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	assert.Equal(t, "carol@acme", reply.Event.RecordedBy)
	_, err = nats.Connect(s.m.ClientURL(), opts...)
	require.ErrorIs(t, err, nats.ErrAuthorization)

	// Revoking a name with nothing in force is a 400 naming it.
	err = s.admin.RevokeUser(ctx, wire.UserRequest{Name: "nobody", Tenant: "acme"})
	require.ErrorIs(t, err, wire.ErrBadRequest)
	assert.Contains(t, err.Error(), `name: "nobody" has no credentials in force in tenant "acme"`)
}

// TestSecurityTenantAdminManagesItsOwnTenantOnly: an admin of acme adds,
// lists and revokes users of acme, and gets a 403 for globex or every
// tenant.
func TestSecurityTenantAdminManagesItsOwnTenantOnly(t *testing.T) {
	s := startSecured(t)
	ctx := secCtx(t)
	admin := s.dial(t, "boss", auth.Admin, "acme")

	u, err := admin.client.AddUser(ctx, wire.UserRequest{Name: "clerk", Role: "checker"})
	require.NoError(t, err)
	assert.Equal(t, "acme", u.Tenant, "no tenant: the admin's own")
	assert.Equal(t, "_INBOX_clerk", u.InboxPrefix)
	clerk := dialCreds(t, s.m.ClientURL(), []byte(u.Creds))
	_, err = clerk.client.Status(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)

	_, err = admin.client.AddUser(ctx, wire.UserRequest{Name: "spy", Role: "writer", Tenant: "globex"})
	forbidden(t, err, `tenant "globex": your credentials are for tenant "acme" only`)
	_, err = admin.client.AddUser(ctx, wire.UserRequest{Name: "spy", Role: "admin", Tenant: "*"})
	forbidden(t, err, `tenant "*": your credentials are for tenant "acme" only`)
	err = admin.client.RevokeUser(ctx, wire.UserRequest{Name: "admin", Tenant: "*"})
	forbidden(t, err, `tenant "*": your credentials are for tenant "acme" only`)
	_, err = admin.client.Users(ctx, wire.UserRequest{Tenant: "*"})
	forbidden(t, err, `tenant "*": your credentials are for tenant "acme" only`)

	users, err := s.admin.Users(ctx, wire.UserRequest{Tenant: "globex"})
	require.NoError(t, err)
	assert.Empty(t, users, "nobody was added to globex")
	require.NoError(t, admin.client.RevokeUser(ctx, wire.UserRequest{Name: "clerk"}))
	users, err = admin.client.Users(ctx, wire.UserRequest{})
	require.NoError(t, err)
	require.Len(t, users, 2) // boss and the revoked clerk
	admin.noErrors(t)
}

// TestSecurityServiceInfoForAdminsAndAuditorsOnly: the service's $SRV
// INFO and STATS (nats micro info/stats consent) answer an admin and an
// auditor; the server refuses them to the other roles.
func TestSecurityServiceInfoForAdminsAndAuditorsOnly(t *testing.T) {
	s := startSecured(t)
	ctx := secCtx(t)
	readers := map[string]*secConn{
		"admin.creds":     s.adminConn(t),
		"admin of acme":   s.dial(t, "boss", auth.Admin, "acme"),
		"auditor of acme": s.dial(t, "aud", auth.Auditor, "acme"),
		"auditor of all":  s.dial(t, "inspector", auth.Auditor, "*"),
	}
	for name, c := range readers {
		for kind, subject := range map[string]string{"info": "$SRV.INFO.consent", "stats": "$SRV.STATS.consent"} {
			msg, err := c.RequestWithContext(ctx, subject, nil)
			require.NoError(t, err, "%s: %s", name, subject)
			var r struct {
				Type string `json:"type"`
				Name string `json:"name"`
			}
			require.NoError(t, json.Unmarshal(msg.Data, &r))
			assert.Equal(t, "consent", r.Name)
			assert.Equal(t, "io.nats.micro.v1."+kind+"_response", r.Type)
		}
		c.noErrors(t)
	}
	for _, role := range []auth.Role{auth.Checker, auth.Writer, auth.Subscriber} {
		c := s.dial(t, "acme-"+string(role), role, "acme")
		for _, subject := range []string{"$SRV.INFO.consent", "$SRV.STATS.consent", "$SRV.PING"} {
			c.publishRefused(t, subject, nil)
		}
	}
}

// TestSecurityRecordedBy: a grant by writer app of acme is recorded by
// "app@acme", apart from its actor, in the reply, the history, a signed
// receipt and the stream itself.
func TestSecurityRecordedBy(t *testing.T) {
	dir := t.TempDir()
	keyFile, pubFile := filepath.Join(dir, "consent.key"), filepath.Join(dir, "consent.pub")
	_, err := audit.GenerateKeyFiles(keyFile, pubFile)
	require.NoError(t, err)
	pub, err := audit.LoadPublicKey(pubFile)
	require.NoError(t, err)
	m := NewMain()
	m.Config.Listen, m.Config.DataDir, m.Config.SigningKey, m.Config.LogLevel = "127.0.0.1:-1", filepath.Join(dir, "data"), keyFile, "warn"
	m.Stdout, m.Stderr = io.Discard, testWriter{t}
	err = m.Run(t.Context())
	t.Cleanup(func() { _ = m.Close() })
	require.NoError(t, err)
	s := &secured{m: m, admin: connectClient(t, m.ClientURL(), adminOptions(t, m.Config.DataDir)...)}
	ctx := secCtx(t)

	app := s.dial(t, "app", auth.Writer, "acme")
	auditor := s.dial(t, "aud", auth.Auditor, "acme")
	granted, err := app.client.Grant(ctx, events.Command{SubjectID: "alice@example.com", Purpose: "newsletter", Actor: "subject"})
	require.NoError(t, err)
	assert.Equal(t, "app@acme", granted.Event.RecordedBy, "reply")
	assert.Equal(t, "subject", granted.Event.Actor)
	assert.Equal(t, "acme", granted.Event.Tenant)

	history, err := auditor.client.History(ctx, wire.HistoryQuery{SubjectID: "alice@example.com"})
	require.NoError(t, err)
	require.Len(t, history.Events, 1)
	assert.Equal(t, "app@acme", history.Events[0].Event.RecordedBy, "history")
	assert.Equal(t, granted.Event.Hash, history.Events[0].Event.Hash)

	sr, err := auditor.client.Receipt(ctx, wire.ReceiptQuery{SubjectID: "alice@example.com", Purpose: "newsletter"})
	require.NoError(t, err)
	receipt, err := audit.VerifyReceipt(&sr, audit.NewKeyring(pub))
	require.NoError(t, err)
	require.Len(t, receipt.History, 1)
	assert.Equal(t, "app@acme", receipt.History[0].Event.RecordedBy, "receipt")

	nc, err := nats.Connect(m.ClientURL(), serviceOptions(t, m.Config.DataDir)...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(ctx, wire.DefaultStream)
	require.NoError(t, err)
	raw, err := stream.GetMsg(ctx, granted.Seq)
	require.NoError(t, err)
	var stored events.Event
	require.NoError(t, json.Unmarshal(raw.Data, &stored))
	assert.Equal(t, "app@acme", stored.RecordedBy, "stream")
	assert.Equal(t, granted.Event.Hash, stored.Hash)
	app.noErrors(t)
	auditor.noErrors(t)
}

// TestSecurityAdminCreds: admin.creds is private, in a private authority;
// deleted, it is written anew on the next start and the old credentials
// are refused.
func TestSecurityAdminCreds(t *testing.T) {
	dataDir := t.TempDir()
	m := startConsentd(t, dataDir)
	path := filepath.Join(dataDir, AdminCredsFile)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "admin.creds")
	fi, err = os.Stat(filepath.Join(dataDir, "auth"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "the authority's directory")
	old, err := os.ReadFile(path)
	require.NoError(t, err)
	oldOpts, err := auth.ConnectOptions(old)
	require.NoError(t, err)

	require.NoError(t, m.Close())
	require.NoError(t, os.Remove(path))
	m = startConsentd(t, dataDir)
	renewed, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotEqual(t, string(old), string(renewed))
	fi, err = os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "admin.creds written anew")

	_, err = nats.Connect(m.ClientURL(), oldOpts...)
	require.ErrorIs(t, err, nats.ErrAuthorization, "the deleted credentials")
	c := dialCreds(t, m.ClientURL(), renewed)
	users, err := c.client.Users(secCtx(t), wire.UserRequest{Tenant: "*"})
	require.NoError(t, err)
	require.Len(t, users, 2, "the old admin, revoked, and the new")
	assert.NotNil(t, users[0].RevokedAt)
	assert.Nil(t, users[1].RevokedAt)
}

// TestSecurityInsecureNoAuth: --insecure-no-auth is refused beyond
// loopback, naming the flag; on loopback anonymous clients do everything,
// and the ready line says so.
func TestSecurityInsecureNoAuth(t *testing.T) {
	for _, args := range [][]string{
		{"--listen", "0.0.0.0:4222", "--insecure-no-auth"},
		{"--listen", "[::]:4222", "--insecure-no-auth"},
		{"--listen", "192.168.1.20:4222", "--insecure-no-auth", "--tls-cert", "c.pem", "--tls-key", "k.pem"},
		{"--insecure-no-auth"},
	} {
		_, err := parse(args, "CONSENTD_LISTEN=10.0.0.7:4222")
		require.Error(t, err, "%v", args)
		assert.Contains(t, err.Error(), "with --insecure-no-auth: anyone on the network could read, forge and erase the consents")
		assert.Contains(t, err.Error(), "drop --insecure-no-auth")
	}

	dataDir := t.TempDir()
	m := NewMain()
	m.Config.Listen, m.Config.DataDir, m.Config.LogLevel, m.Config.InsecureNoAuth = "127.0.0.1:-1", dataDir, "warn", true
	var stdout bytes.Buffer
	m.Stdout, m.Stderr = &stdout, testWriter{t}
	err := m.Run(t.Context())
	t.Cleanup(func() { _ = m.Close() })
	require.NoError(t, err)
	assert.Regexp(t, `^consentd: listening on nats://127\.0\.0\.1:\d+ \(pid \d+, embedded NATS with JetStream, sync always\), data in .*, no authentication \(--insecure-no-auth\)\n$`, stdout.String())
	assert.NoFileExists(t, filepath.Join(dataDir, AdminCredsFile))

	anonymous := connectClient(t, m.ClientURL())
	ctx := secCtx(t)
	granted, err := anonymous.Grant(ctx, events.Command{Tenant: "acme", SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	assert.Empty(t, granted.Event.RecordedBy, "no user to record")
	st, err := anonymous.Check(ctx, wire.StatusQuery{Tenant: "acme", SubjectID: "alice", Purpose: "newsletter", MinSeq: granted.Seq})
	require.NoError(t, err)
	assert.True(t, st.Allowed)
	_, err = anonymous.SetPurpose(ctx, events.PurposeCommand{Tenant: "globex", Purpose: "newsletter"})
	require.NoError(t, err, "every tenant, every endpoint")
}

// TestSecurityAuditorsVerifyAndExportThroughTheService: an auditor has
// no JetStream API, so audit verify and export read a consumer the
// service opens for its account (consent.v1.audit.open): an auditor of
// every tenant verifies the whole stream and exports every event; an
// auditor of acme exports acme's events only and may not read the whole
// stream; a writer may not open one at all.
func TestSecurityAuditorsVerifyAndExportThroughTheService(t *testing.T) {
	s := startSecured(t)
	ctx := secCtx(t)
	for _, tenant := range []string{"acme", "globex"} {
		_, err := s.admin.Grant(ctx, events.Command{Tenant: tenant, SubjectID: "alice", Purpose: "newsletter"})
		require.NoError(t, err)
	}

	all := s.dial(t, "auditor", auth.Auditor, "*")
	source, err := all.client.AuditSource(ctx, wire.AuditOpenRequest{Every: true})
	require.NoError(t, err)
	report, err := audit.Verify(ctx, nil, audit.VerifyOptions{Source: source, Live: all.client.IndexDigest})
	require.NoError(t, err)
	assert.True(t, report.OK(), "%v", report.Problems)
	assert.Equal(t, uint64(2), report.Events)
	require.NotNil(t, report.Live)
	all.noErrors(t)

	acme := s.dial(t, "acme-auditor", auth.Auditor, "acme")
	_, err = acme.client.AuditSource(ctx, wire.AuditOpenRequest{Every: true})
	forbidden(t, err, `every message of the stream holds every tenant's events; your credentials are for tenant "acme" only`)
	source, err = acme.client.AuditSource(ctx, wire.AuditOpenRequest{})
	require.NoError(t, err)
	var out strings.Builder
	st, err := audit.Export(ctx, nil, &out, audit.ExportOptions{Source: source, Tenant: "acme"})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.Events)
	assert.Contains(t, out.String(), `"tenant":"acme"`)
	assert.NotContains(t, out.String(), "globex")

	w := s.dial(t, "writer", auth.Writer, "acme")
	w.publishRefused(t, wire.SubjectAuditOpen, []byte(`{}`))
}
