package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runExpirer runs an expirer over st until the end of the test.
func runExpirer(t *testing.T, st *stack, clock func() time.Time, interval time.Duration) *ledger.Expirer {
	t.Helper()
	e := ledger.NewExpirer(st.ledger, st.index, ledger.ExpirerOptions{Interval: interval, Now: clock,
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return e
}

// TestExpiryLandsOnceWithTwoInstances: two consentd instances (ledger,
// index, service, expirer each) on one stream; when grants lapse, each
// gets exactly one consent.expired, whichever instance wrote it.
func TestExpiryLandsOnceWithTwoInstances(t *testing.T) {
	clock := newManualClock(time.Now().UTC().Truncate(time.Second))
	server := natstest.RunServer(t)
	a := startStack(t, stackOptions{server: server, now: clock.Now})
	b := startStack(t, stackOptions{server: server, now: clock.Now})

	const grants = 40
	var keys []events.Key
	for i := range grants {
		c := a.client
		if i%2 == 1 {
			c = b.client
		}
		reply, err := c.Grant(stepCtx(t), events.Command{SubjectID: fmt.Sprintf("person-%d", i), Purpose: "analytics", TTL: "1h"})
		require.NoError(t, err)
		keys = append(keys, reply.Event.Key())
	}
	// One that lapses later, and one renewed before it lapses.
	later, err := a.client.Grant(stepCtx(t), events.Command{SubjectID: "later", Purpose: "analytics", TTL: "3h"})
	require.NoError(t, err)
	_, err = a.client.Grant(stepCtx(t), events.Command{SubjectID: "renewed", Purpose: "analytics", TTL: "1h"})
	require.NoError(t, err)
	renewed, err := b.client.Grant(stepCtx(t), events.Command{SubjectID: "renewed", Purpose: "analytics", TTL: "5h"})
	require.NoError(t, err)
	for _, st := range []*stack{a, b} {
		_, err := st.index.Wait(stepCtx(t), renewed.Seq)
		require.NoError(t, err)
	}

	const interval = 20 * time.Millisecond
	ea := runExpirer(t, a, clock.Now, interval)
	eb := runExpirer(t, b, clock.Now, interval)
	// Before expires_at, nothing happens (both sweep on their own).
	require.Eventually(t, func() bool { return ea.Stats().Sweeps >= 2 && eb.Stats().Sweeps >= 2 }, 10*time.Second, time.Millisecond)
	assert.Zero(t, ea.Stats().Appended+eb.Stats().Appended)

	// The hour passes; both instances find every grant due at once.
	clock.Advance(time.Hour + time.Second)
	started := time.Now()
	require.Eventually(t, func() bool { return ea.Stats().Appended+eb.Stats().Appended >= grants }, 10*time.Second, time.Millisecond)
	t.Logf("%d expiries appended %v after the clock passed expires_at (expirer interval %v): %+v and %+v",
		grants, time.Since(started).Round(time.Millisecond), interval, ea.Stats(), eb.Stats())

	// Each lapsed grant has exactly one consent.expired, chained to it.
	for _, k := range keys {
		history := requireLinearChain(t, a.stream, k.NATSSubject())
		require.Len(t, history, 2, "%s", k.SubjectID)
		ev := history[1].Event
		openStored(t, a.keysOrNil(), ev)
		assert.Equal(t, events.TypeExpired, ev.Type)
		assert.Equal(t, *history[0].Event.ExpiresAt, ev.OccurredAt, "it occurred when the grant lapsed")
		assert.Equal(t, events.ExpiryActor, ev.Actor)
	}
	for _, name := range []string{"later", "renewed"} {
		k := events.Key{Tenant: events.DefaultTenant, SubjectID: name, Purpose: "analytics"}
		for _, s := range readStored(t, a.stream, a.natsSubject(t, k)) {
			assert.NotEqual(t, events.TypeExpired, s.Event.Type, "%s has not lapsed", name)
		}
	}
	// Every due grant was appended by exactly one instance; the other one
	// saw a conflict (or a duplicate) unless it found the event folded.
	assert.Equal(t, uint64(grants), ea.Stats().Appended+eb.Stats().Appended)
	assert.Zero(t, ea.Stats().Failed+eb.Stats().Failed)

	// Later ones follow as their time comes, still once.
	clock.Advance(2 * time.Hour)
	require.Eventually(t, func() bool { return ea.Stats().Appended+eb.Stats().Appended == grants+1 }, 10*time.Second, time.Millisecond)
	history := requireLinearChain(t, a.stream, later.Event.Key().NATSSubject())
	require.Len(t, history, 2)
	assert.Equal(t, events.TypeExpired, history[1].Event.Type)
}

// TestExpiredStatusFromClockThenEvent: a lapsed grant reads expired before
// the event lands (from the clock) and after (from the event).
func TestExpiredStatusFromClockThenEvent(t *testing.T) {
	clock := newManualClock(time.Now().UTC().Truncate(time.Second))
	st := startStack(t, stackOptions{now: clock.Now})
	granted, err := st.client.Grant(stepCtx(t), events.Command{SubjectID: "dan", Purpose: "analytics", TTL: "10m"})
	require.NoError(t, err)
	q := wire.StatusQuery{SubjectID: "dan", Purpose: "analytics", MinSeq: granted.Seq}

	clock.Advance(11 * time.Minute)
	byClock, err := st.client.Status(stepCtx(t), q)
	require.NoError(t, err)
	assert.Equal(t, events.StateExpired, byClock.State)
	assert.Equal(t, granted.Seq, byClock.Seq, "no event yet")

	e := ledger.NewExpirer(st.ledger, st.index, ledger.ExpirerOptions{Now: clock.Now})
	_, err = e.Sweep(stepCtx(t))
	require.NoError(t, err)
	require.Equal(t, uint64(1), e.Stats().Appended)
	msg, err := st.stream.GetLastMsgForSubject(stepCtx(t), granted.Event.Key().NATSSubject())
	require.NoError(t, err)
	q.MinSeq = msg.Sequence
	byEvent, err := st.client.Status(stepCtx(t), q)
	require.NoError(t, err)
	assert.Equal(t, events.StateExpired, byEvent.State)
	assert.Equal(t, msg.Sequence, byEvent.Seq, "decided by the expiry event")
	assert.Equal(t, byClock.ExpiresAt, byEvent.ExpiresAt)
	assert.False(t, byEvent.Allowed)

	// A second sweep finds nothing: the index applied the event.
	_, err = e.Sweep(stepCtx(t))
	require.NoError(t, err)
	assert.Equal(t, ledger.ExpiryStats{Sweeps: 2, Appended: 1}, e.Stats())

	// And the person can be asked again, or revoke, from expired.
	_, err = st.client.Revoke(stepCtx(t), events.Command{SubjectID: "dan", Purpose: "analytics"})
	require.NoError(t, err)
}

func TestExpireRefusals(t *testing.T) {
	clock := newManualClock(time.Now().UTC().Truncate(time.Second))
	st := startStack(t, stackOptions{now: clock.Now})
	granted, err := st.ledger.Append(stepCtx(t), events.KindGrant, events.Command{SubjectID: "eve", Purpose: "p", TTL: "1m"})
	require.NoError(t, err)
	grant := events.Evolve(events.NewConsent(granted.Event.Key()), granted.Event, granted.Seq)

	_, err = st.ledger.Expire(stepCtx(t), grant)
	require.ErrorIs(t, err, events.ErrForbidden, "not lapsed yet")

	clock.Advance(2 * time.Minute)
	_, err = st.ledger.Append(stepCtx(t), events.KindGrant, events.Command{SubjectID: "eve", Purpose: "p", TTL: "1h"})
	require.NoError(t, err)
	_, err = st.ledger.Expire(stepCtx(t), grant)
	require.ErrorIs(t, err, ledger.ErrExpiryLost, "renewed since")
	history := requireLinearChain(t, st.stream, grant.Key().NATSSubject())
	assert.Len(t, history, 2, "nothing appended")
}
