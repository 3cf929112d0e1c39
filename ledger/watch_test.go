package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// watch starts a watch stopped at the end of the test.
func watch(t *testing.T, c *client.Client, opts client.WatchOptions) *client.Watcher {
	t.Helper()
	w, err := c.Watch(stepCtx(t), opts)
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	return w
}

// forEachWatchMode runs test on a new stack twice: with the client
// creating its consumers (st.client) and with a client reading feeds the
// service opens (ClientOptions.ServiceFeed, ledger.ServeFeed on the
// stack's connection, the default API prefix: a single account).
func forEachWatchMode(t *testing.T, test func(t *testing.T, st *stack, c *client.Client)) {
	t.Run("direct", func(t *testing.T) {
		st := startStack(t, stackOptions{})
		test(t, st, st.client)
	})
	t.Run("service feed", func(t *testing.T) {
		st := startStack(t, stackOptions{})
		test(t, st, serviceFeedClient(t, st))
	})
}

// serviceFeedClient serves the feed endpoints on st and returns a client
// that watches through them.
func serviceFeedClient(t *testing.T, st *stack) *client.Client {
	t.Helper()
	f, err := ledger.ServeFeed(st.js, ledger.FeedConfig{})
	require.NoError(t, err)
	if st.keys != nil {
		f.UseKeys(st.keys)
	}
	t.Cleanup(f.Stop)
	return client.NewClient(st.nc, client.ClientOptions{ServiceFeed: true})
}

// next returns the watch's next change, failing the test after 10s.
func next(t *testing.T, w *client.Watcher) *client.Change {
	t.Helper()
	ch, err := w.Next(stepCtx(t))
	require.NoError(t, err)
	require.NoError(t, ch.Err)
	return ch
}

func TestWatchDeliversEventsWithTheirStatus(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := st.client
	before, err := c.Grant(stepCtx(t), events.Command{SubjectID: "zed", Purpose: "newsletter"})
	require.NoError(t, err)

	w := watch(t, c, client.WatchOptions{Purposes: []string{"newsletter"}})
	// Only what comes after Watch returned, of tenant default and
	// purpose newsletter.
	_, err = c.Grant(stepCtx(t), events.Command{SubjectID: "alice", Purpose: "analytics"})
	require.NoError(t, err)
	_, err = c.Grant(stepCtx(t), events.Command{Tenant: "acme", SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	granted, err := c.Grant(stepCtx(t), events.Command{SubjectID: "alice", Purpose: "newsletter", TTL: "1h"})
	require.NoError(t, err)
	revoked, err := c.Revoke(stepCtx(t), events.Command{SubjectID: "alice", Purpose: "newsletter", Reason: "too many"})
	require.NoError(t, err)
	bump, err := c.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: "newsletter", PolicyVersion: 2})
	require.NoError(t, err)
	old, err := c.Grant(stepCtx(t), events.Command{SubjectID: "bob", Purpose: "newsletter", PolicyVersion: 1})
	require.NoError(t, err)

	ch := next(t, w)
	assert.Equal(t, granted.Seq, ch.Seq)
	openStored(t, st.keysOrNil(), ch.Event) // a direct watch delivers it as stored (docs/subscribers.md)
	assert.Equal(t, granted.Event, ch.Event)
	assert.Equal(t, events.StateGranted, ch.Status.State)
	assert.True(t, ch.Status.Allowed)
	assert.Equal(t, granted.Event.ExpiresAt, ch.Status.ExpiresAt)
	assert.Equal(t, granted.Seq, ch.Status.Seq)
	assert.Equal(t, uint64(1), ch.Delivered)
	require.NoError(t, ch.Ack(stepCtx(t)), "a no-op on an ephemeral watch")

	ch = next(t, w)
	assert.Equal(t, revoked.Seq, ch.Seq)
	assert.Equal(t, events.TypeRevoked, ch.Event.Type)
	assert.Equal(t, events.StateRevoked, ch.Status.State)
	assert.False(t, ch.Status.Allowed)

	ch = next(t, w)
	assert.Equal(t, bump.Seq, ch.Seq)
	assert.Nil(t, ch.Event)
	require.NotNil(t, ch.PurposeEvent)
	assert.Equal(t, bump.Event, ch.PurposeEvent)
	assert.Equal(t, 2, ch.Purpose.PolicyVersion)

	ch = next(t, w)
	assert.Equal(t, old.Seq, ch.Seq)
	assert.Equal(t, events.StateGranted, ch.Status.State)
	assert.False(t, ch.Status.Allowed, "judged against the purpose's version 2")
	assert.True(t, ch.Status.Outdated)
	assert.Zero(t, ch.Pending)
	assert.Less(t, before.Seq, granted.Seq)
}

// TestWatchStartsMidStream: from a sequence or a time, with the purpose
// registry as it stood there.
func TestWatchStartsMidStream(t *testing.T) {
	forEachWatchMode(t, func(t *testing.T, st *stack, c *client.Client) {
		v2, err := c.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: "newsletter", PolicyVersion: 2})
		require.NoError(t, err)
		first, err := c.Grant(stepCtx(t), events.Command{SubjectID: "alice", Purpose: "newsletter", PolicyVersion: 1})
		require.NoError(t, err)
		_, err = c.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: "newsletter", PolicyVersion: 3})
		require.NoError(t, err)
		second, err := c.Grant(stepCtx(t), events.Command{SubjectID: "bob", Purpose: "newsletter", PolicyVersion: 2})
		require.NoError(t, err)
		stored, err := st.stream.GetMsg(stepCtx(t), second.Seq)
		require.NoError(t, err)

		t.Run("from a sequence", func(t *testing.T) {
			w := watch(t, c, client.WatchOptions{StartSeq: first.Seq})
			ch := next(t, w)
			assert.Equal(t, first.Seq, ch.Seq)
			assert.True(t, ch.Status.Outdated, "the registry said version 2 before it")
			assert.Equal(t, 2, ch.Status.RequiredPolicyVersion)
			ch = next(t, w)
			assert.Equal(t, 3, ch.Purpose.PolicyVersion)
			ch = next(t, w)
			assert.Equal(t, second.Seq, ch.Seq)
			assert.Equal(t, 3, ch.Status.RequiredPolicyVersion)
		})
		t.Run("from a time", func(t *testing.T) {
			w := watch(t, c, client.WatchOptions{StartTime: stored.Time})
			ch := next(t, w)
			assert.Equal(t, second.Seq, ch.Seq)
			assert.Equal(t, 3, ch.Status.RequiredPolicyVersion, "the registry up to the start")
		})
		t.Run("from the start", func(t *testing.T) {
			w := watch(t, c, client.WatchOptions{StartSeq: 1})
			ch := next(t, w)
			assert.Equal(t, v2.Seq, ch.Seq)
			assert.Equal(t, 2, ch.Purpose.PolicyVersion)
		})
		t.Run("every tenant", func(t *testing.T) {
			acme, err := c.Grant(stepCtx(t), events.Command{Tenant: "acme", SubjectID: "x", Purpose: "p"})
			require.NoError(t, err)
			w := watch(t, c, client.WatchOptions{Tenant: "*", StartSeq: second.Seq})
			assert.Equal(t, second.Seq, next(t, w).Seq)
			assert.Equal(t, acme.Seq, next(t, w).Seq)
		})
	})
}

func TestWatchRefusesBadOptions(t *testing.T) {
	st := startStack(t, stackOptions{})
	for _, opts := range []client.WatchOptions{
		{Tenant: "Acme"},
		{Purposes: []string{"a.b"}},
		{StartSeq: 3, StartTime: time.Now()},
		{Durable: "mail.er"},
	} {
		_, err := st.client.Watch(stepCtx(t), opts)
		require.ErrorIs(t, err, events.ErrInvalid, "%+v", opts)
	}
	_, err := st.client.Watch(stepCtx(t), client.WatchOptions{Durable: "mailer", Purposes: []string{"a"}})
	require.NoError(t, err)
	_, err = st.client.Watch(stepCtx(t), client.WatchOptions{Durable: "mailer", Purposes: []string{"b"}})
	require.ErrorIs(t, err, wire.ErrDurableMismatch)
}

// writeLoad appends grants and revocations to n consents of purpose p
// until stop is closed or total events are written; it returns the
// sequences it wrote, in order, once done.
func writeLoad(t *testing.T, l *ledger.Ledger, total int, stop <-chan struct{}) <-chan []uint64 {
	done := make(chan []uint64, 1)
	go func() {
		var seqs []uint64
		defer func() { done <- seqs }()
		for i := range total {
			select {
			case <-stop:
				return
			default:
			}
			kind := events.KindGrant
			if i%3 == 2 {
				kind = events.KindRevoke
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			// grant, renew, revoke one consent, then the next one.
			subjectID := fmt.Sprintf("p%d", (i/3)%5)
			reply, err := l.Append(ctx, kind, events.Command{SubjectID: subjectID, Purpose: "newsletter", Reason: reasonFor(kind)})
			cancel()
			if err != nil {
				t.Errorf("append %d: %v", i, err)
				return
			}
			seqs = append(seqs, reply.Seq)
		}
	}()
	return done
}

func reasonFor(kind events.Kind) string {
	if kind == events.KindRevoke {
		return "load"
	}
	return ""
}

// TestWatcherRestartsMidStreamMissesNothing: a watcher that stops and
// starts again from the last sequence it handled + 1, several times while
// the ledger is being written, sees every change exactly once, in order.
func TestWatcherRestartsMidStreamMissesNothing(t *testing.T) {
	st := startStack(t, stackOptions{})
	const total = 300
	w := watch(t, st.client, client.WatchOptions{StartSeq: 1})
	written := writeLoad(t, st.ledger, total, nil)

	var seen []uint64
	for restarts := 0; len(seen) < total; {
		ch := next(t, w)
		seen = append(seen, ch.Seq)
		if len(seen)%70 == 0 {
			w.Stop()
			restarts++
			w = watch(t, st.client, client.WatchOptions{StartSeq: ch.Seq + 1})
		}
	}
	want := <-written
	require.Len(t, want, total)
	assert.Equal(t, want, seen, "every change once, in stream order")
}

// TestDurableWatchResumesWhereAcknowledged: a durable watch restarted by
// its subscriber gets what it had not acknowledged (also what the client
// had fetched ahead, again) and nothing it had.
func TestDurableWatchResumesWhereAcknowledged(t *testing.T) {
	forEachWatchMode(t, func(t *testing.T, st *stack, c *client.Client) {
		var want []uint64
		for i := range 20 {
			reply, err := c.Grant(stepCtx(t), events.Command{SubjectID: fmt.Sprintf("s%d", i), Purpose: "newsletter"})
			require.NoError(t, err)
			want = append(want, reply.Seq)
		}
		opts := client.WatchOptions{Durable: "mailer", StartSeq: 1}
		var handled []uint64
		w := watch(t, c, opts)
		for range 5 {
			ch := next(t, w)
			require.NoError(t, ch.Ack(stepCtx(t)))
			handled = append(handled, ch.Seq)
		}
		unacked := next(t, w) // handled, but the subscriber stops before acking it
		w.Stop()

		// The restarted watch gets every change from the unacknowledged one
		// on, at once (Stop gave them back), and none it acknowledged.
		// Redeliveries need not come in stream order.
		w = watch(t, c, opts)
		var again []uint64
		for len(handled)+len(again) < len(want) {
			ch := next(t, w)
			assert.NotContains(t, handled, ch.Seq, "acknowledged before the restart")
			if ch.Seq == unacked.Seq {
				assert.Equal(t, uint64(2), ch.Delivered, "seq %d was delivered before", ch.Seq)
			} else {
				// Delivered before if the client had fetched it ahead, which a
				// loaded machine may not have done.
				assert.Contains(t, []uint64{1, 2}, ch.Delivered, "seq %d", ch.Seq)
			}
			require.NoError(t, ch.Ack(stepCtx(t)))
			again = append(again, ch.Seq)
		}
		assert.Contains(t, again, unacked.Seq)
		assert.ElementsMatch(t, want, append(handled, again...))

		// Everything acknowledged: a restart delivers only new changes.
		w.Stop()
		w = watch(t, c, opts)
		later, err := c.Grant(stepCtx(t), events.Command{SubjectID: "late", Purpose: "newsletter"})
		require.NoError(t, err)
		ch := next(t, w)
		assert.Equal(t, later.Seq, ch.Seq)
		assert.Equal(t, uint64(1), ch.Delivered)
	})
}

// TestWatchSeesExpiry: subscribers learn of an expiry from the event.
func TestWatchSeesExpiry(t *testing.T) {
	clock := newManualClock(time.Now().UTC())
	st := startStack(t, stackOptions{now: clock.Now})
	w := watch(t, st.client, client.WatchOptions{})
	granted, err := st.client.Grant(stepCtx(t), events.Command{SubjectID: "ann", Purpose: "analytics", TTL: "1m"})
	require.NoError(t, err)
	assert.Equal(t, granted.Seq, next(t, w).Seq)

	clock.Advance(time.Minute)
	_, err = st.index.Wait(stepCtx(t), granted.Seq)
	require.NoError(t, err)
	e := ledger.NewExpirer(st.ledger, st.index, ledger.ExpirerOptions{Now: clock.Now})
	_, err = e.Sweep(stepCtx(t))
	require.NoError(t, err)
	ch := next(t, w)
	assert.Equal(t, events.TypeExpired, ch.Event.Type)
	assert.Equal(t, events.StateExpired, ch.Status.State)
	assert.False(t, ch.Status.Allowed)
}
