package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestAppendRecordsChainedEvents(t *testing.T) {
	clock := newManualClock(t0)
	l, stream, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{Now: clock.Now})
	ctx := context.Background()
	cmd := events.Command{
		Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email",
		Actor: "subject", Method: "dialog", Evidence: json.RawMessage(`{"form":"signup"}`),
	}

	grant, err := l.Append(ctx, events.KindGrant, cmd)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), grant.Seq)
	assert.False(t, grant.Duplicate)
	require.NotNil(t, grant.Event)
	ev := grant.Event
	id, err := uuid.Parse(ev.ID)
	require.NoError(t, err, "event id")
	assert.Equal(t, uuid.Version(7), id.Version())
	assert.Equal(t, events.TypeGranted, ev.Type)
	assert.Equal(t, "acme", ev.Tenant)
	assert.Equal(t, "alice@example.com", ev.SubjectID)
	assert.Equal(t, "marketing_email", ev.Purpose)
	assert.Equal(t, 1, ev.PolicyVersion)
	assert.Equal(t, "subject", ev.Actor)
	assert.Equal(t, "dialog", ev.Method)
	assert.JSONEq(t, `{"form":"signup"}`, string(ev.Evidence))
	assert.Equal(t, "", ev.PrevHash)
	assert.NotEmpty(t, ev.Hash)
	assert.Equal(t, events.Status{
		Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email",
		State: events.StateGranted, Allowed: true, PolicyVersion: 1, UpdatedAt: &t0,
		Seq: 1, EventID: ev.ID, IndexSeq: 0,
	}, grant.Status)

	revoke, err := l.Append(ctx, events.KindRevoke, events.Command{
		Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email", Reason: "changed my mind",
	})
	require.NoError(t, err)
	assert.Equal(t, uint64(2), revoke.Seq)
	assert.Equal(t, ev.Hash, revoke.Event.PrevHash)
	assert.Equal(t, events.StateRevoked, revoke.Status.State)
	assert.False(t, revoke.Status.Allowed)
	assert.Equal(t, uint64(2), revoke.Status.Seq)

	// The stream holds what the replies say, on the consent's subject,
	// with the contract's headers.
	natsSubject := natsSubjectOf(t, l, cmd.Key())
	stored := requireLinearChain(t, stream, natsSubject)
	require.Len(t, stored, 2)
	assert.Equal(t, ev.ID, stored[0].Header.Get(events.HeaderMsgID))
	assert.Equal(t, "consent.granted", stored[0].Header.Get(events.HeaderEventType))
	assert.Equal(t, revoke.Event.ID, stored[1].Header.Get(events.HeaderMsgID))
	assert.Equal(t, "consent.revoked", stored[1].Header.Get(events.HeaderEventType))
	assert.Equal(t, ev.Hash, stored[0].Event.Hash)
	assert.Equal(t, revoke.Event.Hash, stored[1].Event.Hash)
	assert.Equal(t, []uint64{grant.Seq, revoke.Seq}, []uint64{stored[0].Seq, stored[1].Seq})
}

func TestAppendTimes(t *testing.T) {
	clock := newManualClock(t0)
	l, _, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{Now: clock.Now})
	ctx := context.Background()

	t.Run("occurred_at defaults to the ledger's clock", func(t *testing.T) {
		r, err := l.Append(ctx, events.KindRequest, events.Command{SubjectID: "a", Purpose: "p"})
		require.NoError(t, err)
		assert.True(t, r.Event.OccurredAt.Equal(t0), "occurred_at %s", r.Event.OccurredAt)
		assert.True(t, r.Event.RecordedAt.Equal(t0), "recorded_at %s", r.Event.RecordedAt)
	})
	t.Run("ttl becomes expires_at from now", func(t *testing.T) {
		r, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "b", Purpose: "p", TTL: "24h"})
		require.NoError(t, err)
		require.NotNil(t, r.Event.ExpiresAt)
		assert.True(t, r.Event.ExpiresAt.Equal(t0.Add(24*time.Hour)), "expires_at %s", r.Event.ExpiresAt)
		require.NotNil(t, r.Status.ExpiresAt)
		assert.True(t, r.Status.ExpiresAt.Equal(t0.Add(24*time.Hour)))
		assert.True(t, r.Status.Allowed)
	})
	t.Run("ttl counts from a given occurred_at", func(t *testing.T) {
		occurred := t0.Add(-90 * time.Minute)
		r, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "c", Purpose: "p", TTL: "2h", OccurredAt: &occurred})
		require.NoError(t, err)
		assert.True(t, r.Event.OccurredAt.Equal(occurred))
		assert.True(t, r.Event.RecordedAt.Equal(t0))
		require.NotNil(t, r.Event.ExpiresAt)
		assert.True(t, r.Event.ExpiresAt.Equal(occurred.Add(2*time.Hour)))
	})
	t.Run("a grant already expired when recorded is expired in the reply", func(t *testing.T) {
		occurred := t0.Add(-3 * time.Hour)
		r, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "d", Purpose: "p", TTL: "1h", OccurredAt: &occurred})
		require.NoError(t, err)
		assert.Equal(t, events.StateExpired, r.Status.State)
		assert.False(t, r.Status.Allowed)
	})
	t.Run("expires_at is kept", func(t *testing.T) {
		exp := t0.Add(48 * time.Hour)
		r, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "e", Purpose: "p", ExpiresAt: &exp})
		require.NoError(t, err)
		require.NotNil(t, r.Event.ExpiresAt)
		assert.True(t, r.Event.ExpiresAt.Equal(exp))
	})
}

// TestAppendTransitionTable drives one consent into each state and tries
// each command there, checking every cell of the contract's table.
func TestAppendTransitionTable(t *testing.T) {
	clock := newManualClock(t0)
	l, stream, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{Now: clock.Now})
	ctx := context.Background()

	// How to reach each state from none (expired: a 1h grant, then the
	// clock moves 2h on).
	setups := map[events.State][]events.Kind{
		events.StateNone:      nil,
		events.StateRequested: {events.KindRequest},
		events.StateGranted:   {events.KindGrant},
		events.StateDenied:    {events.KindDeny},
		events.StateRevoked:   {events.KindGrant, events.KindRevoke},
		events.StateExpired:   {events.KindGrant},
	}
	const ok, no = true, false
	table := map[events.State]map[events.Kind]bool{
		events.StateNone:      {events.KindRequest: ok, events.KindGrant: ok, events.KindDeny: ok, events.KindRevoke: no},
		events.StateRequested: {events.KindRequest: ok, events.KindGrant: ok, events.KindDeny: ok, events.KindRevoke: no},
		events.StateGranted:   {events.KindRequest: no, events.KindGrant: ok, events.KindDeny: no, events.KindRevoke: ok},
		events.StateDenied:    {events.KindRequest: ok, events.KindGrant: ok, events.KindDeny: ok, events.KindRevoke: no},
		events.StateRevoked:   {events.KindRequest: ok, events.KindGrant: ok, events.KindDeny: ok, events.KindRevoke: no},
		events.StateExpired:   {events.KindRequest: ok, events.KindGrant: ok, events.KindDeny: ok, events.KindRevoke: ok},
	}
	after := map[events.Kind]events.State{
		events.KindRequest: events.StateRequested, events.KindGrant: events.StateGranted,
		events.KindDeny: events.StateDenied, events.KindRevoke: events.StateRevoked,
	}

	n := 0
	for from, row := range table {
		for kind, allowed := range row {
			t.Run(fmt.Sprintf("%s from %s", kind, from), func(t *testing.T) {
				n++
				base := events.Command{SubjectID: fmt.Sprintf("person %d", n), Purpose: "p"}
				clock.mu.Lock()
				clock.t = t0
				clock.mu.Unlock()
				for _, k := range setups[from] {
					setup := base
					if from == events.StateExpired {
						setup.TTL = "1h"
					}
					_, err := l.Append(ctx, k, setup)
					require.NoError(t, err, "setup %s", k)
				}
				if from == events.StateExpired {
					clock.Advance(2 * time.Hour)
				}
				before := storedCount(t, stream)

				r, err := l.Append(ctx, kind, base)
				if allowed {
					require.NoError(t, err)
					assert.Equal(t, after[kind], r.Status.State)
					assert.Equal(t, before+1, storedCount(t, stream))
					return
				}
				require.ErrorIs(t, err, events.ErrForbidden)
				var te *events.TransitionError
				require.ErrorAs(t, err, &te)
				assert.Equal(t, from, te.From)
				we := ledger.WireError(err)
				assert.Equal(t, 409, we.Code)
				assert.Contains(t, we.Description, fmt.Sprintf("cannot %s: ", kind))
				assert.Equal(t, before, storedCount(t, stream), "a refused command appends nothing")
			})
		}
	}

	t.Run("request on a grant with a higher policy_version (re-consent)", func(t *testing.T) {
		base := events.Command{SubjectID: "re-consent", Purpose: "p", PolicyVersion: 2}
		_, err := l.Append(ctx, events.KindGrant, base)
		require.NoError(t, err)
		same := base
		_, err = l.Append(ctx, events.KindRequest, same)
		require.ErrorIs(t, err, events.ErrForbidden)
		higher := base
		higher.PolicyVersion = 3
		r, err := l.Append(ctx, events.KindRequest, higher)
		require.NoError(t, err)
		assert.Equal(t, events.StateRequested, r.Status.State)
		assert.Equal(t, 3, r.Status.PolicyVersion)
	})
}

func TestAppendBadInputAppendsNothing(t *testing.T) {
	l, stream, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	ctx := context.Background()
	valid := events.Command{SubjectID: "alice", Purpose: "p"}
	with := func(f func(*events.Command)) events.Command { c := valid; f(&c); return c }

	tests := []struct {
		name  string
		kind  events.Kind
		cmd   events.Command
		field string
	}{
		{"unknown kind", events.Kind("approve"), valid, "kind"},
		{"missing subject", events.KindGrant, with(func(c *events.Command) { c.SubjectID = "" }), "subject"},
		{"control character in subject", events.KindGrant, with(func(c *events.Command) { c.SubjectID = "a\nb" }), "subject"},
		{"subject too long", events.KindGrant, with(func(c *events.Command) { c.SubjectID = strings.Repeat("x", 257) }), "subject"},
		{"missing purpose", events.KindGrant, with(func(c *events.Command) { c.Purpose = "" }), "purpose"},
		{"bad purpose", events.KindGrant, with(func(c *events.Command) { c.Purpose = "Marketing.Email" }), "purpose"},
		{"bad tenant", events.KindGrant, with(func(c *events.Command) { c.Tenant = "a.b" }), "tenant"},
		{"negative policy_version", events.KindGrant, with(func(c *events.Command) { c.PolicyVersion = -1 }), "policy_version"},
		{"ttl on revoke", events.KindRevoke, with(func(c *events.Command) { c.TTL = "1h" }), "ttl"},
		{"ttl not a duration", events.KindGrant, with(func(c *events.Command) { c.TTL = "a year" }), "ttl"},
		{"negative ttl", events.KindGrant, with(func(c *events.Command) { c.TTL = "-1h" }), "ttl"},
		{"description on grant", events.KindGrant, with(func(c *events.Command) { c.Description = "x" }), "description"},
		{"reason on grant", events.KindGrant, with(func(c *events.Command) { c.Reason = "x" }), "reason"},
		{"evidence not an object", events.KindGrant, with(func(c *events.Command) { c.Evidence = json.RawMessage(`[1]`) }), "evidence"},
		{"evidence too large", events.KindGrant, with(func(c *events.Command) {
			c.Evidence = json.RawMessage(`{"x":"` + strings.Repeat("a", 4<<10) + `"}`)
		}), "evidence"},
		{"idempotency_key too long", events.KindGrant, with(func(c *events.Command) { c.IdempotencyKey = strings.Repeat("k", 129) }), "idempotency_key"},
		{"expires_at in the past", events.KindGrant, with(func(c *events.Command) { c.ExpiresAt = ptr(time.Now().Add(-time.Hour)) }), "expires_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Append(ctx, tt.kind, tt.cmd)
			require.ErrorIs(t, err, events.ErrInvalid)
			var fe *events.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			we := ledger.WireError(err)
			assert.Equal(t, 400, we.Code)
			assert.Contains(t, we.Description, tt.field)
		})
	}
	assert.Zero(t, storedCount(t, stream), "bad input must never append")
}

func TestAppendExpectedSeq(t *testing.T) {
	l, stream, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	ctx := context.Background()
	cmd := func(expected uint64) events.Command {
		return events.Command{SubjectID: "alice", Purpose: "p", ExpectedSeq: &expected}
	}
	// Another consent moves the stream sequence on, so stream and
	// consent sequences differ.
	_, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "bob", Purpose: "p"})
	require.NoError(t, err)

	first, err := l.Append(ctx, events.KindGrant, cmd(0))
	require.NoError(t, err, "0 means no events yet")
	assert.Equal(t, uint64(2), first.Seq)

	_, err = l.Append(ctx, events.KindGrant, cmd(0))
	require.ErrorIs(t, err, ledger.ErrSeqMismatch)
	var sm *ledger.SeqMismatchError
	require.ErrorAs(t, err, &sm)
	assert.Equal(t, ledger.SeqMismatchError{Expected: 0, Actual: 2}, *sm)
	we := ledger.WireError(err)
	assert.Equal(t, 409, we.Code)
	assert.Equal(t, "expected_seq is 0 but the consent's last event is at seq 2", we.Description)

	_, err = l.Append(ctx, events.KindGrant, cmd(1))
	require.ErrorIs(t, err, ledger.ErrSeqMismatch, "seq 1 is another consent's")
	_, err = l.Append(ctx, events.KindGrant, cmd(7))
	require.ErrorIs(t, err, ledger.ErrSeqMismatch, "a sequence from the future")

	second, err := l.Append(ctx, events.KindRevoke, cmd(2))
	require.NoError(t, err)
	assert.Equal(t, uint64(3), second.Seq)
	assert.Equal(t, uint64(3), storedCount(t, stream))
}

// TestAppendConcurrentWritersWithExpectedSeq runs rounds in which many
// goroutines append to one consent, all expecting the same last sequence:
// exactly one wins each round, the others get a 409 naming the sequences,
// and the history stays one linear hash chain. With one Ledger per writer
// (as separate processes would be) the losers meet the stream's conflict;
// with one shared Ledger they queue and see the winner's sequence.
func TestAppendConcurrentWritersWithExpectedSeq(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared ledger %v", shared), func(t *testing.T) {
			_, stream, js := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
			ledgers := make([]*ledger.Ledger, 8)
			for i := range ledgers {
				if i == 0 || !shared {
					ledgers[i] = ledger.New(js, stream, ledger.Options{Keys: keysOf(stream)})
				} else {
					ledgers[i] = ledgers[0]
				}
			}
			runExpectedSeqRounds(t, ledgers, stream, 12)
		})
	}
}

// runExpectedSeqRounds appends with writer i on ledgers[i], all writers
// expecting the sequence the previous round's winner got.
func runExpectedSeqRounds(t *testing.T, ledgers []*ledger.Ledger, stream jetstream.Stream, rounds int) {
	ctx := context.Background()
	key := events.Key{Tenant: "default", SubjectID: "contended", Purpose: "p"}
	seq := uint64(0)
	for round := range rounds {
		start := make(chan struct{})
		results := make([]error, len(ledgers))
		replies := make([]wire.Reply, len(ledgers))
		var wg sync.WaitGroup
		for w, l := range ledgers {
			wg.Go(func() {
				expected := seq
				<-start
				replies[w], results[w] = l.Append(ctx, events.KindGrant, events.Command{
					SubjectID: key.SubjectID, Purpose: key.Purpose, Actor: fmt.Sprintf("writer-%d", w), ExpectedSeq: &expected,
				})
			})
		}
		close(start)
		wg.Wait()

		winners := 0
		for w, err := range results {
			if err == nil {
				winners++
				seq = replies[w].Seq
				continue
			}
			require.ErrorIs(t, err, ledger.ErrSeqMismatch, "round %d writer %d", round, w)
			assert.Equal(t, 409, ledger.WireError(err).Code)
		}
		require.Equal(t, 1, winners, "round %d: exactly one writer wins", round)
	}
	history := requireLinearChain(t, stream, natsSubjectOf(t, ledgers[0], key))
	require.Len(t, history, rounds)
	assert.Equal(t, seq, history[len(history)-1].Seq)
}

// TestAppendConcurrentWritersInOneProcess: goroutines appending in a loop
// to one consent through one Ledger all land, with the default retry bound,
// each event on the one before.
func TestAppendConcurrentWritersInOneProcess(t *testing.T) {
	l, stream, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	const writers, each = 8, 8
	key := events.Key{Tenant: "default", SubjectID: "busy", Purpose: "p"}
	errs := make(chan error, writers*each)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			for range each {
				_, err := l.Append(context.Background(), events.KindGrant, events.Command{
					SubjectID: key.SubjectID, Purpose: key.Purpose, Actor: fmt.Sprintf("writer-%d", w),
				})
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Len(t, requireLinearChain(t, stream, natsSubjectOf(t, l, key)), writers*each)
}

// TestAppendConcurrentWritersAcrossProcesses: without expected_seq, writers
// in different processes (one Ledger each) that lose a race re-read and
// re-decide. An append loses only to one that landed, so six writers racing
// once each all land within the default five retries.
func TestAppendConcurrentWritersAcrossProcesses(t *testing.T) {
	_, stream, js := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	counting := &faultyJetStream{JetStream: js}
	counting.publishF = func(_ int, ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
		return js.PublishMsg(ctx, m, opts...)
	}
	const writers, rounds = ledger.DefaultMaxRetries + 1, 6
	runRacingWriters(t, counting, stream, writers, rounds)
	assert.Greater(t, counting.Calls(), writers*rounds, "the writers should have met conflicts and retried")
}

// runRacingWriters runs rounds in which writers, each with its own Ledger,
// append once to one consent at the same moment; all must land.
func runRacingWriters(t *testing.T, js jetstream.JetStream, stream jetstream.Stream, writers, rounds int) {
	key := events.Key{Tenant: "default", SubjectID: "raced", Purpose: "p"}
	for round := range rounds {
		errs := make([]error, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			l := ledger.New(js, stream, ledger.Options{Keys: keysOf(stream)})
			wg.Go(func() {
				<-start
				_, errs[w] = l.Append(context.Background(), events.KindGrant, events.Command{
					SubjectID: key.SubjectID, Purpose: key.Purpose, Actor: fmt.Sprintf("writer-%d", w),
				})
			})
		}
		close(start)
		wg.Wait()
		for w, err := range errs {
			require.NoError(t, err, "round %d writer %d", round, w)
		}
	}
	natsSubject := natsSubjectOf(t, ledger.New(js, stream, ledger.Options{Keys: keysOf(stream)}), key)
	assert.Len(t, requireLinearChain(t, stream, natsSubject), writers*rounds)
}

// TestAppendConflictCodes checks that both conflict codes, 10071 (one
// replica) and 10164 (replicated), are retried and end in a 409 once the
// retries are spent, and that other publish errors are not retried.
func TestAppendConflictCodes(t *testing.T) {
	tests := []struct {
		name      string
		code      jetstream.ErrorCode
		wantCalls int
		wantErr   error
		wantWire  int
	}{
		{"wrong last sequence, one replica", jetstream.JSErrCodeStreamWrongLastSequence, 4, ledger.ErrContention, 409},
		{"wrong last sequence, replicated", jetstream.JSErrCodeStreamWrongLastSequenceConstant, 4, ledger.ErrContention, 409},
		{"another API error", jetstream.JSErrCodeStreamNotFound, 1, nil, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stream, js := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
			apiErr := &jetstream.APIError{Code: 400, ErrorCode: tt.code, Description: "injected"}
			faulty := &faultyJetStream{JetStream: js, publishF: func(int, context.Context, *nats.Msg, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
				return nil, fmt.Errorf("nats: %w", apiErr)
			}}
			l := ledger.New(faulty, stream, ledger.Options{MaxRetries: 3, Keys: keysOf(stream)})

			_, err := l.Append(context.Background(), events.KindGrant, events.Command{SubjectID: "a", Purpose: "p"})
			require.Error(t, err)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				var got *jetstream.APIError
				require.ErrorAs(t, err, &got)
				assert.Equal(t, tt.code, got.ErrorCode)
			}
			assert.Equal(t, tt.wantCalls, faulty.Calls())
			assert.Equal(t, tt.wantWire, ledger.WireError(err).Code)
		})
	}

	t.Run("a conflict then success appends once", func(t *testing.T) {
		_, stream, js := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
		faulty := &faultyJetStream{JetStream: js}
		faulty.publishF = func(call int, ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
			if call <= 2 {
				return nil, &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}
			}
			return js.PublishMsg(ctx, m, opts...)
		}
		l := ledger.New(faulty, stream, ledger.Options{Keys: keysOf(stream)})
		r, err := l.Append(context.Background(), events.KindGrant, events.Command{SubjectID: "a", Purpose: "p"})
		require.NoError(t, err)
		assert.Equal(t, uint64(1), r.Seq)
		assert.Equal(t, 3, faulty.Calls())
		assert.Equal(t, uint64(1), storedCount(t, stream))
	})
}

func TestAppendContextCancelled(t *testing.T) {
	l, stream, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "a", Purpose: "p"})
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled), "got %v", err)
	assert.Zero(t, storedCount(t, stream))
}
