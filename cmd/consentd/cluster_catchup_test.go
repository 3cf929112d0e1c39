package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// catchUpMinSeqTimeout is the --min-seq-timeout of the consentd that falls
// behind in the catch-up tests.
const catchUpMinSeqTimeout = 2 * time.Second

// TestClusterFrozenInstanceCatchesUpAnsweringWithIndexSeq freezes a
// consentd (SIGSTOP: its connections stay open, nothing in it runs) while
// another writer appends, then lets it run again with requests waiting for
// it. While it catches up it answers at once, each status exactly the
// stream's state at the index_seq it reports; a caller with min_seq =
// the stream's head waits until the index has it; a caller with a min_seq
// the stream does not reach in time gets 503 after --min-seq-timeout, and
// one further than ledger.MinSeqMargin beyond the stream gets 503 at once.
func TestClusterFrozenInstanceCatchesUpAnsweringWithIndexSeq(t *testing.T) {
	begin := time.Now()
	c := natstest.RunCluster(t, 3)
	lagging := startChildProcess(t, "CONSENTD_NATS_URL="+c.URLs(), "CONSENTD_REPLICAS=3",
		"CONSENTD_DATA_DIR="+t.TempDir(), "CONSENTD_MIN_SEQ_TIMEOUT="+catchUpMinSeqTimeout.String())
	// The test writes through a Ledger of its own (another writer), so the
	// lagging consentd is the only one answering lookups.
	nc, err := nats.Connect(c.URLs())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(t.Context(), wire.DefaultStream)
	require.NoError(t, err)
	writer := ledger.New(js, stream, ledger.Options{})
	client := client.NewClient(nc, client.ClientOptions{Timeout: 30 * time.Second})

	watched := events.Key{Tenant: events.DefaultTenant, SubjectID: "watched@example.com", Purpose: "newsletter"}
	first, err := writer.Append(t.Context(), events.KindGrant, events.Command{SubjectID: watched.SubjectID, Purpose: watched.Purpose})
	require.NoError(t, err)
	st, err := client.Status(t.Context(), statusQuery(watched, first.Seq))
	require.NoError(t, err)
	require.Equal(t, events.StateGranted, st.State)

	// Frozen, it falls behind by many events, the watched consent's
	// revocation among them.
	lagging.pause()
	head := appendMany(t, writer, 16, 16, watched)
	t.Logf("consentd frozen at seq %d; the stream went on to seq %d (%s)", first.Seq, head, time.Since(begin))
	audit := auditStream(t, js)
	require.Equal(t, head, audit.lastSeq)

	// Requests wait for it in its connection.
	type answer struct {
		st  events.Status
		err error
		at  time.Time
	}
	ask := func(q wire.StatusQuery) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			st, err := client.Status(t.Context(), q)
			ch <- answer{st, err, time.Now()}
		}()
		return ch
	}
	plain := ask(statusQuery(watched, 0))
	waiting := ask(statusQuery(watched, head))
	future := ask(statusQuery(watched, head+1))
	farFuture := ask(statusQuery(watched, head+ledger.MinSeqMargin+1))
	require.NoError(t, nc.Flush())
	resumed := time.Now()
	lagging.resume()

	a := <-plain
	require.NoError(t, a.err)
	t.Logf("the first answer after resuming: index_seq %d of %d", a.st.IndexSeq, head)
	assert.Less(t, a.st.IndexSeq, head, "answered before catching up")
	assertStatusAt(t, audit, watched, a.st)

	// Asked again and again, it tells how far it has come, until it has
	// caught up; every answer is the state at the index_seq it reports.
	last, asked := a.st.IndexSeq, 0
	for ; last < head; asked++ {
		st, err := client.Status(t.Context(), statusQuery(watched, 0))
		require.NoError(t, err)
		require.GreaterOrEqual(t, st.IndexSeq, last, "index_seq went back")
		assertStatusAt(t, audit, watched, st)
		last = st.IndexSeq
	}

	t.Logf("caught up %s after resuming, answering %d lookups on the way", time.Since(resumed).Round(time.Millisecond), asked)
	a = <-waiting
	require.NoError(t, a.err, "min_seq = head waits for the catch-up")
	assert.GreaterOrEqual(t, a.st.IndexSeq, head)
	assert.Equal(t, events.StateRevoked, a.st.State)
	assertStatusAt(t, audit, watched, a.st)

	a = <-future
	require.ErrorIs(t, a.err, wire.ErrUnavailable, "min_seq just beyond the stream: 503 after the timeout")
	assert.GreaterOrEqual(t, a.at.Sub(resumed), catchUpMinSeqTimeout, "503 only once min_seq_timeout has passed")

	// Further than ledger.MinSeqMargin beyond the stream, it is not waited
	// for.
	a = <-farFuture
	require.ErrorIs(t, a.err, wire.ErrUnavailable)
	assert.Contains(t, a.err.Error(), "is beyond the stream's last sequence")
}

// TestClusterRestartedInstanceWaitsForCatchUpBeforeAnswering stops a
// consentd while another writer appends, then starts it again far behind.
// It never answers from the state it had when it stopped: a lookup
// without min_seq gets 503 until the index has caught up with the stream
// as it was at start, then the current state; a lookup with min_seq =
// the stream's head waits through the catch-up and is answered.
func TestClusterRestartedInstanceWaitsForCatchUpBeforeAnswering(t *testing.T) {
	c := natstest.RunCluster(t, 3)
	dataDir := t.TempDir()
	m := runOnCluster(t, c.URLs(), dataDir, "--min-seq-timeout", "20s")
	nc, err := nats.Connect(c.URLs())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(t.Context(), wire.DefaultStream)
	require.NoError(t, err)
	writer := ledger.New(js, stream, ledger.Options{})
	client := client.NewClient(nc, client.ClientOptions{Timeout: 30 * time.Second})

	watched := events.Key{Tenant: events.DefaultTenant, SubjectID: "watched@example.com", Purpose: "newsletter"}
	first, err := writer.Append(t.Context(), events.KindGrant, events.Command{SubjectID: watched.SubjectID, Purpose: watched.Purpose})
	require.NoError(t, err)
	_, err = client.Status(t.Context(), statusQuery(watched, first.Seq))
	require.NoError(t, err)
	require.NoError(t, m.Close())

	head := appendMany(t, writer, 16, 16, watched)
	audit := auditStream(t, js)

	// Lookups go out while it starts: before it serves lookups, which it
	// does only once it has caught up (no responders, a 503 to the
	// client), and after (current).
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var answered []events.Status
	var unavailable int
	wg.Go(func() {
		pace := time.NewTicker(time.Millisecond)
		defer pace.Stop()
		for ctx.Err() == nil {
			<-pace.C
			st, err := client.Status(ctx, statusQuery(watched, 0))
			mu.Lock()
			switch {
			case err == nil:
				answered = append(answered, st)
			case ctx.Err() == nil:
				assert.ErrorIs(t, err, wire.ErrUnavailable)
				unavailable++
			}
			mu.Unlock()
		}
	})
	waiting := make(chan error, 1)
	var waited events.Status
	wg.Go(func() {
		// Sent once consentd answers at all, possibly before it has
		// caught up: it waits rather than fail.
		pace := time.NewTicker(time.Millisecond)
		defer pace.Stop()
		for {
			<-pace.C
			st, err := client.Status(t.Context(), statusQuery(watched, head))
			if errors.Is(err, nats.ErrNoResponders) && t.Context().Err() == nil {
				continue
			}
			waited = st
			waiting <- err
			return
		}
	})
	runOnCluster(t, c.URLs(), dataDir, "--min-seq-timeout", "20s")
	require.NoError(t, <-waiting)
	mu.Lock()
	n := len(answered)
	mu.Unlock()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(answered) > n+3 }, 10*time.Second, time.Millisecond)
	cancel()
	wg.Wait()

	t.Logf("while starting: %d lookups got 503, %d were answered", unavailable, len(answered))
	assert.GreaterOrEqual(t, waited.IndexSeq, head)
	assertStatusAt(t, audit, watched, waited)
	for _, st := range answered {
		assert.GreaterOrEqual(t, st.IndexSeq, head, "answered from before the catch-up")
		assertStatusAt(t, audit, watched, st)
	}
}

// appendMany appends about n events through l from the given number of
// goroutines, granting and revoking consents of their own, and revokes
// watched in the middle of them. It returns the last seq.
func appendMany(t *testing.T, l *ledger.Ledger, goroutines, each int, watched events.Key) uint64 {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last uint64
	for g := range goroutines {
		wg.Go(func() {
			cmd := events.Command{SubjectID: fmt.Sprintf("busy-%d@example.com", g), Purpose: "analytics"}
			for i := range each {
				kind := events.KindGrant
				if i%2 == 1 {
					kind = events.KindRevoke
				}
				r, err := l.Append(t.Context(), kind, cmd)
				if !assert.NoError(t, err) {
					return
				}
				seq := r.Seq
				if g == 0 && i == each/2 {
					r, err := l.Append(t.Context(), events.KindRevoke, events.Command{SubjectID: watched.SubjectID, Purpose: watched.Purpose})
					if !assert.NoError(t, err) {
						return
					}
					seq = max(seq, r.Seq)
				}
				mu.Lock()
				last = max(last, seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
	return last
}

func statusQuery(k events.Key, minSeq uint64) wire.StatusQuery {
	return wire.StatusQuery{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose, MinSeq: minSeq}
}

// assertStatusAt checks that st is exactly the consent's state in the
// stream as of st.IndexSeq: an answer may be behind, but then it says so.
func assertStatusAt(t *testing.T, a *streamAudit, k events.Key, st events.Status) {
	t.Helper()
	want := a.consentAt(k, st.IndexSeq)
	assert.Equal(t, want.State, st.State, "state at index_seq %d", st.IndexSeq)
	assert.Equal(t, want.Seq, st.Seq, "seq at index_seq %d", st.IndexSeq)
	assert.Equal(t, want.EventID, st.EventID, "event at index_seq %d", st.IndexSeq)
}
