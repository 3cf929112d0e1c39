package main

import (
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tenantUser is a user an admin issued, connected to consentd over TCP
// with its credentials; errs receives the server's asynchronous errors
// (permission violations).
type tenantUser struct {
	nc     *nats.Conn
	client *client.Client
	creds  wire.UserCreds
	errs   chan error
}

// addTenantUser issues a user of role in tenant through admin and
// connects it to url (reconnecting forever: it outlives a restart of
// consentd on the same port).
func addTenantUser(t *testing.T, admin *client.Client, url, name, role, tenant string) *tenantUser {
	t.Helper()
	creds, err := admin.AddUser(stepContext(t), wire.UserRequest{Name: name, Role: role, Tenant: tenant})
	require.NoError(t, err)
	opts, err := auth.ConnectOptions([]byte(creds.Creds))
	require.NoError(t, err)
	u := &tenantUser{creds: creds, errs: make(chan error, 64)}
	opts = append(opts, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case u.errs <- err:
			default:
			}
		}))
	u.nc, err = nats.Connect(url, opts...)
	require.NoError(t, err)
	t.Cleanup(u.nc.Close)
	u.client = client.NewClient(u.nc, client.ClientOptions{ServiceFeed: true})
	return u
}

// requirePublishRefused sends a request to subject and requires the
// server's permission violation for publishing to it (the server drops
// the request: it would time out).
func (u *tenantUser) requirePublishRefused(t *testing.T, subject string) {
	t.Helper()
	require.NoError(t, u.nc.PublishRequest(subject, u.nc.NewRespInbox(), []byte(`{}`)))
	require.NoError(t, u.nc.Flush())
	want := `nats: permissions violation: Permissions Violation for Publish to "` + subject + `"`
	for {
		select {
		case got := <-u.errs:
			if got.Error() == want {
				assert.ErrorIs(t, got, nats.ErrPermissionViolation)
				return
			}
		case <-stepContext(t).Done():
			t.Fatalf("no permission violation for %s", subject)
		}
	}
}

// nextChange returns the watch's next change, requiring one in time.
func nextChange(t *testing.T, w *client.Watcher) *client.Change {
	t.Helper()
	ch, err := w.Next(stepContext(t))
	require.NoError(t, err)
	require.NoError(t, ch.Err)
	return ch
}

// TestSubscriberFeedAcrossAccounts: a subscriber of tenant acme, in acme's
// client account, watches through the service's feed (ephemeral and
// durable): it sees acme's changes and none of globex's, its durable
// watch resumes after a restart of consentd with the change it had not
// acknowledged, and it reaches neither the stream's JetStream API nor
// globex's feed consumers.
func TestSubscriberFeedAcrossAccounts(t *testing.T) {
	dataDir := t.TempDir()
	m := runMain(t, dataDir, "--listen", "127.0.0.1:-1")
	u, err := url.Parse(m.ClientURL())
	require.NoError(t, err)
	_, port, err := net.SplitHostPort(u.Host)
	require.NoError(t, err)
	admin := connectClient(t, m.ClientURL(), adminOptions(t, dataDir)...)

	acmeWriter := addTenantUser(t, admin, m.ClientURL(), "acme-app", "writer", "acme")
	globexWriter := addTenantUser(t, admin, m.ClientURL(), "globex-app", "writer", "globex")
	mailer := addTenantUser(t, admin, m.ClientURL(), "mailer", "subscriber", "acme")
	globexMailer := addTenantUser(t, admin, m.ClientURL(), "mailer", "subscriber", "globex")
	assert.Equal(t, "_INBOX_mailer", mailer.creds.InboxPrefix)

	live, err := mailer.client.Watch(stepContext(t), client.WatchOptions{Tenant: "acme"})
	require.NoError(t, err)
	t.Cleanup(live.Stop)
	durable, err := mailer.client.Watch(stepContext(t), client.WatchOptions{Tenant: "acme", Durable: "x", StartSeq: 1, AckWait: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(durable.Stop)
	// globex's durable of the same name is another consumer.
	globexDurable, err := globexMailer.client.Watch(stepContext(t), client.WatchOptions{Tenant: "globex", Durable: "x", StartSeq: 1})
	require.NoError(t, err)
	t.Cleanup(globexDurable.Stop)

	// The stream's JetStream API is not the subscriber's to call.
	for _, subject := range []string{
		"$JS.API.STREAM.INFO.CONSENT",
		"$JS.API.STREAM.DELETE.CONSENT",
		"$JS.API.CONSUMER.CREATE.CONSENT",
		"$JS.API.CONSUMER.CREATE.CONSENT.mine.consent.events.>",
		"$JS.API.CONSUMER.INFO.CONSENT.feed~globex~x",
	} {
		mailer.requirePublishRefused(t, subject)
	}
	// Its own durable's consumer answers under the feed prefix; globex's
	// consumers, which exist, do not: acme's account imports nothing of
	// them.
	info, err := mailer.nc.Request(auth.FeedAPIPrefix+".CONSUMER.INFO.CONSENT.feed~acme~x", nil, 5*time.Second)
	require.NoError(t, err)
	assert.Contains(t, string(info.Data), `"name":"feed~acme~x"`)
	for _, subject := range []string{
		auth.FeedAPIPrefix + ".CONSUMER.INFO.CONSENT.feed~globex~x",
		auth.FeedAPIPrefix + ".CONSUMER.MSG.NEXT.CONSENT.feed~globex~x",
	} {
		_, err := mailer.nc.Request(subject, []byte(`{"batch":1}`), 5*time.Second)
		assert.ErrorIs(t, err, nats.ErrNoResponders, subject)
	}
	// The rest of the API is not even under the prefix.
	mailer.requirePublishRefused(t, auth.FeedAPIPrefix+".STREAM.INFO.CONSENT")
	mailer.requirePublishRefused(t, auth.FeedAPIPrefix+".CONSUMER.CREATE.CONSENT")
	// Nor can acme's subscriber open a feed of globex.
	_, err = mailer.client.Watch(stepContext(t), client.WatchOptions{Tenant: "globex"})
	var le *wire.Error
	require.ErrorAs(t, err, &le)
	assert.Equal(t, 403, le.Code)
	assert.Contains(t, le.Description, `forbidden: tenant "globex": your credentials are for tenant "acme" only`)

	grant := func(w *tenantUser, tenant, who string) uint64 {
		t.Helper()
		r, err := w.client.Grant(stepContext(t), events.Command{Tenant: tenant, SubjectID: who, Purpose: "newsletter"})
		require.NoError(t, err)
		assert.Equal(t, tenant, r.Event.Tenant)
		return r.Seq
	}
	alice := grant(acmeWriter, "acme", "alice")
	bob := grant(globexWriter, "globex", "bob")
	carol := grant(acmeWriter, "acme", "carol")

	// Each watch gets acme's two grants, in order: globex's, between
	// them, never.
	for _, w := range []*client.Watcher{live, durable} {
		for _, want := range []struct {
			seq uint64
			who string
		}{{alice, "alice"}, {carol, "carol"}} {
			ch := nextChange(t, w)
			require.NotNil(t, ch.Event)
			assert.Equal(t, want.seq, ch.Seq)
			assert.Equal(t, "acme", ch.Event.Tenant)
			assert.Equal(t, want.who, ch.Event.SubjectID)
			assert.Equal(t, "acme-app@acme", ch.Event.RecordedBy)
			if w == durable && want.who == "alice" {
				require.NoError(t, ch.Ack(stepContext(t)))
			}
		}
	}
	// globex's subscriber gets globex's grant only.
	ch := nextChange(t, globexDurable)
	assert.Equal(t, bob, ch.Seq)
	assert.Equal(t, "globex", ch.Event.Tenant)
	require.NoError(t, ch.Ack(stepContext(t)))

	// consentd restarts on its data directory and port; the subscriber's
	// connection reconnects and its durable watch resumes: carol's grant,
	// not acknowledged, comes again, then what follows.
	require.NoError(t, m.Close())
	restarted := runMain(t, dataDir, "--listen", "127.0.0.1:"+port)
	require.Equal(t, m.ClientURL(), restarted.ClientURL())
	dave := grant(acmeWriter, "acme", "dave")
	grant(globexWriter, "globex", "erin")
	var again []uint64
	// (The redelivery comes after AckWait: dave's grant may overtake it.)
	for !slices.Contains(again, dave) || !slices.Contains(again, carol) {
		ch = nextChange(t, durable)
		assert.Equal(t, "acme", ch.Event.Tenant)
		require.NoError(t, ch.Ack(stepContext(t)))
		again = append(again, ch.Seq)
	}
	assert.NotContains(t, again, alice, "acknowledged before the restart")
	// The ephemeral watch follows too (its consumer is reopened after
	// the last change it delivered when it was lost).
	ch = nextChange(t, live)
	assert.Equal(t, dave, ch.Seq)
}

// TestCheckerInTenantAccount: a Checker (the cached check that follows the
// feed) works in acme's client account with the credentials of one user.
func TestCheckerInTenantAccount(t *testing.T) {
	dataDir := t.TempDir()
	m := runMain(t, dataDir, "--listen", "127.0.0.1:-1")
	admin := connectClient(t, m.ClientURL(), adminOptions(t, dataDir)...)
	writer := addTenantUser(t, admin, m.ClientURL(), "app", "writer", "acme")
	globex := addTenantUser(t, admin, m.ClientURL(), "app", "writer", "globex")
	reader := addTenantUser(t, admin, m.ClientURL(), "cache", "subscriber", "acme")

	k, err := client.NewChecker(stepContext(t), reader.client, client.CheckerOptions{Tenant: "acme"})
	require.NoError(t, err)
	t.Cleanup(k.Close)
	q := wire.StatusQuery{Tenant: "acme", SubjectID: "alice", Purpose: "newsletter"}
	_, err = k.Check(stepContext(t), q)
	require.ErrorIs(t, err, wire.ErrConsentRequired, "a fill through the service")

	granted, err := writer.client.Grant(stepContext(t), events.Command{Tenant: "acme", SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	require.NoError(t, k.WaitSeq(stepContext(t), granted.Seq))
	st, err := k.Check(stepContext(t), q)
	require.NoError(t, err)
	assert.True(t, st.Allowed)
	assert.Equal(t, granted.Seq, st.Seq)

	// globex's grant of the same subject and purpose is not acme's.
	other, err := globex.client.Grant(stepContext(t), events.Command{Tenant: "globex", SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	revoked, err := writer.client.Revoke(stepContext(t), events.Command{Tenant: "acme", SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	require.Greater(t, revoked.Seq, other.Seq)
	require.NoError(t, k.WaitSeq(stepContext(t), revoked.Seq))
	_, err = k.Check(stepContext(t), q)
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	stats := k.Stats()
	assert.Positive(t, stats.Hits, "answered from memory")

	// Another tenant's consents are not this account's to look up.
	_, err = k.Check(stepContext(t), wire.StatusQuery{Tenant: "globex", SubjectID: "alice", Purpose: "newsletter"})
	var le *wire.Error
	require.ErrorAs(t, err, &le)
	assert.True(t, strings.Contains(le.Description, "acme"), le.Description)
}
