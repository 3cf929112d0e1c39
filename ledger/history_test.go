package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func seqs(h wire.History) []uint64 {
	out := make([]uint64, len(h.Events))
	for i, r := range h.Events {
		out[i] = r.Seq
	}
	return out
}

func TestHistoryOfConsentAndOfPerson(t *testing.T) {
	l, _, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	ctx := context.Background()
	type step struct {
		tenant, subjectID, purpose string
		kind                       events.Kind
	}
	steps := []step{
		{"", "alice", "email", events.KindRequest},
		{"", "bob", "email", events.KindGrant},
		{"", "alice", "sms", events.KindGrant},
		{"", "alice", "email", events.KindGrant},
		{"other", "alice", "email", events.KindGrant}, // another tenant: another person
		{"", "alice", "email", events.KindRevoke},
		{"", "alice", "analytics", events.KindDeny},
	}
	var replies []wire.Reply
	for _, s := range steps {
		r, err := l.Append(ctx, s.kind, events.Command{Tenant: s.tenant, SubjectID: s.subjectID, Purpose: s.purpose})
		require.NoError(t, err)
		replies = append(replies, r)
	}

	t.Run("one consent", func(t *testing.T) {
		h, err := l.History(ctx, wire.HistoryQuery{SubjectID: "alice", Purpose: "email"})
		require.NoError(t, err)
		assert.Equal(t, []uint64{1, 4, 6}, seqs(h))
		for i, want := range []int{0, 3, 5} {
			assert.Equal(t, replies[want].Event, h.Events[i].Event, "event at seq %d", h.Events[i].Seq)
		}
	})
	t.Run("one person across purposes", func(t *testing.T) {
		h, err := l.History(ctx, wire.HistoryQuery{Tenant: "default", SubjectID: "alice"})
		require.NoError(t, err)
		assert.Equal(t, []uint64{1, 3, 4, 6, 7}, seqs(h))
		for _, r := range h.Events {
			assert.Equal(t, "alice", r.Event.SubjectID)
			assert.Equal(t, "default", r.Event.Tenant)
		}
	})
	t.Run("another tenant", func(t *testing.T) {
		h, err := l.History(ctx, wire.HistoryQuery{Tenant: "other", SubjectID: "alice"})
		require.NoError(t, err)
		assert.Equal(t, []uint64{5}, seqs(h))
	})
	t.Run("no events", func(t *testing.T) {
		h, err := l.History(ctx, wire.HistoryQuery{SubjectID: "carol", Purpose: "email"})
		require.NoError(t, err)
		assert.Empty(t, h.Events)
		b, err := json.Marshal(h)
		require.NoError(t, err)
		assert.JSONEq(t, `{"events":[]}`, string(b), "an empty history is an empty list, not null")
	})
}

func TestHistoryPaging(t *testing.T) {
	l, _, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	ctx := context.Background()
	var all []uint64
	for i := range 25 {
		// Interleave another consent so consent and stream sequences differ.
		_, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "noise", Purpose: "p"})
		require.NoError(t, err)
		r, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "alice", Purpose: "p", Actor: fmt.Sprint("step-", i)})
		require.NoError(t, err)
		all = append(all, r.Seq)
	}

	var paged []uint64
	var sizes []int
	after := uint64(0)
	for {
		h, err := l.History(ctx, wire.HistoryQuery{SubjectID: "alice", Purpose: "p", AfterSeq: after, Limit: 10})
		require.NoError(t, err)
		sizes = append(sizes, len(h.Events))
		paged = append(paged, seqs(h)...)
		if len(h.Events) < 10 {
			break
		}
		after = h.Events[len(h.Events)-1].Seq
	}
	assert.Equal(t, []int{10, 10, 5}, sizes)
	assert.Equal(t, all, paged)

	h, err := l.History(ctx, wire.HistoryQuery{SubjectID: "alice", Purpose: "p"})
	require.NoError(t, err)
	assert.Equal(t, all, seqs(h), "the default limit (100) covers all 25")

	h, err = l.History(ctx, wire.HistoryQuery{SubjectID: "alice", Purpose: "p", AfterSeq: all[24]})
	require.NoError(t, err)
	assert.Empty(t, h.Events)

	h, err = l.History(ctx, wire.HistoryQuery{SubjectID: "alice", Purpose: "p", AfterSeq: all[3], Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, []uint64{all[4]}, seqs(h), "after_seq need not be one of this consent's sequences")
}

func TestHistoryRejectsBadQueries(t *testing.T) {
	l, _, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	tests := []struct {
		q     wire.HistoryQuery
		field string
	}{
		{wire.HistoryQuery{}, "subject"},
		{wire.HistoryQuery{SubjectID: "a", Limit: wire.MaxHistoryLimit + 1}, "limit"},
		{wire.HistoryQuery{SubjectID: "a", Limit: -1}, "limit"},
		{wire.HistoryQuery{SubjectID: "a", Purpose: "Bad.Purpose"}, "purpose"},
		{wire.HistoryQuery{SubjectID: "a", Tenant: "*"}, "tenant"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			_, err := l.History(context.Background(), tt.q)
			var fe *events.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.Equal(t, 400, ledger.WireError(err).Code)
		})
	}
}

// Subject ids may hold anything printable, including the characters NATS
// gives meaning to; they never reach a NATS subject, and each one's events
// stay its own.
func TestSubjectIDsRoundTrip(t *testing.T) {
	l, stream, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	ctx := context.Background()
	ids := []string{
		"alice@example.com",
		"first.last",
		"a.*.>",
		"*",
		">",
		"with space",
		"inner  spaces",
		"Zoë Ångström",
		"名前",
		"🙂 emoji",
		`quote"back\slash`,
		strings.Repeat("x", events.MaxSubjectIDLen),
	}
	for _, id := range ids {
		r, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: id, Purpose: "p"})
		require.NoError(t, err, "%q", id)
		assert.Equal(t, id, r.Event.SubjectID)
	}
	for _, id := range ids {
		key := events.Key{Tenant: "default", SubjectID: id, Purpose: "p"}
		natsSubject := natsSubjectOf(t, l, key)
		assert.Len(t, strings.Split(natsSubject, "."), 5, "%q: subject %s", id, natsSubject)
		stored := readStored(t, stream, natsSubject)
		require.Len(t, stored, 1, "%q", id)
		openStored(t, keysOf(stream), stored[0].Event)
		assert.Equal(t, id, stored[0].Event.SubjectID)

		for _, q := range []wire.HistoryQuery{{SubjectID: id, Purpose: "p"}, {SubjectID: id}} {
			h, err := l.History(ctx, q)
			require.NoError(t, err, "%q", id)
			require.Len(t, h.Events, 1, "%q: purpose %q", id, q.Purpose)
			assert.Equal(t, id, h.Events[0].Event.SubjectID)
			assert.Equal(t, stored[0].Seq, h.Events[0].Seq)
		}
	}
}

// A message on a consent's subject that is not an event is an integrity
// violation: history lists it as one (no event), and appends are refused.
func TestUnreadableStoredEvent(t *testing.T) {
	l, _, js := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	ctx := context.Background()
	key := events.Key{Tenant: "default", SubjectID: "a", Purpose: "p"}
	_, err := js.Publish(ctx, natsSubjectOf(t, l, key), []byte(`{"v":1,"type":"consent.granted"}`))
	require.NoError(t, err)

	h, err := l.History(ctx, wire.HistoryQuery{SubjectID: "a", Purpose: "p"})
	require.NoError(t, err)
	require.Len(t, h.Events, 1)
	assert.Equal(t, uint64(1), h.Events[0].Seq)
	assert.Nil(t, h.Events[0].Event)
	require.NotNil(t, h.Events[0].Violation)
	assert.NotEmpty(t, h.Events[0].Violation.Check)

	// A write to the consent fails, naming the message (see
	// integrity_test.go).
	_, err = l.Append(ctx, events.KindGrant, events.Command{SubjectID: "a", Purpose: "p"})
	require.ErrorIs(t, err, ledger.ErrIntegrity)
	assert.Equal(t, 409, ledger.WireError(err).Code)
	assert.Contains(t, err.Error(), "seq 1")
}
