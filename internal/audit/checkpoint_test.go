package audit_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testClock is a settable clock for checkpointers.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newCheckpointer(t testing.TB, js jetstream.JetStream, s *audit.Signer, clock *testClock) *audit.Checkpointer {
	t.Helper()
	c, err := audit.NewCheckpointer(js, audit.CheckpointerOptions{Signer: s, Interval: time.Minute, Now: clock.Now})
	require.NoError(t, err)
	return c
}

func once(t testing.TB, c *audit.Checkpointer) audit.CheckpointResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Once(ctx)
	require.NoError(t, err)
	return res
}

func TestCheckpointsVerifyWithThePublicKey(t *testing.T) {
	tl := newTestLedger(t)
	signer, pub := newSigner(t)
	clock := &testClock{t: t0.Add(30 * time.Second)}
	cp := newCheckpointer(t, tl.js, signer, clock)

	last := tl.history(20)
	res := once(t, cp)
	require.True(t, res.Published, res.Skipped)
	assert.Equal(t, last+1, res.Seq)
	assert.Equal(t, last, res.Checkpoint.UpToSeq)
	assert.Equal(t, signer.KeyID(), res.Checkpoint.KeyID)

	tl.history(3)
	res = once(t, cp)
	assert.False(t, res.Published, "one checkpoint per window")
	assert.Contains(t, res.Skipped, "this window's checkpoint")

	clock.Add(time.Minute)
	last = tl.history(10)
	res = once(t, cp)
	require.True(t, res.Published, res.Skipped)
	assert.Equal(t, last, res.Checkpoint.UpToSeq, "the chain continues across checkpoints")
	secondSeq := res.Seq

	clock.Add(time.Minute)
	res = once(t, cp)
	assert.False(t, res.Published)
	assert.Equal(t, "nothing new since the last checkpoint", res.Skipped)

	r := verify(t, tl.js, audit.VerifyOptions{Keys: audit.NewKeyring(pub)})
	assert.True(t, r.OK(), "problems: %v", r.Problems)
	assert.True(t, r.Signed)
	assert.Equal(t, uint64(2), r.Checkpoints)
	assert.Equal(t, uint64(2), r.Verified)
	assert.Equal(t, last, r.UpToSeq, "the last verified sequence")
	require.NotNil(t, r.LastVerified)
	assert.Equal(t, secondSeq, r.LastVerified.Seq)

	unsigned := verify(t, tl.js, audit.VerifyOptions{})
	assert.True(t, unsigned.OK())
	assert.False(t, unsigned.Signed)
	assert.Equal(t, uint64(2), unsigned.Verified, "chains still checked without a key")

	// A second key the auditor does not trust.
	other, _ := newSigner(t)
	r = verify(t, tl.js, audit.VerifyOptions{Keys: audit.NewKeyring(other.Public())})
	require.False(t, r.OK())
	assert.Equal(t, audit.CheckCheckpoint, r.First().Check)
	assert.Contains(t, r.First().Reason, "unknown key")
	assert.Zero(t, r.Verified)
}

// Several consentd instances run a checkpointer each against one stream:
// in every window exactly one checkpoint lands, whoever gets there first.
func TestCheckpointerExactlyOncePerWindow(t *testing.T) {
	tl := newTestLedger(t)
	signer, pub := newSigner(t)
	clock := &testClock{t: t0}
	const instances = 4
	var cps []*audit.Checkpointer
	for range instances {
		nc := natstest.Connect(t, tl.srv)
		cps = append(cps, newCheckpointer(t, natstest.JetStream(t, nc), signer, clock))
	}

	for window := range 3 {
		tl.history(7)
		results := make(chan audit.CheckpointResult, instances)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, cp := range cps {
			wg.Go(func() {
				<-start
				results <- once(t, cp)
			})
		}
		close(start)
		wg.Wait()
		close(results)
		published := 0
		for res := range results {
			if res.Published {
				published++
			} else {
				assert.NotEmpty(t, res.Skipped)
			}
		}
		assert.Equal(t, 1, published, "window %d", window)
		clock.Add(time.Minute)
	}

	r := verify(t, tl.js, audit.VerifyOptions{Keys: audit.NewKeyring(pub)})
	assert.True(t, r.OK(), "problems: %v", r.Problems)
	assert.Equal(t, uint64(3), r.Checkpoints)
	assert.Equal(t, uint64(3), r.Verified)
}

// An operator rewrites history: one event is edited, its hash and every
// later hash and prev_hash of that consent recomputed, so that every
// event and link checks out. The signed checkpoints, copied over as they
// were (they cannot be re-signed without the private key), no longer
// match the chain. A checkpoint re-signed with another key is refused.
func TestVerifyDetectsRewrittenHistory(t *testing.T) {
	tl := newTestLedger(t)
	signer, pub := newSigner(t)
	clock := &testClock{t: t0}
	cp := newCheckpointer(t, tl.js, signer, clock)

	tl.history(15)
	clock.Add(time.Minute)
	first := once(t, cp)
	require.True(t, first.Published)
	target := tl.append(events.KindGrant, "carol@example.com", "analytics", func(c *events.Command) { c.Actor = "import-2025" })
	tl.history(10)
	tl.append(events.KindRevoke, "carol@example.com", "analytics")
	tl.history(5)
	clock.Add(time.Minute)
	second := once(t, cp)
	require.True(t, second.Published)
	tl.history(5)

	original := readAll(t, tl.js)
	rewritten := rewrite(t, original, target.Seq, func(ev *events.Event) { ev.Actor = "subject" })

	_, _, js := natstest.Run(t)
	copyStream(t, js, rewritten)

	plain := verify(t, js, audit.VerifyOptions{})
	require.False(t, plain.OK(), "the chain gives the rewrite away even without the key")

	r := verify(t, js, audit.VerifyOptions{Keys: audit.NewKeyring(pub)})
	require.False(t, r.OK())
	assert.Equal(t, uint64(1), r.ProblemCount, "every event hash and link checks out; only the checkpoint fails")
	bad := r.First()
	assert.Equal(t, second.Seq, bad.Seq)
	assert.Equal(t, audit.CheckCheckpoint, bad.Check)
	assert.Contains(t, bad.Reason, "was changed, inserted or removed after the checkpoint was made")
	assert.Equal(t, first.Checkpoint.UpToSeq, r.UpToSeq, "the last verified sequence is the checkpoint before the rewrite")

	// The forger re-signs the second checkpoint with a key of their own.
	forgerKey, _ := newSigner(t)
	chain := &audit.Chain{}
	for _, m := range rewritten[:second.Checkpoint.UpToSeq] {
		require.NoError(t, chain.Add(m.Seq, m.Subject, m.Data))
	}
	_, resigned, err := audit.NewCheckpoint(forgerKey, chain, second.Checkpoint.Time)
	require.NoError(t, err)
	rewritten[second.Seq-1].Data = resigned
	_, _, js2 := natstest.Run(t)
	copyStream(t, js2, rewritten)
	r = verify(t, js2, audit.VerifyOptions{Keys: audit.NewKeyring(pub)})
	require.False(t, r.OK())
	assert.Equal(t, second.Seq, r.First().Seq)
	assert.Contains(t, r.First().Reason, "unknown key")
}

func TestVerifyRefusesAlteredCheckpoint(t *testing.T) {
	tl := newTestLedger(t)
	signer, pub := newSigner(t)
	clock := &testClock{t: t0}
	tl.history(5)
	res := once(t, newCheckpointer(t, tl.js, signer, clock))
	require.True(t, res.Published)

	altered := *res.Checkpoint
	altered.Time = altered.Time.Add(-time.Hour) // claims to be older
	payload, err := json.Marshal(altered)
	require.NoError(t, err)
	seq := tl.publishRaw(events.CheckpointSubject, "", payload)

	r := verify(t, tl.js, audit.VerifyOptions{Keys: audit.NewKeyring(pub)})
	require.False(t, r.OK())
	assert.Equal(t, seq, r.First().Seq)
	assert.Contains(t, r.First().Reason, "signature does not verify")
	assert.Equal(t, uint64(1), r.Verified)
}

// readAll returns every message of the stream, in order.
func readAll(t testing.TB, js jetstream.JetStream) []audit.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []audit.Msg
	_, err := audit.Replay(ctx, js, audit.ReplayOptions{Idle: 100 * time.Millisecond}, func(m *audit.Msg) error {
		out = append(out, *m)
		return nil
	})
	require.NoError(t, err)
	return out
}

// rewrite edits the event at seq and reseals it and every later event of
// the same consent, relinking them: a history whose every hash and link
// checks out.
func rewrite(t testing.TB, msgs []audit.Msg, seq uint64, edit func(*events.Event)) []audit.Msg {
	t.Helper()
	out := make([]audit.Msg, len(msgs))
	copy(out, msgs)
	var subj, prevHash string
	for i := range out {
		m := &out[i]
		if m.Seq < seq || (m.Seq > seq && m.Subject != subj) {
			continue
		}
		ev, err := events.Decode(m.Data)
		require.NoError(t, err)
		if m.Seq == seq {
			subj = m.Subject
			edit(ev)
		} else {
			ev.PrevHash = prevHash
		}
		m.Data, err = ev.Seal()
		require.NoError(t, err)
		prevHash = ev.Hash
	}
	return out
}

// copyStream creates the CONSENT stream on js and publishes msgs into it
// in order, at the same sequences.
func copyStream(t testing.TB, js jetstream.JetStream, msgs []audit.Msg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	require.NoError(t, err)
	for _, m := range msgs {
		msg := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{}}
		for _, h := range []string{events.HeaderEventType, events.HeaderMsgID} {
			if v := m.Header.Get(h); v != "" {
				msg.Header.Set(h, v)
			}
		}
		ack, err := js.PublishMsg(ctx, msg)
		require.NoError(t, err)
		require.Equal(t, m.Seq, ack.Sequence)
	}
}
