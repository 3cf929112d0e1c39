package ledger_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFeedOpenRefusesBadInputAndOtherTenants(t *testing.T) {
	st := startStack(t, stackOptions{})
	serviceFeedClient(t, st)
	ask := func(subject, body string) (code, description string, reply wire.FeedOpenReply) {
		t.Helper()
		m, err := st.nc.Request(subject, []byte(body), 5*time.Second)
		require.NoError(t, err)
		if code = m.Header.Get(micro.ErrorCodeHeader); code == "" {
			require.NoError(t, json.Unmarshal(m.Data, &reply))
		}
		return code, m.Header.Get(micro.ErrorHeader), reply
	}
	for _, c := range []struct{ body, field string }{
		{`{"durable":"a~b"}`, "durable"},
		{`{"durable":"Mailer"}`, "durable"},
		{`{"tenant":"Acme"}`, "tenant"},
		{`{"purposes":["a.b"]}`, "purpose"},
		{`{"start_seq":3,"deliver":"new"}`, "deliver"},
		{`{"deliver":"all"}`, "deliver"},
		{`{"durable":"m","ack_wait":"soon"}`, "ack_wait"},
		{`{"start_seq":3,"start_time":"2026-01-01T00:00:00Z"}`, "start"},
		{`{"tenant":"acme","extra":1}`, "extra"},
	} {
		code, description, _ := ask(wire.SubjectFeedOpen, c.body)
		assert.Equal(t, "400", code, c.body)
		assert.Contains(t, description, c.field, c.body)
	}

	// Under a tenant's subject token (as a client account's import maps
	// its requests, to a feed that identifies its callers as consentd's
	// does) the tenant is the token's: another one is refused.
	identified, err := ledger.ServeFeed(st.js, ledger.FeedConfig{Identify: func(_, token, _ string) (ledger.Caller, error) {
		return ledger.Caller{User: "u@" + token, Tenant: token}, nil
	}})
	require.NoError(t, err)
	t.Cleanup(identified.Stop)
	for _, subject := range []string{"consent.v1.acme.feed.open", "consent.v1.acme.feed.purposes"} {
		code, description, _ := ask(subject, `{"tenant":"globex"}`)
		assert.Equal(t, "403", code, subject)
		assert.Contains(t, description, `forbidden: tenant "globex"`, subject)
		code, _, _ = ask(subject, `{"tenant":"*"}`)
		assert.Equal(t, "403", code, subject)
	}
	code, _, r := ask("consent.v1.acme.feed.open", `{"durable":"mailer"}`)
	require.Empty(t, code)
	assert.Equal(t, wire.FeedConsumerName("acme", "mailer"), r.Consumer)
	assert.Equal(t, []string{"consent.events.acme.*.*", "consent.purposes.acme.*"}, r.Filters)
	assert.Equal(t, wire.DefaultAPIPrefix, r.APIPrefix)
	assert.True(t, r.Durable)
	code, _, r = ask("consent.v1.acme.feed.open", `{}`)
	require.Empty(t, code)
	assert.True(t, strings.HasPrefix(r.Consumer, "feed~acme~~"), r.Consumer)
	assert.False(t, r.Durable)
	code, _, r = ask("consent.v1.feed.feed.open", `{}`) // a tenant named feed
	require.Empty(t, code)
	assert.True(t, strings.HasPrefix(r.Consumer, "feed~feed~~"), r.Consumer)
	info, err := st.js.Consumer(stepCtx(t), wire.DefaultStream, r.Consumer)
	require.NoError(t, err)
	assert.Equal(t, ledger.DefaultFeedInactiveThreshold, info.CachedInfo().Config.InactiveThreshold, "an ephemeral feed goes away when nobody reads it")
}

// A Checker of a client that reads feeds through the service (as a client
// account must) follows the stream as one with JetStream access does.
func TestCheckerThroughTheServiceFeed(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := serviceFeedClient(t, st)
	k, err := client.NewChecker(stepCtx(t), c, client.CheckerOptions{Tenant: "acme"})
	require.NoError(t, err)
	defer k.Close()
	var feeds []string
	for name := range st.stream.ConsumerNames(stepCtx(t)).Name() {
		if strings.HasPrefix(name, "feed~") { // not the projector's
			feeds = append(feeds, name)
		}
	}
	require.Len(t, feeds, 1)
	assert.True(t, strings.HasPrefix(feeds[0], "feed~acme~~"), "the service opened the checker's consumer: %s", feeds[0])
	q := wire.StatusQuery{Tenant: "acme", SubjectID: "alice", Purpose: "newsletter"}
	allowed, err := k.Allowed(stepCtx(t), q)
	require.NoError(t, err)
	assert.False(t, allowed)

	granted, err := c.Grant(stepCtx(t), events.Command{Tenant: "acme", SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	require.NoError(t, k.WaitSeq(stepCtx(t), granted.Seq))
	allowed, err = k.Allowed(stepCtx(t), q)
	require.NoError(t, err)
	assert.True(t, allowed, "the grant reached the cached entry through the feed")
	revoked, err := c.Revoke(stepCtx(t), events.Command{Tenant: "acme", SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	require.NoError(t, k.WaitSeq(stepCtx(t), revoked.Seq))
	allowed, err = k.Allowed(stepCtx(t), q)
	require.NoError(t, err)
	assert.False(t, allowed)
	assert.Equal(t, uint64(1), k.Stats().Fills, "answered from memory after the first fill")

	// Another tenant is not followed, so not cached: the service answers.
	_, err = c.Grant(stepCtx(t), events.Command{Tenant: "globex", SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	for range 2 {
		allowed, err = k.Allowed(stepCtx(t), wire.StatusQuery{Tenant: "globex", SubjectID: "alice", Purpose: "newsletter"})
		require.NoError(t, err)
		assert.True(t, allowed)
	}
	assert.Equal(t, 1, k.Stats().Entries)
	assert.Equal(t, uint64(3), k.Stats().Fills)
}

// feed.purposes answers as of the stream's last sequence for an up_to_seq
// beyond it (a client takes it from a message it was delivered, which may
// be the newest), not with nothing.
func TestFeedPurposesUpToBeyondTheStream(t *testing.T) {
	st := startStack(t, stackOptions{})
	serviceFeedClient(t, st)
	ctx := stepCtx(t)
	set, err := st.client.SetPurpose(ctx, events.PurposeCommand{Purpose: "newsletter", PolicyVersion: 2})
	require.NoError(t, err)
	ask := func(upTo uint64) wire.FeedPurposesReply {
		t.Helper()
		m, err := st.nc.Request(wire.SubjectFeedPurposes, fmt.Appendf(nil, `{"up_to_seq":%d}`, upTo), 5*time.Second)
		require.NoError(t, err)
		require.Empty(t, m.Header.Get(micro.ErrorCodeHeader), m.Header.Get(micro.ErrorHeader))
		var r wire.FeedPurposesReply
		require.NoError(t, json.Unmarshal(m.Data, &r))
		return r
	}
	for _, upTo := range []uint64{set.Seq, set.Seq + 1, set.Seq + 1000} {
		r := ask(upTo)
		require.Len(t, r.Messages, 1, "up_to_seq %d", upTo)
		assert.Equal(t, set.Seq, r.Messages[0].Seq)
	}
	assert.Empty(t, ask(set.Seq-1).Messages, "before the purpose was set")
}
