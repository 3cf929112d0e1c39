package ledger_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/keystore"
	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// manualClock is a ledger clock that moves only when told.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newManualClock(t time.Time) *manualClock { return &manualClock{t: t} }

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startLedger starts an embedded server, ensures the stream and returns a
// ledger over it.
func startLedger(t testing.TB, sopts ledger.StreamOptions, opts ledger.Options) (*ledger.Ledger, jetstream.Stream, jetstream.JetStream) {
	t.Helper()
	return startLedgerOn(t, ledger.OneNode, sopts, opts)
}

// startLedgerOn is startLedger on the servers of top, the stream with its
// replicas (sopts.Replicas is ignored). The stream it returns is for the
// test's reads: on a replicated stream its gets are the leader's
// (ledger.LeaderReads), and a ledger under test must not be given it.
func startLedgerOn(t testing.TB, top ledger.Topology, sopts ledger.StreamOptions, opts ledger.Options) (*ledger.Ledger, jetstream.Stream, jetstream.JetStream) {
	t.Helper()
	js := top.JetStream(t)
	if sopts.SubjectKeys == "" && opts.Keys == nil {
		sopts.SubjectKeys = events.SubjectKeyScheme(*testSubjectKeys)
	}
	stream := top.EnsureStream(t, js, sopts)
	reads := ledger.LeaderReads(t, js, stream)
	if ledger.StreamSubjectKeyScheme(stream.CachedInfo().Config) == events.SubjectKeyHMAC && opts.Keys == nil {
		// The key bucket has the stream's replicas, as consentd makes it.
		keys, err := keystore.Open(stepCtx(t), js, keystore.Config{KEK: newKEK(t), Replicas: top.Replicas})
		require.NoError(t, err)
		opts.Keys = keys
		streamKeys.Store(reads, keys)
		t.Cleanup(func() {
			streamKeys.Delete(reads)
			requireKeyedSubjects(t, reads, keys)
		})
	}
	return ledger.New(js, stream, opts), reads, js
}

// streamKeys holds the key store startLedgerOn gave the ledger of each
// stream of keyed subject keys it made, by the stream it returned.
var streamKeys sync.Map // jetstream.Stream -> *keystore.Store

// keysOf returns, as Options.Keys, the key store startLedgerOn gave the
// ledger of stream (the stream it returned): another ledger on a stream of
// keyed subject keys needs it to compute them (a store under another KEK
// cannot read the tenant secrets). Nil when it gave none.
func keysOf(stream jetstream.Stream) ledger.Keys {
	if keys, ok := streamKeys.Load(stream); ok {
		return keys.(ledger.Keys)
	}
	return nil
}

// natsSubjectOf returns the NATS subject l stores the consent k on, by the
// subject key scheme of l's stream (keyed under the tenant's secret with
// -subject-keys=hmac-sha256-16).
func natsSubjectOf(t testing.TB, l *ledger.Ledger, k events.Key) string {
	t.Helper()
	return resolvedKeyOf(t, l, k).NATSSubject()
}

// resolvedKeyOf returns k as l resolves it (ledger.SubjectKeys.Resolve):
// with the subject key of l's stream's scheme set when it is keyed, as
// the events l stores carry it.
func resolvedKeyOf(t testing.TB, l *ledger.Ledger, k events.Key) events.Key {
	t.Helper()
	sk, err := l.SubjectKeys()
	require.NoError(t, err)
	k, err = sk.Resolve(stepCtx(t), k)
	require.NoError(t, err)
	return k
}

// subjectKeyOf returns the subject key l gives the person subjectID of
// tenant, by the scheme of l's stream (the token of the person's NATS
// subjects, the key of the person's data keys and holds).
func subjectKeyOf(t testing.TB, l *ledger.Ledger, tenant, subjectID string) string {
	t.Helper()
	sk, err := l.SubjectKeys()
	require.NoError(t, err)
	token, err := sk.Token(stepCtx(t), tenant, subjectID)
	require.NoError(t, err)
	return token
}

// storedCount returns how many messages the stream holds.
func storedCount(t testing.TB, stream jetstream.Stream) uint64 {
	t.Helper()
	info, err := stream.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

// storedEvent is one event as the stream holds it.
type storedEvent struct {
	Seq    uint64
	Header nats.Header
	Data   []byte
	Event  *events.Event
}

// readStored reads every message on natsSubject one by one (a read path
// independent of the ledger's batched reads), oldest first.
func readStored(t testing.TB, stream jetstream.Stream, natsSubject string) []storedEvent {
	t.Helper()
	ctx := context.Background()
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	var out []storedEvent
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		require.NoError(t, err)
		if msg.Subject != natsSubject {
			continue
		}
		ev, err := events.Decode(msg.Data)
		require.NoError(t, err, "seq %d", seq)
		out = append(out, storedEvent{Seq: seq, Header: msg.Header, Data: msg.Data, Event: ev})
	}
	return out
}

// requireLinearChain checks that the stored history of one consent is a
// single hash chain: every event's hash verifies, the first has an empty
// prev_hash and each later one links to the hash of the one before. It
// returns the history.
func requireLinearChain(t testing.TB, stream jetstream.Stream, natsSubject string) []storedEvent {
	t.Helper()
	history := readStored(t, stream, natsSubject)
	prev := ""
	for i, s := range history {
		require.NoError(t, events.VerifyHash(s.Data, s.Event), "event %d (seq %d)", i, s.Seq)
		require.Equal(t, prev, s.Event.PrevHash, "event %d (seq %d) does not link to the one before", i, s.Seq)
		require.Equal(t, string(s.Event.Type), s.Header.Get(events.HeaderEventType), "seq %d", s.Seq)
		prev = s.Event.Hash
	}
	return history
}

// openStored fills in the personal fields of a sealed stored event with
// its data key from keys, so that it compares with the event a reply or
// history carries; an event stored in the clear is left as it is. keys is
// the ledger's Options.Keys (nil without).
func openStored(t testing.TB, keys ledger.Keys, ev *events.Event) {
	t.Helper()
	if !ev.IsSealed() {
		return
	}
	require.NotNil(t, keys, "event %s is sealed, and there is no key store", ev.ID)
	key, err := keys.KeyByID(stepCtx(t), ev.Tenant, ev.SubjectKey, ev.KeyID)
	require.NoError(t, err)
	require.NoError(t, ev.Open(events.DataKey{ID: ev.KeyID, Key: key}))
}

// faultyJetStream is a JetStream whose PublishMsg a test controls; every
// other call goes to the real one.
type faultyJetStream struct {
	jetstream.JetStream
	mu       sync.Mutex
	calls    int
	publishF func(call int, ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

func (f *faultyJetStream) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.mu.Unlock()
	return f.publishF(call, ctx, m, opts...)
}

func (f *faultyJetStream) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func ptr[T any](v T) *T { return &v }
