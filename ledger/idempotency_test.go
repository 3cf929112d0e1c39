package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireSameReply checks that again repeats first as a duplicate.
func requireSameReply(t *testing.T, first, again wire.Reply) {
	t.Helper()
	require.True(t, again.Duplicate, "a repeated key is a duplicate")
	assert.False(t, first.Duplicate)
	assert.Equal(t, first.Seq, again.Seq)
	require.NotNil(t, again.Event)
	assert.Equal(t, first.Event.ID, again.Event.ID)
	assert.Equal(t, first.Event.Hash, again.Event.Hash)
	assert.Equal(t, first.Status.State, again.Status.State)
	assert.Equal(t, first.Status.Seq, again.Status.Seq)
	assert.Equal(t, first.Status.EventID, again.Status.EventID)
}

func TestIdempotencyKeyRepeated(t *testing.T) {
	l, stream, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	ctx := context.Background()

	t.Run("same command twice", func(t *testing.T) {
		cmd := events.Command{SubjectID: "a", Purpose: "p", IdempotencyKey: "grant-a-1"}
		first, err := l.Append(ctx, events.KindGrant, cmd)
		require.NoError(t, err)
		again, err := l.Append(ctx, events.KindGrant, cmd)
		require.NoError(t, err)
		requireSameReply(t, first, again)
		natsSubject := natsSubjectOf(t, l, cmd.Key())
		stored := readStored(t, stream, natsSubject)
		require.Len(t, stored, 1)
		assert.Equal(t, events.IdempotencyMsgID(natsSubject, "grant-a-1"), stored[0].Header.Get(events.HeaderMsgID),
			"Nats-Msg-Id is derived from the consent's subject and the key")
	})
	t.Run("a repeat that the table would now forbid", func(t *testing.T) {
		_, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "b", Purpose: "p"})
		require.NoError(t, err)
		revoke := events.Command{SubjectID: "b", Purpose: "p", IdempotencyKey: "revoke-b"}
		first, err := l.Append(ctx, events.KindRevoke, revoke)
		require.NoError(t, err)
		again, err := l.Append(ctx, events.KindRevoke, revoke)
		require.NoError(t, err, "revoking a revoked consent is forbidden, but this is the same command")
		requireSameReply(t, first, again)
	})
	t.Run("a repeat whose expected_seq is now stale", func(t *testing.T) {
		cmd := events.Command{SubjectID: "c", Purpose: "p", IdempotencyKey: "grant-c", ExpectedSeq: ptr(uint64(0))}
		first, err := l.Append(ctx, events.KindGrant, cmd)
		require.NoError(t, err)
		again, err := l.Append(ctx, events.KindGrant, cmd)
		require.NoError(t, err)
		requireSameReply(t, first, again)
	})
	t.Run("an earlier event's key, with events after it", func(t *testing.T) {
		cmd := events.Command{SubjectID: "d", Purpose: "p", IdempotencyKey: "grant-d"}
		first, err := l.Append(ctx, events.KindGrant, cmd)
		require.NoError(t, err)
		_, err = l.Append(ctx, events.KindRevoke, events.Command{SubjectID: "d", Purpose: "p"})
		require.NoError(t, err)
		again, err := l.Append(ctx, events.KindGrant, cmd)
		require.NoError(t, err)
		requireSameReply(t, first, again)
		assert.Len(t, readStored(t, stream, natsSubjectOf(t, l, cmd.Key())), 2)
	})
}

// Inside the duplicate window too, a key is scoped to tenant and consent:
// globex reusing acme's key, or acme reusing it for another person, stores
// a new event, and no reply carries another consent's event.
func TestIdempotencyKeyOnAnotherConsentInsideWindow(t *testing.T) {
	l, stream, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	ctx := context.Background()
	acme := events.Command{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "p", IdempotencyKey: "k"}
	first, err := l.Append(ctx, events.KindGrant, acme)
	require.NoError(t, err)
	for _, other := range []events.Command{
		{Tenant: "globex", SubjectID: "bob@example.com", Purpose: "p", IdempotencyKey: "k"},
		{Tenant: "globex", SubjectID: "alice@example.com", Purpose: "p", IdempotencyKey: "k"},
		{Tenant: "acme", SubjectID: "bob@example.com", Purpose: "p", IdempotencyKey: "k"},
		{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "q", IdempotencyKey: "k"},
	} {
		r, err := l.Append(ctx, events.KindGrant, other)
		require.NoError(t, err)
		assert.False(t, r.Duplicate, "%+v is another consent", other.Key())
		assert.NotEqual(t, first.Seq, r.Seq)
		assert.Equal(t, resolvedKeyOf(t, l, other.Key()), r.Event.Key(), "the reply holds this consent's event")
	}
	assert.Equal(t, uint64(5), storedCount(t, stream))
	again, err := l.Append(ctx, events.KindGrant, acme)
	require.NoError(t, err)
	requireSameReply(t, first, again)
	assert.Equal(t, uint64(5), storedCount(t, stream))
}

// An event stored by an earlier version of the ledger carries the caller's
// key itself as its Nats-Msg-Id; a repeat still finds it in the consent's
// history.
func TestIdempotencyKeyStoredRaw(t *testing.T) {
	// An earlier version of the ledger made streams of sha256-16 subject keys.
	l, stream, js := startLedger(t, ledger.StreamOptions{SubjectKeys: events.SubjectKeySHA256}, ledger.Options{})
	ctx := context.Background()
	key := events.Key{Tenant: "default", SubjectID: "a", Purpose: "p"}
	ev, err := events.Decide(events.NewConsent(key), events.KindGrant, events.Command{SubjectID: "a", Purpose: "p"}, time.Now())
	require.NoError(t, err)
	ev.ID = "01a21452-e305-707f-afdf-620574134eb2"
	payload, err := ev.Seal()
	require.NoError(t, err)
	_, err = js.PublishMsg(ctx, &nats.Msg{Subject: key.NATSSubject(), Data: payload, Header: nats.Header{
		events.HeaderEventType: []string{string(ev.Type)},
		events.HeaderMsgID:     []string{"legacy-key"},
	}})
	require.NoError(t, err)
	again, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "a", Purpose: "p", IdempotencyKey: "legacy-key"})
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, ev.ID, again.Event.ID)
	assert.Equal(t, uint64(1), storedCount(t, stream))
}

// TestIdempotencyKeyBeyondWindow repeats a key after the stream's duplicate
// window (100ms, the minimum) has dropped it: the ledger finds it in the
// consent's history. Beyond the window keys are scoped to one consent.
func TestIdempotencyKeyBeyondWindow(t *testing.T) {
	l, stream, js := startLedger(t, ledger.StreamOptions{Duplicates: 100 * time.Millisecond}, ledger.Options{})
	ctx := context.Background()
	cmd := events.Command{SubjectID: "a", Purpose: "p", IdempotencyKey: "grant-a"}
	first, err := l.Append(ctx, events.KindGrant, cmd)
	require.NoError(t, err)
	_, err = l.Append(ctx, events.KindRevoke, events.Command{SubjectID: "a", Purpose: "p"})
	require.NoError(t, err)

	natsSubject := natsSubjectOf(t, l, cmd.Key())
	waitDuplicateWindowPassed(t, js, stream, natsSubject, events.IdempotencyMsgID(natsSubject, cmd.IdempotencyKey))
	require.Equal(t, uint64(2), storedCount(t, stream), "the probe stored nothing")

	again, err := l.Append(ctx, events.KindGrant, cmd)
	require.NoError(t, err)
	requireSameReply(t, first, again)
	assert.Equal(t, uint64(2), storedCount(t, stream))

	other, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "b", Purpose: "p", IdempotencyKey: "grant-a"})
	require.NoError(t, err)
	assert.False(t, other.Duplicate, "beyond the window a key is scoped to one consent")
	assert.Equal(t, "b", other.Event.SubjectID)
	assert.Equal(t, uint64(3), storedCount(t, stream))
}

// errCodeWrongLastMsgID is JetStream's error for a failed
// Nats-Expected-Last-Msg-Id check (nats.go has no constant for it).
const errCodeWrongLastMsgID jetstream.ErrorCode = 10070

// waitDuplicateWindowPassed waits until the stream no longer remembers
// msgID. It probes with a publish carrying msgID, the subject's true last
// sequence and an expected last msg id that never matches: the server
// checks for duplicates between those two checks, so the probe is answered
// "duplicate" while msgID is in the window and fails the last msg id check
// once it is not, storing nothing either way.
func waitDuplicateWindowPassed(t *testing.T, js jetstream.JetStream, stream jetstream.Stream, natsSubject, msgID string) {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		last, err := stream.GetLastMsgForSubject(ctx, natsSubject)
		require.NoError(t, err)
		ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: natsSubject, Data: []byte("probe")},
			jetstream.WithMsgID(msgID),
			jetstream.WithExpectLastSequencePerSubject(last.Sequence),
			jetstream.WithExpectLastMsgID("never-a-msg-id"))
		if err == nil {
			require.True(t, ack.Duplicate, "the probe must never be stored")
			return false
		}
		var apiErr *jetstream.APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, errCodeWrongLastMsgID, apiErr.ErrorCode, "unexpected probe error: %v", err)
		return true
	}, 5*time.Second, 10*time.Millisecond)
}

// The publish landed but its ack was lost: the ledger sends it again,
// finds it stored and answers with it; the caller sending the command
// again with the same key gets the same event as a duplicate.
func TestIdempotencyKeyAfterLostAck(t *testing.T) {
	_, stream, js := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	var firstAck *jetstream.PubAck
	faulty := &faultyJetStream{JetStream: js}
	faulty.publishF = func(call int, ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
		ack, err := js.PublishMsg(ctx, m, opts...)
		if call == 1 {
			firstAck = ack
			return nil, nats.ErrTimeout
		}
		return ack, err
	}
	l := ledger.New(faulty, stream, ledger.Options{Keys: keysOf(stream)})
	ctx := context.Background()
	cmd := events.Command{SubjectID: "a", Purpose: "p", IdempotencyKey: "grant-a"}

	first, err := l.Append(ctx, events.KindGrant, cmd)
	require.NoError(t, err, "the ledger sends an unanswered publish again and finds it stored")
	require.NotNil(t, firstAck, "the first publish landed")
	assert.False(t, first.Duplicate, "its own first attempt is not a duplicate")
	assert.Equal(t, firstAck.Sequence, first.Seq)

	again, err := l.Append(ctx, events.KindGrant, cmd)
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, firstAck.Sequence, again.Seq)
	assert.Equal(t, first.Event.ID, again.Event.ID)
	assert.Equal(t, uint64(1), storedCount(t, stream))
	assert.Equal(t, 2, faulty.Calls(), "one publish sent again; the repeat is answered from the history, not published")
}

// On a one-replica stream a publish retried after its ack was lost meets
// its own earlier write as a wrong-last-sequence conflict (the server checks
// the expected sequence before duplicates). Append must see its key in the
// history and answer with the stored event.
func TestIdempotencyKeyMeetsOwnWriteAsConflict(t *testing.T) {
	_, stream, js := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	faulty := &faultyJetStream{JetStream: js}
	faulty.publishF = func(call int, ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
		ack, err := js.PublishMsg(ctx, m, opts...)
		if call > 1 || err != nil {
			return ack, err
		}
		// Publish again, as a transport retry would: the server refuses.
		_, err = js.PublishMsg(ctx, m, opts...)
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
			return nil, errors.New("expected the retried publish to conflict with its own write")
		}
		return nil, err
	}
	l := ledger.New(faulty, stream, ledger.Options{Keys: keysOf(stream)})
	r, err := l.Append(context.Background(), events.KindGrant, events.Command{SubjectID: "a", Purpose: "p", IdempotencyKey: "grant-a"})
	require.NoError(t, err)
	assert.True(t, r.Duplicate)
	assert.Equal(t, uint64(1), r.Seq)
	assert.Equal(t, events.StateGranted, r.Status.State)
	assert.Equal(t, uint64(1), storedCount(t, stream))
}

// A repeated idempotency key of a sealed consent answers, as the first
// reply did, with a status naming the person the caller named (the stored
// event names them by subject key only).
func TestIdempotencyKeyRepeatedOnSealedEvents(t *testing.T) {
	st := startStack(t, stackOptions{subjectKeys: events.SubjectKeyHMAC})
	ctx := stepCtx(t)
	cmd := events.Command{SubjectID: "zoë@example.com", Purpose: "newsletter", IdempotencyKey: "signup-1"}
	first, err := st.client.Grant(ctx, cmd)
	require.NoError(t, err)
	require.Equal(t, events.SchemaVersion, first.Event.V, "sealed")
	again, err := st.client.Grant(ctx, cmd)
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, first.Seq, again.Seq)
	assert.Equal(t, cmd.SubjectID, again.Status.SubjectID, "the status names the person the caller named")
	assert.Equal(t, first.Status.SubjectID, again.Status.SubjectID)
	assert.Equal(t, first.Status.State, again.Status.State)
}
