package auth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
)

// feedEnv is an authority, a server trusting it, and in SVC the stream, a
// Ledger writing to it and the feed endpoints (ledger.ServeFeed with
// GrantFeed), as consentd runs them.
type feedEnv struct {
	*env
	js     jetstream.JetStream
	ledger *ledger.Ledger
}

func startFeed(t *testing.T) *feedEnv {
	t.Helper()
	a, err := auth.Open(authDir(t))
	require.NoError(t, err)
	var creds []byte
	s := natstest.RunServer(t, func(o *server.Options) {
		creds, err = a.ServerOptions(o)
		require.NoError(t, err)
	})
	opts, err := auth.ConnectOptions(creds)
	require.NoError(t, err)
	svc := natstest.Connect(t, s, opts...)
	js := natstest.JetStream(t, svc)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	require.NoError(t, err)
	f, err := ledger.ServeFeed(js, ledger.FeedConfig{Authorize: a.GrantFeed})
	require.NoError(t, err)
	t.Cleanup(f.Stop)
	return &feedEnv{env: &env{a: a, s: s, svc: svc}, js: js, ledger: ledger.New(js, stream, ledger.Options{})}
}

func (e *feedEnv) append(t *testing.T, kind events.Kind, tenant, subject string) wire.Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := e.ledger.Append(ctx, kind, events.Command{Tenant: tenant, SubjectID: subject, Purpose: "marketing"})
	require.NoError(t, err)
	return r
}

func feedCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// subscriberClient is a Client of an acme subscriber, reading the feed
// through the service.
func (u *user) feedClient() *client.Client {
	return client.NewClient(u.nc, client.ClientOptions{ServiceFeed: true, Timeout: waitFor})
}

func nextChange(t *testing.T, w *client.Watcher) *client.Change {
	t.Helper()
	ch, err := w.Next(feedCtx(t))
	require.NoError(t, err)
	require.NoError(t, ch.Err)
	return ch
}

func TestSubscriberDurableFeedResumesAfterTheLastAck(t *testing.T) {
	e := startFeed(t)
	creds := e.issue(t, "mailer", auth.Subscriber, "acme")
	_, err := e.a.Tenant("globex")
	require.NoError(t, err)
	u := e.connect(t, creds)

	w, err := u.feedClient().Watch(feedCtx(t), client.WatchOptions{Durable: "mailer", StartSeq: 1})
	require.NoError(t, err)
	g1 := e.append(t, events.KindGrant, "acme", "alice")
	e.append(t, events.KindGrant, "globex", "alice")
	r1 := e.append(t, events.KindRevoke, "acme", "alice")
	g2 := e.append(t, events.KindGrant, "acme", "bob")

	ch := nextChange(t, w)
	assert.Equal(t, g1.Seq, ch.Seq)
	assert.Equal(t, "acme", ch.Event.Tenant)
	assert.True(t, ch.Status.Allowed)
	require.NoError(t, ch.Ack(feedCtx(t)))
	ch = nextChange(t, w)
	assert.Equal(t, r1.Seq, ch.Seq, "globex's grant is not in acme's feed")
	assert.Equal(t, events.StateRevoked, ch.Status.State)
	require.NoError(t, ch.Ack(feedCtx(t)))
	w.Stop()
	u.nc.Close()

	// A restarted subscriber (a new connection) resumes after the last
	// acknowledged change, and the consumer was acme's.
	u = e.connect(t, creds)
	w, err = u.feedClient().Watch(feedCtx(t), client.WatchOptions{Durable: "mailer"})
	require.NoError(t, err)
	defer w.Stop()
	ch = nextChange(t, w)
	assert.Equal(t, g2.Seq, ch.Seq)
	require.NoError(t, ch.Ack(feedCtx(t)))

	info, err := e.js.Consumer(feedCtx(t), wire.DefaultStream, wire.FeedConsumerName("acme", "mailer"))
	require.NoError(t, err)
	ci, err := info.Info(feedCtx(t))
	require.NoError(t, err)
	assert.Equal(t, g2.Seq, ci.AckFloor.Stream)
	assert.Zero(t, ci.NumAckPending)

	// The same name with other filters is refused.
	_, err = u.feedClient().Watch(feedCtx(t), client.WatchOptions{Durable: "mailer", Purposes: []string{"marketing"}})
	assert.ErrorIs(t, err, wire.ErrDurableMismatch)
}

func TestSubscriberEphemeralFeedFromAStartSeq(t *testing.T) {
	e := startFeed(t)
	u := e.connect(t, e.issue(t, "mailer", auth.Subscriber, "acme"))
	_, err := e.a.Tenant("globex")
	require.NoError(t, err)
	e.append(t, events.KindGrant, "acme", "alice")
	r1 := e.append(t, events.KindRevoke, "acme", "alice")
	e.append(t, events.KindGrant, "globex", "bob")
	g2 := e.append(t, events.KindGrant, "acme", "carol")

	w, err := u.feedClient().Watch(feedCtx(t), client.WatchOptions{StartSeq: r1.Seq})
	require.NoError(t, err)
	defer w.Stop()
	ch := nextChange(t, w)
	assert.Equal(t, r1.Seq, ch.Seq)
	ch = nextChange(t, w)
	assert.Equal(t, g2.Seq, ch.Seq)
	g3 := e.append(t, events.KindGrant, "acme", "dave")
	ch = nextChange(t, w)
	assert.Equal(t, g3.Seq, ch.Seq)
	assert.Equal(t, "dave", ch.Event.SubjectID)
}

func TestSubscriberCannotOpenOrReadAnotherTenantsFeed(t *testing.T) {
	e := startFeed(t)
	acme := e.connect(t, e.issue(t, "mailer", auth.Subscriber, "acme"))
	globex := e.connect(t, e.issue(t, "mailer2", auth.Subscriber, "globex"))
	gw, err := globex.feedClient().Watch(feedCtx(t), client.WatchOptions{Tenant: "globex", Durable: "mailer"})
	require.NoError(t, err)
	defer gw.Stop()

	// Whatever acme sends, it gets no feed of globex.
	c := acme.feedClient()
	for _, opts := range []client.WatchOptions{{Tenant: "globex"}, {Tenant: "globex", Durable: "mailer"}, {Tenant: "*"}} {
		_, err := c.Watch(feedCtx(t), opts)
		var we *wire.Error
		require.ErrorAs(t, err, &we, "%+v", opts)
		assert.Equal(t, 403, we.Code)
		assert.Contains(t, we.Description, "tenant")
	}
	// A request on globex's subject is mapped under acme.
	_, err = acme.nc.Request("consent.v1.globex.feed.open", []byte(`{"tenant":"globex"}`), waitFor)
	assert.Error(t, err)

	// The JetStream API it reaches under its prefix holds only its own
	// consumers: globex's (whose name it knows), CONSUMER.CREATE and the
	// stream's API get no responders.
	ajs, err := jetstream.NewWithAPIPrefix(acme.nc, auth.FeedAPIPrefix)
	require.NoError(t, err)
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	_, err = ajs.Consumer(short(), wire.DefaultStream, wire.FeedConsumerName("globex", "mailer"))
	assert.True(t, errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders), "%v", err)
	_, err = ajs.CreateConsumer(short(), wire.DefaultStream, jetstream.ConsumerConfig{FilterSubjects: []string{"consent.events.globex.>"}})
	assert.Error(t, err)
	_, err = ajs.Stream(short(), wire.DefaultStream)
	assert.Error(t, err)
	_, err = acme.nc.Request(auth.FeedAPIPrefix+".CONSUMER.MSG.NEXT."+wire.DefaultStream+"."+wire.FeedConsumerName("globex", "mailer"), []byte(`{"batch":1}`), 500*time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrNoResponders)
	// The default API is the server's "JetStream not enabled".
	djs, err := jetstream.New(acme.nc)
	require.NoError(t, err)
	_, err = djs.Stream(short(), wire.DefaultStream)
	assert.Error(t, err)

	// Straight to SVC's API or another role's subjects: permission errors.
	for _, subj := range []string{
		"$JS.API.CONSUMER.CREATE." + wire.DefaultStream,
		"$JS.API.STREAM.INFO." + wire.DefaultStream,
		"$JS.API.CONSUMER.MSG.NEXT." + wire.DefaultStream + "." + wire.FeedConsumerName("globex", "mailer"),
		auth.FeedAPIPrefix + ".CONSUMER.CREATE." + wire.DefaultStream,
		auth.FeedAPIPrefix + ".STREAM.INFO." + wire.DefaultStream,
		wire.SubjectGrant, wire.SubjectHistory,
		"consent.events.acme.marketing.x",
	} {
		acme.denyPublish(t, subj)
	}

	// globex's feed saw none of it and still works.
	g := e.append(t, events.KindGrant, "globex", "zoe")
	e.append(t, events.KindGrant, "acme", "zoe")
	ch := nextChange(t, gw)
	assert.Equal(t, g.Seq, ch.Seq)
	assert.Equal(t, "globex", ch.Event.Tenant)
}

// feedImports counts the imports of tenant's account that are of feeds
// (by consumer name prefix).
func feedImports(t *testing.T, a *auth.Authority, tenant, namePrefix string) int {
	t.Helper()
	key, err := a.Tenant(tenant)
	require.NoError(t, err)
	ac, err := jwt.DecodeAccountClaims(a.AccountJWTs()[key])
	require.NoError(t, err)
	n := 0
	for _, im := range ac.Imports {
		if strings.Contains(string(im.Subject), "."+namePrefix) {
			n++
		}
	}
	return n
}

// An ephemeral feed's imports go once the server has deleted its consumer
// (after its inactivity threshold): the next grant drops them. A
// durable's stay.
func TestGoneEphemeralFeedsLoseTheirImports(t *testing.T) {
	e := startFeed(t)
	u := e.connect(t, e.issue(t, "mailer", auth.Subscriber, "acme"))
	d, err := u.feedClient().Watch(feedCtx(t), client.WatchOptions{Durable: "mailer"})
	require.NoError(t, err)
	d.Stop()
	w, err := u.feedClient().Watch(feedCtx(t), client.WatchOptions{})
	require.NoError(t, err)
	w.Stop()
	assert.Equal(t, 3, feedImports(t, e.a, "acme", "feed~acme~~"))
	assert.Equal(t, 3, feedImports(t, e.a, "acme", "feed~acme~mailer"))

	// The server deletes the ephemeral consumer (here at once, as after
	// its InactiveThreshold).
	stream, err := e.js.Stream(feedCtx(t), wire.DefaultStream)
	require.NoError(t, err)
	var gone string
	for name := range stream.ConsumerNames(feedCtx(t)).Name() {
		if strings.HasPrefix(name, "feed~acme~~") {
			gone = name
		}
	}
	require.NotEmpty(t, gone)
	require.NoError(t, stream.DeleteConsumer(feedCtx(t), gone))

	w, err = u.feedClient().Watch(feedCtx(t), client.WatchOptions{})
	require.NoError(t, err)
	defer w.Stop()
	assert.Equal(t, 3, feedImports(t, e.a, "acme", "feed~acme~~"), "only the live one's")
	assert.Zero(t, feedImports(t, e.a, "acme", gone))
	assert.Equal(t, 3, feedImports(t, e.a, "acme", "feed~acme~mailer"))
	g := e.append(t, events.KindGrant, "acme", "alice")
	assert.Equal(t, g.Seq, nextChange(t, w).Seq)
}

// A subscriber of the account of all tenants may watch every tenant.
func TestAllTenantsSubscriberWatchesEveryTenant(t *testing.T) {
	e := startFeed(t)
	_, err := e.a.Tenant("acme")
	require.NoError(t, err)
	u := e.connect(t, e.issue(t, "ops", auth.Subscriber, auth.AllTenants))
	w, err := u.feedClient().Watch(feedCtx(t), client.WatchOptions{Tenant: "*", Durable: "ops"})
	require.NoError(t, err)
	defer w.Stop()
	a := e.append(t, events.KindGrant, "acme", "alice")
	g := e.append(t, events.KindGrant, "globex", "bob")
	for _, want := range []uint64{a.Seq, g.Seq} {
		ch := nextChange(t, w)
		assert.Equal(t, want, ch.Seq)
		require.NoError(t, ch.Ack(feedCtx(t)))
	}
	_, err = e.js.Consumer(feedCtx(t), wire.DefaultStream, wire.FeedConsumerName(auth.AllTenantsToken, "ops"))
	assert.NoError(t, err)
}

// An authority made before the feed gets SVC's feed exports when opened.
func TestOpenAddsTheFeedExportsToAnOlderServiceAccount(t *testing.T) {
	dir := authDir(t)
	_, err := auth.Open(dir)
	require.NoError(t, err)
	svcJWT := filepath.Join(dir, "accounts", "SVC", "account.jwt")
	b, err := os.ReadFile(svcJWT)
	require.NoError(t, err)
	ac, err := jwt.DecodeAccountClaims(string(b))
	require.NoError(t, err)
	require.Len(t, ac.Exports, 5)
	var only jwt.Exports
	for _, ex := range ac.Exports {
		if ex.Subject == auth.ServiceSubjects {
			only = append(only, ex)
		}
	}
	ac.Exports = only
	seed, err := os.ReadFile(filepath.Join(dir, "operator.seed"))
	require.NoError(t, err)
	op, err := nkeys.FromSeed(seed)
	require.NoError(t, err)
	old, err := ac.Encode(op)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(svcJWT, []byte(old), 0o600))

	_, err = auth.Open(dir)
	require.NoError(t, err)
	b, err = os.ReadFile(svcJWT)
	require.NoError(t, err)
	ac, err = jwt.DecodeAccountClaims(string(b))
	require.NoError(t, err)
	var subjects []string
	for _, ex := range ac.Exports {
		subjects = append(subjects, string(ex.Subject))
		if ex.Subject == "$JS.API.CONSUMER.MSG.NEXT.*.*" {
			assert.Equal(t, jwt.ResponseType(jwt.ResponseTypeStream), ex.ResponseType)
		}
		assert.True(t, ex.TokenReq, ex.Subject)
	}
	assert.ElementsMatch(t, []string{auth.ServiceSubjects, "$JS.API.CONSUMER.INFO.*.*", "$JS.API.CONSUMER.MSG.NEXT.*.*", "$JS.ACK.>", auth.ServiceInfoSubjects}, subjects)
}
