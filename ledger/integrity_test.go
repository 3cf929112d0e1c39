package ledger_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// badMessages are three ways a message stored on a consent's subject fails
// the integrity checks, made from the consent's grant.
var badMessages = []struct {
	check string
	make  func(t *testing.T, granted *events.Event) (eventType string, payload []byte)
}{
	{events.CheckDecode, func(*testing.T, *events.Event) (string, []byte) { return "", []byte(`{"v":2}`) }},
	{events.CheckHash, func(t *testing.T, granted *events.Event) (string, []byte) {
		ev := *granted
		ev.ID, ev.PrevHash, ev.PolicyVersion = uuid.NewString(), granted.Hash, 5
		payload, err := ev.Seal() // as stored: its personal fields sealed when the grant's are
		require.NoError(t, err)
		return string(ev.Type), bytes.Replace(payload, []byte(`"hash":"`+ev.Hash), []byte(`"hash":"`+granted.Hash), 1) // the hash is the grant's
	}},
	{events.CheckLink, func(t *testing.T, granted *events.Event) (string, []byte) {
		ev := *granted
		ev.ID, ev.PrevHash = uuid.NewString(), strings.Repeat("0", 64)
		payload, err := ev.Seal()
		require.NoError(t, err)
		return string(ev.Type), payload
	}},
}

// publishBad stores a message on subject straight onto the stream, as
// something other than the ledger could, and returns its sequence.
func publishBad(t *testing.T, js jetstream.JetStream, subject, eventType string, payload []byte) uint64 {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = payload
	if eventType != "" {
		msg.Header.Set(events.HeaderEventType, eventType)
	}
	ack, err := js.PublishMsg(stepCtx(t), msg)
	require.NoError(t, err)
	return ack.Sequence
}

// TestIntegrityViolationFailsClosed: after a message on a granted
// consent's subject fails decoding, its hash or its link, check says
// integrity_violation (403, naming the seq), never the last good
// "granted"; a revoke or deny is refused with 409 naming the seq (by the
// index's mark and by a read of the stream alike), so no "no" is
// acknowledged while check says allowed. A quarantine gets the consent
// past it: it resumes "granted", and the revoke then lands, linked to the
// quarantine.
func TestIntegrityViolationFailsClosed(t *testing.T) {
	for _, bad := range badMessages {
		t.Run(bad.check, func(t *testing.T) {
			st := startStack(t, stackOptions{tips: true})
			ctx := stepCtx(t)
			cmd := events.Command{SubjectID: "alice@example.com", Purpose: "marketing_email"}
			granted, err := st.client.Grant(ctx, cmd)
			require.NoError(t, err)
			eventType, payload := bad.make(t, granted.Event)
			badSeq := publishBad(t, st.js, granted.Event.Key().NATSSubject(), eventType, payload)
			naming := fmt.Sprintf("seq %d", badSeq)

			q := wire.StatusQuery{SubjectID: cmd.SubjectID, Purpose: cmd.Purpose, MinSeq: badSeq}
			_, err = st.client.Check(ctx, q)
			require.ErrorIs(t, err, wire.ErrConsentRequired)
			var we *wire.Error
			require.ErrorAs(t, err, &we)
			assert.Contains(t, we.Description, "consent required: integrity_violation at "+naming)
			require.NotNil(t, we.Status)
			assert.Equal(t, events.StateIntegrityViolation, we.Status.State)
			assert.False(t, we.Status.Allowed)
			assert.Equal(t, badSeq, we.Status.ViolationSeq)
			assert.Equal(t, granted.Seq, we.Status.Seq, "the rest is the last good state")
			status, err := st.client.Status(ctx, q)
			require.NoError(t, err)
			assert.Equal(t, events.StateIntegrityViolation, status.State)

			for kind, send := range map[events.Kind]func(context.Context, events.Command) (wire.Reply, error){
				events.KindRevoke: st.client.Revoke, events.KindDeny: st.client.Deny, events.KindGrant: st.client.Grant,
			} {
				_, err := send(ctx, cmd)
				require.ErrorIs(t, err, wire.ErrConflict, "%s", kind)
				assert.Contains(t, err.Error(), "integrity violation at "+naming, "%s", kind)
			}
			// A ledger that reads the stream applies the same rule: the
			// whole history with an idempotency key; the last message alone
			// (which shows no broken link) without one.
			plain := ledger.New(st.js, st.stream, ledger.Options{Keys: st.keysOrNil()})
			keyed := cmd
			keyed.IdempotencyKey = "withdrawal-1"
			_, err = plain.Append(ctx, events.KindRevoke, keyed)
			var ie *ledger.IntegrityError
			require.ErrorAs(t, err, &ie)
			assert.Equal(t, badSeq, ie.Seq)
			if bad.check != events.CheckLink {
				_, err = plain.Append(ctx, events.KindRevoke, cmd)
				require.ErrorAs(t, err, &ie)
				assert.Equal(t, badSeq, ie.Seq)
				assert.Equal(t, bad.check, ie.Check)
			}
			info, err := st.stream.Info(ctx)
			require.NoError(t, err)
			assert.Equal(t, badSeq, info.State.LastSeq, "nothing was written after it")

			quarantined, err := st.client.Quarantine(ctx, events.Quarantine{Seq: badSeq, Reason: "published by a test", Actor: "ops"})
			require.NoError(t, err)
			assert.Equal(t, events.TypeQuarantined, quarantined.Event.Type)
			assert.Equal(t, badSeq, quarantined.Event.QuarantinedSeq)
			assert.Equal(t, granted.Event.Hash, quarantined.Event.PrevHash, "it links to the last good event")
			assert.Equal(t, events.StateGranted, quarantined.Status.State)
			q.MinSeq = quarantined.Seq
			allowed, err := st.client.Check(ctx, q)
			require.NoError(t, err, "the consent resumes its last good state")
			assert.Zero(t, allowed.ViolationSeq)

			revoked, err := st.client.Revoke(ctx, cmd)
			require.NoError(t, err)
			assert.Equal(t, quarantined.Event.Hash, revoked.Event.PrevHash)
			q.MinSeq = revoked.Seq
			_, err = st.client.Check(ctx, q)
			require.ErrorIs(t, err, wire.ErrConsentRequired)
			require.ErrorAs(t, err, &we)
			assert.Equal(t, events.StateRevoked, we.Status.State)

			_, err = st.client.Quarantine(ctx, events.Quarantine{Seq: badSeq, Reason: "again", Actor: "ops"})
			require.ErrorIs(t, err, wire.ErrBadRequest, "quarantined already")
		})
	}
}

// TestQuarantineRefuses: a quarantine must name an unquarantined
// violation of a consent, in the caller's tenant; a consent with no
// readable event must be named.
func TestQuarantineRefuses(t *testing.T) {
	st := startStack(t, stackOptions{tips: true})
	ctx := stepCtx(t)
	cmd := events.Command{Tenant: "acme", SubjectID: "bob", Purpose: "analytics"}
	granted, err := st.client.Grant(ctx, cmd)
	require.NoError(t, err)
	stray := publishBad(t, st.js, "consent.events.x.y.z", "", []byte(`{"v":2}`))
	nobody := events.Key{Tenant: "acme", SubjectID: "nobody", Purpose: "analytics"}
	garbage := publishBad(t, st.js, st.natsSubject(t, nobody), "", []byte(`garbage`))

	for name, tt := range map[string]struct {
		q     events.Quarantine
		field string
	}{
		"no reason":        {events.Quarantine{Seq: garbage, Actor: "ops"}, "reason"},
		"no such seq":      {events.Quarantine{Seq: 999, Reason: "r", Actor: "ops"}, "seq"},
		"a good event":     {events.Quarantine{Seq: granted.Seq, Reason: "r", Actor: "ops"}, "seq"},
		"names no consent": {events.Quarantine{Seq: stray, Reason: "r", Actor: "ops"}, "seq"},
		"another tenant":   {events.Quarantine{Tenant: "globex", Seq: garbage, Reason: "r", Actor: "ops"}, "tenant"},
		"consent unnamed":  {events.Quarantine{Seq: garbage, Reason: "r", Actor: "ops"}, "subject"},
		"another consent":  {events.Quarantine{Seq: garbage, Reason: "r", Actor: "ops", SubjectID: "bob", Purpose: "analytics"}, "subject"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := st.client.Quarantine(ctx, tt.q)
			require.ErrorIs(t, err, wire.ErrBadRequest)
			assert.True(t, strings.HasPrefix(err.(*wire.Error).Description, tt.field+":"), "%v", err)
		})
	}
	named, err := st.client.Quarantine(ctx, events.Quarantine{Seq: garbage, Reason: "r", Actor: "ops", SubjectID: "nobody", Purpose: "analytics"})
	require.NoError(t, err)
	assert.Equal(t, events.StateNone, named.Status.State)
	assert.Equal(t, "", named.Event.PrevHash)
	_, err = st.client.Grant(ctx, events.Command{Tenant: "acme", SubjectID: "nobody", Purpose: "analytics"})
	require.NoError(t, err)
}

// TestCheckerFailsClosedOnABadMessage: a Checker that cached "allowed"
// stops saying so once a message that fails a check reaches it through
// the stream, and follows the service again after a quarantine.
func TestCheckerFailsClosedOnABadMessage(t *testing.T) {
	for _, bad := range badMessages {
		t.Run(bad.check, func(t *testing.T) {
			st := startStack(t, stackOptions{tips: true})
			k := newChecker(t, st.client)
			ctx := stepCtx(t)
			cmd := events.Command{SubjectID: "alice", Purpose: "newsletter"}
			q := wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter"}
			_, err := k.Check(ctx, q) // cached: none
			require.ErrorIs(t, err, wire.ErrConsentRequired)
			granted, err := st.client.Grant(ctx, cmd)
			require.NoError(t, err)
			require.NoError(t, k.WaitSeq(ctx, granted.Seq))
			allowed, err := k.Allowed(ctx, q)
			require.NoError(t, err)
			require.True(t, allowed)

			eventType, payload := bad.make(t, granted.Event)
			badSeq := publishBad(t, st.js, granted.Event.Key().NATSSubject(), eventType, payload)
			require.NoError(t, k.WaitSeq(ctx, badSeq))
			allowed, err = k.Allowed(ctx, q)
			require.NoError(t, err)
			assert.False(t, allowed)
			status, err := k.Check(ctx, q)
			require.ErrorIs(t, err, wire.ErrConsentRequired)
			assert.Equal(t, events.StateIntegrityViolation, status.State)
			assert.Equal(t, badSeq, status.ViolationSeq)

			quarantined, err := st.client.Quarantine(ctx, events.Quarantine{Seq: badSeq, Reason: "test", Actor: "ops"})
			require.NoError(t, err)
			require.NoError(t, k.WaitSeq(ctx, quarantined.Seq))
			status, err = k.Check(ctx, q)
			require.NoError(t, err, "filled again from the service")
			assert.Equal(t, quarantined.Seq, status.Seq)
		})
	}
}

// TestWatchReportsAMessageThatFailsTheChecks: a watcher does not pass a
// tampered event on as a change with its (allowed) status: it reports the
// message as unreadable, naming the check.
func TestWatchReportsAMessageThatFailsTheChecks(t *testing.T) {
	st := startStack(t, stackOptions{})
	w := watch(t, st.client, client.WatchOptions{Purposes: []string{"newsletter"}})
	granted, err := st.client.Grant(stepCtx(t), events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	assert.Equal(t, granted.Seq, next(t, w).Seq)
	eventType, payload := badMessages[1].make(t, granted.Event) // the hash check
	bad := publishBad(t, st.js, granted.Event.Key().NATSSubject(), eventType, payload)
	ch, err := w.Next(stepCtx(t))
	require.NoError(t, err)
	assert.Equal(t, bad, ch.Seq)
	require.ErrorIs(t, ch.Err, wire.ErrUnreadableEvent)
	assert.Contains(t, ch.Err.Error(), "hash check")
	assert.Nil(t, ch.Event)
}

// TestQuarantineOneOfTwo: a consent with two bad messages stays marked
// until both are quarantined, and the first quarantine's reply says so.
func TestQuarantineOneOfTwo(t *testing.T) {
	st := startStack(t, stackOptions{tips: true})
	ctx := stepCtx(t)
	cmd := events.Command{SubjectID: "carol", Purpose: "newsletter"}
	granted, err := st.client.Grant(ctx, cmd)
	require.NoError(t, err)
	first := publishBad(t, st.js, granted.Event.Key().NATSSubject(), "", []byte(`{"v":2}`))
	second := publishBad(t, st.js, granted.Event.Key().NATSSubject(), "", []byte(`not json`))

	one, err := st.client.Quarantine(ctx, events.Quarantine{Seq: second, Reason: "r", Actor: "ops"})
	require.NoError(t, err)
	assert.Equal(t, events.StateIntegrityViolation, one.Status.State)
	assert.Equal(t, first, one.Status.ViolationSeq)
	q := wire.StatusQuery{SubjectID: cmd.SubjectID, Purpose: cmd.Purpose, MinSeq: one.Seq}
	st1, err := st.client.Status(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, first, st1.ViolationSeq)
	_, err = st.client.Revoke(ctx, cmd)
	require.ErrorIs(t, err, wire.ErrConflict)

	two, err := st.client.Quarantine(ctx, events.Quarantine{Seq: first, Reason: "r", Actor: "ops"})
	require.NoError(t, err)
	assert.Equal(t, events.StateGranted, two.Status.State)
	assert.Equal(t, one.Event.Hash, two.Event.PrevHash)
	assert.Equal(t, granted.Event.PolicyVersion, two.Event.PolicyVersion)
	revoked, err := st.client.Revoke(ctx, cmd)
	require.NoError(t, err)
	assert.Equal(t, two.Event.Hash, revoked.Event.PrevHash)
}
