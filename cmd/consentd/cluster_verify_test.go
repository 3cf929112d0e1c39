package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/keystore"
	"github.com/consentledger/consent/projector"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The checks the cluster, failover and crash tests make after the fact:
// read the whole stream back, verify it as an auditor would, fold it
// afresh and compare every index and every acknowledged reply with it.

// storedEvent is one consent event read back from the stream.
type storedEvent struct {
	seq     uint64
	subject string // the NATS subject it is stored on
	msgID   string // Nats-Msg-Id: derived from the idempotency key, or the event id
	event   *events.Event
}

// streamAudit is the stream read back and checked.
type streamAudit struct {
	lastSeq uint64
	events  []storedEvent                 // consent events, oldest first
	bySeq   map[uint64]storedEvent        // the same, by stream sequence
	fold    map[events.Key]events.Consent // a fresh fold of every consent
	history map[events.Key][]events.Event // each consent's events, oldest first
	// tokens are the subject keys the consents' events carry (version 2),
	// which the index finds them by on a stream of keyed subject keys.
	tokens map[events.Key]string
}

// auditStream reads every message of the stream from sequence 1 with an
// ordered consumer and checks it: sequences without gaps, every consent
// event decodes, carries a hash that matches its content
// (events.VerifyHash) and links by prev_hash to the previous event of its
// consent; event ids and Nats-Msg-Id values are unique. Messages on other
// subjects (purpose or checkpoint events) count for the gaps only. It
// returns a fresh fold of the stream with events.Evolve. A sealed event
// (schema version 2) is opened with open, when given (see openWithKeys),
// and the audit keys consents by tenant, person and purpose, as the load
// that wrote them does.
func auditStream(t *testing.T, js jetstream.JetStream, open ...func(*events.Event) error) *streamAudit {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, wire.DefaultStream)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	a := &streamAudit{
		lastSeq: info.State.LastSeq,
		bySeq:   map[uint64]storedEvent{},
		fold:    map[events.Key]events.Consent{},
		history: map[events.Key][]events.Event{},
		tokens:  map[events.Key]string{},
	}
	if a.lastSeq == 0 {
		return a
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	msgs, err := cons.Messages()
	require.NoError(t, err)
	defer msgs.Stop()

	eventIDs := map[string]uint64{}
	msgIDs := map[string]uint64{}
	for want := uint64(1); want <= a.lastSeq; want++ {
		msg, err := msgs.Next(jetstream.NextContext(ctx))
		require.NoError(t, err, "reading seq %d of %d", want, a.lastSeq)
		meta, err := msg.Metadata()
		require.NoError(t, err)
		require.Equal(t, want, meta.Sequence.Stream, "the stream has a gap")
		if !strings.HasPrefix(msg.Subject(), "consent.events.") {
			continue
		}
		ev, err := events.Decode(msg.Data())
		require.NoError(t, err, "seq %d", want)
		require.NoError(t, events.VerifyHash(msg.Data(), ev), "seq %d", want)
		require.Equal(t, ev.Key().NATSSubject(), msg.Subject(), "seq %d is on another consent's subject", want)
		require.Equal(t, string(ev.Type), msg.Headers().Get(events.HeaderEventType), "seq %d", want)
		if ev.IsSealed() && len(open) > 0 {
			require.NoError(t, open[0](ev), "open seq %d", want)
		}
		token := ev.SubjectKey
		ev.SubjectKey = "" // the person by id, as the load names them
		if token != "" {
			a.tokens[ev.Key()] = token
		}
		cur, ok := a.fold[ev.Key()]
		if !ok {
			cur = events.NewConsent(ev.Key())
		}
		require.Equal(t, cur.Hash, ev.PrevHash, "seq %d does not link to its consent's previous event (seq %d)", want, cur.Seq)
		a.fold[ev.Key()] = events.Evolve(cur, ev, want)
		a.history[ev.Key()] = append(a.history[ev.Key()], *ev)

		msgID := msg.Headers().Get(events.HeaderMsgID)
		require.NotEmpty(t, msgID, "seq %d has no %s", want, events.HeaderMsgID)
		if first, dup := msgIDs[msgID]; dup {
			require.Failf(t, "duplicate", "%s %q at seq %d and at seq %d", events.HeaderMsgID, msgID, first, want)
		}
		msgIDs[msgID] = want
		if first, dup := eventIDs[ev.ID]; dup {
			require.Failf(t, "duplicate", "event id %s at seq %d and at seq %d", ev.ID, first, want)
		}
		eventIDs[ev.ID] = want
		se := storedEvent{seq: want, subject: msg.Subject(), msgID: msgID, event: ev}
		a.events = append(a.events, se)
		a.bySeq[want] = se
	}
	return a
}

// consentAt returns the fold of one consent's events up to seq: the state
// an index at index_seq seq must answer with.
func (a *streamAudit) consentAt(k events.Key, seq uint64) events.Consent {
	c := events.NewConsent(k)
	for _, se := range a.events {
		if se.seq > seq {
			break
		}
		if se.event.Key() == k {
			c = events.Evolve(c, se.event, se.seq)
		}
	}
	return c
}

// assertAcknowledged checks every acknowledged reply against the stream:
// the event is stored at the reply's seq under the idempotency key the
// writer used, with the event id the reply carried. With the uniqueness
// auditStream checks, each acknowledged append is then in the stream
// exactly once.
func (a *streamAudit) assertAcknowledged(t *testing.T, acks []ack) {
	t.Helper()
	for _, k := range acks {
		se, ok := a.bySeq[k.seq]
		if !assert.True(t, ok, "acknowledged %s (key %s) at seq %d is not in the stream", k.kind, k.idempotencyKey, k.seq) {
			continue
		}
		// On its consent's subject (checked by auditStream), whose subject
		// key the writer cannot compute on a stream of keyed ones.
		assert.Equal(t, events.IdempotencyMsgID(se.subject, k.idempotencyKey), se.msgID, "seq %d", k.seq)
		assert.Equal(t, k.eventID, se.event.ID, "seq %d", k.seq)
		assert.Equal(t, k.kind.EventType(), se.event.Type, "seq %d", k.seq)
		assert.Equal(t, k.consent, se.event.Key(), "seq %d", k.seq)
	}
}

// assertIndexMatches checks that idx, once it has applied the whole stream,
// holds exactly the fresh fold for every consent, and no violation.
func (a *streamAudit) assertIndexMatches(t *testing.T, name string, idx *projector.Index) {
	t.Helper()
	waitIndex(t, idx, a.lastSeq)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for key, want := range a.fold {
		keyed := key
		keyed.SubjectKey = a.tokens[key]
		got, indexSeq, err := idx.Consent(ctx, keyed, a.lastSeq)
		require.NoError(t, err, "%s: consent %v", name, key)
		assert.GreaterOrEqual(t, indexSeq, a.lastSeq, name)
		assert.Equal(t, comparable(want), comparable(got), "%s: consent %v", name, key)
	}
	assert.Zero(t, idx.ViolationCount(), "%s: integrity violations", name)
}

// waitIndex waits until idx answers and has applied seq. Unlike
// idx.Wait it also waits through the moments when the index does not
// answer at all: its projector lost its consumer (a NATS node went away)
// and is being restarted by consentd.
func waitIndex(t *testing.T, idx *projector.Index, seq uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := idx.Wait(ctx, seq)
		return err == nil
	}, 30*time.Second, time.Millisecond, "index at seq %d, want %d", idx.Checkpoint(), seq)
}

// assertStatusesMatch checks, through the service, that the status of
// every consent reflects the fresh fold (read with min_seq, so not stale).
func (a *streamAudit) assertStatusesMatch(t *testing.T, client *client.Client) {
	t.Helper()
	for key, want := range a.fold {
		st, err := client.Status(t.Context(), wire.StatusQuery{Tenant: key.Tenant, SubjectID: key.SubjectID, Purpose: key.Purpose, MinSeq: a.lastSeq})
		require.NoError(t, err, "consent %v", key)
		assert.Equal(t, want.State, st.State, "consent %v", key)
		assert.Equal(t, want.Seq, st.Seq, "consent %v", key)
		assert.Equal(t, want.EventID, st.EventID, "consent %v", key)
		assert.Equal(t, want.PolicyVersion, st.PolicyVersion, "consent %v", key)
		assert.GreaterOrEqual(t, st.IndexSeq, a.lastSeq, "consent %v", key)
	}
}

// consentFields is a Consent with its times as instants, so that two
// states compare equal however their times were decoded.
type consentFields struct {
	Key           events.Key
	State         events.State
	PolicyVersion int
	UpdatedAt     int64
	ExpiresAt     int64
	Seq           uint64
	EventID, Hash string
}

func comparable(c events.Consent) consentFields {
	key := c.Key()
	key.SubjectKey = "" // an index states it for consents of sealed events only
	f := consentFields{Key: key, State: c.State, PolicyVersion: c.PolicyVersion,
		UpdatedAt: c.UpdatedAt.UnixNano(), Seq: c.Seq, EventID: c.EventID, Hash: c.Hash}
	if c.ExpiresAt != nil {
		f.ExpiresAt = c.ExpiresAt.UnixNano()
	}
	return f
}

// openWithKeys opens sealed events with the data keys of the key store in
// the stream's account (js) under the KEK in kekFile, as consentd does.
func openWithKeys(t *testing.T, js jetstream.JetStream, kekFile string) func(*events.Event) error {
	t.Helper()
	kek, err := keystore.LoadKEK(kekFile)
	require.NoError(t, err)
	keys, err := keystore.Open(t.Context(), js, keystore.Config{KEK: kek})
	require.NoError(t, err)
	return func(ev *events.Event) error {
		key, err := keys.KeyByID(t.Context(), ev.Tenant, ev.SubjectKey, ev.KeyID)
		if err != nil {
			return err
		}
		return ev.Open(events.DataKey{ID: ev.KeyID, Key: key})
	}
}
