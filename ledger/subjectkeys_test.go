package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/keystore"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testSubjectKeys is the subject key scheme of the streams startStack and
// startLedger make when a test names none: go test ./ledger
// -subject-keys=hmac-sha256-16 runs the suites on keyed subject keys.
var testSubjectKeys = flag.String("subject-keys", string(events.SubjectKeySHA256), "subject key scheme of the test streams (sha256-16, hmac-sha256-16)")

// requireKeyedSubjects checks that every consent event stored in the
// stream is on the subject of its person's keyed subject key: its token
// is its subject_key, and for an event whose data key is still there,
// KeyedSubjectKey of the tenant's secret and the person's id. An event
// that names its person in the clear on the sha256-16 token (an id that
// was not resolved) fails it.
func requireKeyedSubjects(t testing.TB, stream jetstream.Stream, keys *keystore.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := stream.Info(ctx)
	if err != nil {
		t.Logf("the stored subjects are not checked: %v", err) // the test stopped the server
		return
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		require.NoError(t, err)
		tenant, _, token, ok := events.ParseConsentSubject(msg.Subject)
		if !ok {
			continue // checkpoints, purposes
		}
		ev, err := events.Decode(msg.Data)
		if err != nil {
			continue // a forged message of an integrity test
		}
		if ev.SubjectID != "" && !ev.IsSealed() {
			assert.NotEqual(t, events.SubjectKey(tenant, ev.SubjectID), token,
				"seq %d (%s) is on the sha256-16 subject of its person on a stream of keyed subject keys", seq, ev.Type)
			continue
		}
		if ev.SubjectKey == "" {
			continue
		}
		assert.Equal(t, token, ev.SubjectKey, "seq %d (%s) is not on its subject key", seq, ev.Type)
		if !ev.IsSealed() {
			continue // consent.erased
		}
		key, err := keys.KeyByID(ctx, ev.Tenant, ev.SubjectKey, ev.KeyID)
		if errors.Is(err, ledger.ErrKeyDestroyed) {
			continue // erased
		}
		require.NoError(t, err)
		if ev.Open(events.DataKey{ID: ev.KeyID, Key: key}) != nil {
			continue // a forged message of an integrity test
		}
		secret, err := keys.TenantSecret(ctx, tenant)
		require.NoError(t, err)
		assert.Equal(t, events.KeyedSubjectKey(secret, ev.SubjectID), token, "seq %d (%s) of %q", seq, ev.Type, ev.SubjectID)
	}
}

// natsSubject returns the NATS subject of the consent k by the stack's
// scheme: keyed under the tenant's secret with keyed subject keys.
func (st *stack) natsSubject(t testing.TB, k events.Key) string {
	t.Helper()
	if st.keys != nil {
		secret, err := st.keys.TenantSecret(stepCtx(t), k.Tenant)
		require.NoError(t, err)
		k.SubjectKey = events.KeyedSubjectKey(secret, k.SubjectID)
	}
	return k.NATSSubject()
}

// keysOrNil returns the stack's key store as Options.Keys: nil without
// one (a nil *keystore.Store in the interface would not be nil).
func (st *stack) keysOrNil() ledger.Keys {
	if st.keys == nil {
		return nil
	}
	return st.keys
}

// A stream made for a ledger with a key store keys its subjects with
// HMAC; the ledger takes its scheme from the stream, not from whether it
// has keys; keyed subject keys without a key store are refused, at New
// (SubjectKeys), by every method and by the service.
func TestLedgerTakesItsSubjectKeysFromTheStream(t *testing.T) {
	_, nc, js := natstest.Run(t)
	ctx := stepCtx(t)
	keys := openKeys(t, js)

	hmacStream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{Name: "KEYED", SubjectKeys: events.SubjectKeyHMAC})
	require.NoError(t, err)
	assert.Equal(t, string(events.SubjectKeyHMAC), hmacStream.CachedInfo().Config.Metadata[events.SubjectKeySchemeMetadata])
	again, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{Name: "KEYED"})
	require.NoError(t, err)
	assert.Equal(t, events.SubjectKeyHMAC, ledger.StreamSubjectKeyScheme(again.CachedInfo().Config), "an existing stream keeps its scheme")

	keyed := ledger.New(js, hmacStream, ledger.Options{Keys: keys})
	sk, err := keyed.SubjectKeys()
	require.NoError(t, err)
	assert.Equal(t, events.SubjectKeyHMAC, sk.Scheme())

	keyless := ledger.New(js, hmacStream, ledger.Options{})
	_, err = keyless.SubjectKeys()
	require.ErrorIs(t, err, ledger.ErrNoTenantSecrets)
	assert.ErrorContains(t, err, "the stream keys its subjects with hmac-sha256-16")
	_, err = keyless.Append(ctx, events.KindGrant, events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.ErrorIs(t, err, ledger.ErrNoTenantSecrets)
	_, err = keyless.History(ctx, wire.HistoryQuery{SubjectID: "alice"})
	require.ErrorIs(t, err, ledger.ErrNoTenantSecrets)
	_, err = keyless.Erase(ctx, wire.EraseRequest{SubjectID: "alice", Reason: "test"})
	require.ErrorIs(t, err, ledger.ErrNoTenantSecrets)
	idx := runIndex(t, js)
	_, err = ledger.NewService(nc, keyless, idx, ledger.ServiceConfig{})
	require.ErrorIs(t, err, ledger.ErrNoTenantSecrets)
	// A service that gets its ledger later: lookups wait for the scheme
	// (503), and a ledger that cannot compute it is refused.
	other := natstest.RunServer(t)
	svc, err := ledger.NewService(natstest.Connect(t, other), nil, newFakeReader(1), ledger.ServiceConfig{DeferCommands: true})
	require.NoError(t, err)
	defer func() { _ = svc.Stop(context.Background()) }()
	client := client.NewClient(natstest.Connect(t, other), client.ClientOptions{})
	_, err = client.Status(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter"})
	require.ErrorIs(t, err, wire.ErrUnavailable, "the scheme is not known yet")
	require.ErrorIs(t, svc.ServeCommands(keyless), ledger.ErrNoTenantSecrets)
	require.NoError(t, svc.ServeCommands(keyed))
	_, err = client.Status(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err, "the scheme is the ledger's")

	// A stream of today's scheme (or none recorded) stays sha256-16, with
	// or without keys.
	require.NoError(t, js.DeleteStream(ctx, "KEYED"))
	plain, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{Name: "PLAIN"})
	require.NoError(t, err)
	sk, err = ledger.New(js, plain, ledger.Options{Keys: keys}).SubjectKeys()
	require.NoError(t, err)
	assert.Equal(t, events.SubjectKeySHA256, sk.Scheme())

	_, err = ledger.EnsureStream(ctx, js, ledger.StreamOptions{Name: "ODD", SubjectKeys: "md5"})
	var fe *events.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "subject_keys", fe.Field)
}

// On a stream of keyed subject keys the main flows of the service and the
// ledger work, reply with the id the caller sent, and store every event on
// its person's keyed subject (checked at the end by requireKeyedSubjects);
// the status says the subject key it looked the person up under.
func TestKeyedSubjectKeysMainFlows(t *testing.T) {
	st := startStack(t, stackOptions{subjectKeys: events.SubjectKeyHMAC, tips: true})
	ctx := stepCtx(t)
	secret, err := st.keys.TenantSecret(ctx, "acme")
	require.NoError(t, err)
	const alice = "Alice@Example.com"
	aliceKey := events.KeyedSubjectKey(secret, alice)
	cmd := events.Command{Tenant: "acme", SubjectID: alice, Purpose: "newsletter", Actor: "test", Evidence: []byte(`{"ip":"192.0.2.1"}`)}

	for _, kind := range []events.Kind{events.KindRequest, events.KindGrant, events.KindRevoke, events.KindGrant} {
		r, err := appendVia(ctx, st.client, kind, cmd)
		require.NoError(t, err, kind)
		assert.Equal(t, aliceKey, r.Event.SubjectKey)
		assert.Equal(t, "consent.events.acme.newsletter."+aliceKey, r.Event.Key().NATSSubject())
		assert.Equal(t, aliceKey, r.Status.SubjectKey)
	}
	other := cmd
	other.Purpose = "analytics"
	denied, err := st.client.Deny(ctx, other)
	require.NoError(t, err)

	q := wire.StatusQuery{Tenant: "acme", SubjectID: alice, Purpose: "newsletter", MinSeq: denied.Seq}
	status, err := st.client.Check(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, events.StateGranted, status.State)
	assert.Equal(t, alice, status.SubjectID, "the reply echoes the id sent")
	assert.Equal(t, aliceKey, status.SubjectKey)

	list, err := st.client.List(ctx, wire.ListQuery{Tenant: "acme", SubjectID: alice, MinSeq: denied.Seq})
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, s := range list {
		assert.Equal(t, alice, s.SubjectID)
		assert.Equal(t, aliceKey, s.SubjectKey)
	}
	assert.Equal(t, events.StateDenied, list[0].State)

	h, err := st.client.History(ctx, wire.HistoryQuery{Tenant: "acme", SubjectID: alice})
	require.NoError(t, err)
	require.Len(t, h.Events, 5)
	for _, r := range h.Events {
		assert.Equal(t, alice, r.Event.SubjectID)
	}
	h, err = st.client.History(ctx, wire.HistoryQuery{Tenant: "acme", SubjectID: alice, Purpose: "analytics"})
	require.NoError(t, err)
	require.Len(t, h.Events, 1)

	at, err := st.ledger.StatusAt(ctx, wire.StatusAtQuery{Tenant: "acme", SubjectID: alice, Purpose: "newsletter", At: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	assert.Equal(t, events.StateGranted, at.State)

	// Nothing of Alice's is found under her sha256-16 key.
	info, err := st.stream.Info(ctx, jetstream.WithSubjectFilter("consent.events.acme.*."+events.SubjectKey("acme", alice)))
	require.NoError(t, err)
	assert.Empty(t, info.State.Subjects)

	erased, err := st.ledger.Erase(ctx, wire.EraseRequest{Tenant: "acme", SubjectID: alice, Reason: "test"})
	require.NoError(t, err)
	assert.Len(t, erased.Erased, 2)
	assert.True(t, erased.KeyDestroyed)
	for _, r := range erased.Erased {
		assert.True(t, strings.HasSuffix(r.Event.Key().NATSSubject(), "."+aliceKey))
	}
	status, err = st.client.Status(ctx, wire.StatusQuery{Tenant: "acme", SubjectID: alice, Purpose: "newsletter", MinSeq: erased.Erased[1].Seq})
	require.NoError(t, err)
	assert.Equal(t, events.StateErased, status.State)

	again, err := st.client.Grant(ctx, cmd)
	require.NoError(t, err, "a new consent after the erasure")
	assert.Equal(t, aliceKey, again.Event.SubjectKey)
	assert.Empty(t, again.Event.PrevHash, "a fresh chain")
}

// appendVia sends a command of kind through the client.
func appendVia(ctx context.Context, c *client.Client, kind events.Kind, cmd events.Command) (wire.Reply, error) {
	switch kind {
	case events.KindRequest:
		return c.Request(ctx, cmd)
	case events.KindGrant:
		return c.Grant(ctx, cmd)
	case events.KindDeny:
		return c.Deny(ctx, cmd)
	}
	return c.Revoke(ctx, cmd)
}

// On a stream of keyed subject keys a Checker, which cannot compute a
// person's subject key, learns it from its first fill and then follows
// the stream: a revocation reaches the cached entry without asking the
// service again.
func TestCheckerSeesRevocationOnKeyedSubjects(t *testing.T) {
	st := startStack(t, stackOptions{subjectKeys: events.SubjectKeyHMAC})
	k := newChecker(t, st.client)
	cmd := events.Command{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "newsletter"}
	q := wire.StatusQuery{Tenant: "acme", SubjectID: cmd.SubjectID, Purpose: cmd.Purpose}
	secret, err := st.keys.TenantSecret(stepCtx(t), "acme")
	require.NoError(t, err)
	aliceKey := events.KeyedSubjectKey(secret, cmd.SubjectID)

	status, err := k.Check(stepCtx(t), q)
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	assert.Equal(t, events.StateNone, status.State)
	assert.Equal(t, aliceKey, status.SubjectKey, "learnt from the service")

	granted, err := st.client.Grant(stepCtx(t), cmd)
	require.NoError(t, err)
	require.NoError(t, k.WaitSeq(stepCtx(t), granted.Seq))
	allowed, err := k.Allowed(stepCtx(t), q)
	require.NoError(t, err)
	assert.True(t, allowed, "the grant reached the cached entry")
	revoked, err := st.client.Revoke(stepCtx(t), cmd)
	require.NoError(t, err)
	require.NoError(t, k.WaitSeq(stepCtx(t), revoked.Seq))
	status, err = k.Check(stepCtx(t), q)
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	assert.Equal(t, events.StateRevoked, status.State)
	assert.Equal(t, revoked.Seq, status.Seq)
	assert.Equal(t, "alice@example.com", status.SubjectID)
	assert.Equal(t, uint64(1), k.Stats().Fills, "answered from memory after the first fill")

	// Another purpose of the same person: its entry is made from the key
	// learnt, before the service is asked.
	other := cmd
	other.Purpose = "analytics"
	oq := q
	oq.Purpose = other.Purpose
	allowed, err = k.Allowed(stepCtx(t), oq)
	require.NoError(t, err)
	assert.False(t, allowed)
	granted, err = st.client.Grant(stepCtx(t), other)
	require.NoError(t, err)
	require.NoError(t, k.WaitSeq(stepCtx(t), granted.Seq))
	allowed, err = k.Allowed(stepCtx(t), oq)
	require.NoError(t, err)
	assert.True(t, allowed)
	assert.Equal(t, uint64(2), k.Stats().Fills)
}

// A Checker that learns a person's subject key from a fill makes the
// entry only then: an event of the consent the stream brought before,
// which the answer does not reflect (its index_seq is older), found no
// entry. The Checker asks again with min_seq at what it has applied, and
// caches that answer, not the stale one.
func TestCheckerAsksAgainWhenTheStreamPassedTheFill(t *testing.T) {
	st := startStack(t, stackOptions{subjectKeys: events.SubjectKeyHMAC, deferLookups: true})
	k := newChecker(t, st.client)
	cmd := events.Command{SubjectID: "alice", Purpose: "newsletter"}
	q := wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter"}

	// A status endpoint of the test's: the first answer is the state
	// before a grant the Checker then applies; the second is asked for
	// at least the grant's seq.
	type asked struct {
		q  wire.StatusQuery
		ch chan events.Status
	}
	requests := make(chan asked)
	sub, err := st.nc.Subscribe(wire.SubjectStatus, func(m *nats.Msg) {
		var sq wire.StatusQuery
		if json.Unmarshal(m.Data, &sq) != nil {
			return
		}
		a := asked{q: sq, ch: make(chan events.Status, 1)}
		requests <- a
		body, _ := json.Marshal(<-a.ch)
		_ = m.Respond(body)
	})
	require.NoError(t, err)
	defer func() { _ = sub.Unsubscribe() }()

	type result struct {
		allowed bool
		err     error
	}
	done := make(chan result, 1)
	go func() {
		allowed, err := k.Allowed(context.Background(), q)
		done <- result{allowed, err}
	}()
	first := receive(t, requests)
	granted, err := st.client.Grant(stepCtx(t), cmd)
	require.NoError(t, err)
	require.NoError(t, k.WaitSeq(stepCtx(t), granted.Seq))
	token := granted.Event.SubjectKey
	first.ch <- events.Status{Tenant: "default", SubjectID: "alice", Purpose: "newsletter", State: events.StateNone,
		IndexSeq: granted.Seq - 1, SubjectKey: token}

	second := receive(t, requests)
	assert.GreaterOrEqual(t, second.q.MinSeq, granted.Seq, "asked again for what the Checker applied")
	at := *granted.Status.UpdatedAt
	second.ch <- events.Status{Tenant: "default", SubjectID: "alice", Purpose: "newsletter", State: events.StateGranted,
		Allowed: true, PolicyVersion: 1, UpdatedAt: &at, Seq: granted.Seq, EventID: granted.Event.ID, IndexSeq: second.q.MinSeq, SubjectKey: token}
	r := receive(t, done)
	require.NoError(t, r.err)
	assert.True(t, r.allowed)
	allowed, err := k.Allowed(stepCtx(t), q)
	require.NoError(t, err)
	assert.True(t, allowed, "the second answer is cached")
	assert.Equal(t, uint64(1), k.Stats().Fills)
}

// testSecrets gives every tenant the test secret of docs/hashing.md (the
// bytes 0 to 31), and fails for tenant "down".
type testSecrets struct{}

func (testSecrets) TenantSecret(_ context.Context, tenant string) ([]byte, error) {
	if tenant == "down" {
		return nil, errors.New("key store down")
	}
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i)
	}
	return secret, nil
}

// SubjectKeys computes each scheme's keys as the events package does
// (the vectors of docs/hashing.md), also from many goroutines at once,
// and passes on the key store's error.
func TestSubjectKeysComputeTheSchemes(t *testing.T) {
	ctx := stepCtx(t)
	_, err := ledger.NewSubjectKeys(events.SubjectKeyHMAC, nil)
	require.ErrorIs(t, err, ledger.ErrNoTenantSecrets)
	_, err = ledger.NewSubjectKeys("md5", testSecrets{})
	require.ErrorContains(t, err, `unknown subject key scheme "md5"`)

	sha, err := ledger.NewSubjectKeys(events.SubjectKeySHA256, nil)
	require.NoError(t, err)
	token, err := sha.Token(ctx, "default", "alice@example.com")
	require.NoError(t, err)
	assert.Equal(t, "dab6caca511cd6a9f2dee90c3f74677b", token)
	k, err := sha.Resolve(ctx, events.Key{Tenant: "default", SubjectID: "alice@example.com", Purpose: "p"})
	require.NoError(t, err)
	assert.Empty(t, k.SubjectKey, "sha256-16 keys stay as Token computes them")

	keyed, err := ledger.NewSubjectKeys(events.SubjectKeyHMAC, testSecrets{})
	require.NoError(t, err)
	k, err = keyed.Resolve(ctx, events.Key{Tenant: "default", SubjectID: "alice@example.com", Purpose: "marketing_email"})
	require.NoError(t, err)
	assert.Equal(t, "consent.events.default.marketing_email.a59fc578d4cb46faab1d6eb348e7c74b", k.NATSSubject())
	secret, err := testSecrets{}.TenantSecret(ctx, "default")
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("person-%d-%d@example.com", g, i)
				got, err := keyed.Token(ctx, "default", id)
				assert.NoError(t, err)
				assert.Equal(t, events.KeyedSubjectKey(secret, id), got)
			}
		})
	}
	wg.Wait()
	_, err = keyed.Token(ctx, "down", "alice")
	require.ErrorContains(t, err, "key store down")
}
