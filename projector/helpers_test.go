package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testStreamConfig is the CONSENT stream as the contract describes it.
func testStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       DefaultStream,
		Subjects:   []string{events.StreamSubjects},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardNew,
		DenyDelete: true,
		DenyPurge:  true,
	}
}

func createStream(tb testing.TB, js jetstream.JetStream, cfg jetstream.StreamConfig) jetstream.Stream {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, cfg)
	require.NoError(tb, err)
	return s
}

// recreateStream creates a stream whose namesake was just deleted. The
// server removes the old store after it has answered the delete, and
// refuses to create the new one until it is gone (10049, "error creating
// store for stream"): that refusal is waited out, any other error fails.
func recreateStream(tb testing.TB, js jetstream.JetStream, cfg jetstream.StreamConfig) jetstream.Stream {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		s, err := js.CreateStream(ctx, cfg)
		var apiErr *jetstream.APIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode != 10049 || ctx.Err() != nil {
			require.NoError(tb, err)
			return s
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// history writes random but legal consent histories the way the ledger
// does (events.Decide, Seal, the headers, expected per-subject sequence)
// and keeps the clean fold of everything it wrote: the model the index must
// equal. It assumes it is the stream's only writer, starting at seq 1.
type history struct {
	rng      *rand.Rand
	now      time.Time
	keys     []events.Key
	lastSeq  map[string]uint64 // NATS subject -> seq of its last message
	seq      uint64            // last seq written
	model    map[events.Key]events.Consent
	taints   map[string]uint64 // NATS subject -> seq of its first bad message
	messages []*nats.Msg       // what to publish, in order
}

// testSubjectIDs are data subject ids with the characters the contract
// allows and NATS subjects do not.
var testSubjectIDs = []string{
	"alice@example.com", "bob.smith", "x*y>z", "späce user", "carol", "dave.>",
	"émile", "\u4e2d\u6587", "a", "ab",
}

func newHistory(seed uint64, tenants, subjects, purposes int) *history {
	h := &history{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		lastSeq: make(map[string]uint64),
		model:   make(map[events.Key]events.Consent),
		taints:  make(map[string]uint64),
	}
	for t := range tenants {
		for s := range subjects {
			for p := range purposes {
				subjectID := testSubjectIDs[s%len(testSubjectIDs)]
				if s >= len(testSubjectIDs) {
					subjectID = fmt.Sprintf("%s-%d", subjectID, s)
				}
				h.keys = append(h.keys, events.Key{
					Tenant:    fmt.Sprintf("t%d", t),
					SubjectID: subjectID,
					Purpose:   fmt.Sprintf("purpose_%d", p),
				})
			}
		}
	}
	return h
}

// add decides n random commands (refused ones are drawn again), seals the
// events and queues them.
func (h *history) add(tb testing.TB, n int) {
	tb.Helper()
	for added := 0; added < n; {
		k := h.keys[h.rng.IntN(len(h.keys))]
		kind := events.Kinds[h.rng.IntN(len(events.Kinds))]
		cmd := events.Command{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose, PolicyVersion: 1 + h.rng.IntN(3), Actor: "test"}
		switch kind {
		case events.KindGrant:
			if h.rng.IntN(2) == 0 {
				cmd.TTL = fmt.Sprintf("%dm", 1+h.rng.IntN(120))
			}
		case events.KindRequest:
			cmd.Description = "may we?"
		case events.KindDeny, events.KindRevoke:
			cmd.Reason = "no"
		}
		h.now = h.now.Add(time.Duration(1+h.rng.IntN(60)) * time.Second)
		cur, ok := h.model[k]
		if !ok {
			cur = events.NewConsent(k)
		}
		ev, err := events.Decide(cur, kind, cmd, h.now)
		if err != nil {
			require.ErrorIs(tb, err, events.ErrForbidden)
			continue
		}
		ev.ID = uuid.Must(uuid.NewV7()).String()
		payload, err := ev.Seal()
		require.NoError(tb, err)
		h.queue(k.NATSSubject(), string(ev.Type), payload)
		decoded, err := events.Decode(payload)
		require.NoError(tb, err)
		h.model[k] = events.Evolve(cur, decoded, h.seq)
		added++
	}
}

// queue adds a raw message to publish with the ledger's headers and the
// expected last sequence of its subject; it returns the message's seq.
func (h *history) queue(subj, eventType string, payload []byte) uint64 {
	msg := nats.NewMsg(subj)
	msg.Data = payload
	msg.Header.Set(events.HeaderMsgID, uuid.NewString())
	if eventType != "" {
		msg.Header.Set(events.HeaderEventType, eventType)
	}
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(h.lastSeq[subj]))
	h.seq++
	h.lastSeq[subj] = h.seq
	h.messages = append(h.messages, msg)
	return h.seq
}

// queueBad queues a message that fails an integrity check: it marks the
// consent of its subject, when its subject names one.
func (h *history) queueBad(subj, eventType string, payload []byte) uint64 {
	seq := h.queue(subj, eventType, payload)
	if _, ok := h.taints[subj]; !ok && taintable(subj) {
		h.taints[subj] = seq
	}
	return seq
}

// want returns the state the index must answer for k: the clean fold,
// with the first bad message of its subject.
func (h *history) want(k events.Key) (events.Consent, bool) {
	c, ok := h.model[k]
	if !ok {
		c = events.NewConsent(k)
	}
	c.ViolationSeq = h.taints[k.NATSSubject()]
	return c, ok
}

// publish sends every queued message, in windows the client does not
// stall on, and checks each landed at the sequence the model gave it.
func (h *history) publish(tb testing.TB, js jetstream.JetStream) {
	tb.Helper()
	const window = 1000
	seq := h.seq - uint64(len(h.messages))
	for chunk := range slices.Chunk(h.messages, window) {
		acks := make([]jetstream.PubAckFuture, 0, len(chunk))
		for _, msg := range chunk {
			f, err := js.PublishMsgAsync(msg)
			require.NoError(tb, err)
			acks = append(acks, f)
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			tb.Fatal("publish did not complete in 30s")
		}
		for _, f := range acks {
			seq++
			select {
			case ack := <-f.Ok():
				require.Equal(tb, seq, ack.Sequence)
			case err := <-f.Err():
				tb.Fatalf("publish of seq %d: %v", seq, err)
			}
		}
	}
	h.messages = h.messages[:0]
}

// persons returns every (tenant, subject) pair of the history's keys.
func (h *history) persons() [][2]string {
	seen := map[[2]string]bool{}
	var out [][2]string
	for _, k := range h.keys {
		p := [2]string{k.Tenant, k.SubjectID}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// testLogger sends a component's logs to the test's output.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// runProjector starts p.Run and returns a function that stops it and
// returns Run's error.
func runProjector(tb testing.TB, p *Projector) (stop func() error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-errc
		}
		return err
	}
	tb.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor waits until idx has applied seq.
func waitFor(tb testing.TB, idx *Index, seq uint64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := idx.Wait(ctx, seq)
	require.NoError(tb, err, "index at %d, waiting for %d", idx.Checkpoint(), seq)
}

func openIndex(tb testing.TB, dir string, opts IndexOptions) *Index {
	tb.Helper()
	idx, err := Open(dir, opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = idx.Close() })
	return idx
}

// assertMatchesModel checks every consent and every person's list against
// the clean fold.
func assertMatchesModel(t *testing.T, idx *Index, h *history) {
	t.Helper()
	ctx := context.Background()
	for _, k := range h.keys {
		want, _ := h.want(k)
		got, _, err := idx.Consent(ctx, k, 0)
		require.NoError(t, err)
		assert.Equal(t, want, got, "consent %+v", k)
	}
	for _, p := range h.persons() {
		got, _, err := idx.Consents(ctx, events.Key{Tenant: p[0], SubjectID: p[1]}, 0)
		require.NoError(t, err)
		var want []events.Consent
		for _, k := range h.keys {
			if c, ok := h.want(k); ok && k.Tenant == p[0] && k.SubjectID == p[1] {
				want = append(want, c)
			}
		}
		slices.SortFunc(want, func(a, b events.Consent) int { return strings.Compare(a.Purpose, b.Purpose) })
		if want == nil {
			want = []events.Consent{}
		}
		assert.Equal(t, want, got, "person %q", p)
	}
}

// nextEvent decides a legal next event for k (a request at a higher policy
// version) without recording it in the model: the raw material of forged
// and tampered messages.
func (h *history) nextEvent(tb testing.TB, k events.Key) events.Event {
	tb.Helper()
	cur, ok := h.model[k]
	if !ok {
		cur = events.NewConsent(k)
	}
	h.now = h.now.Add(time.Second)
	ev, err := events.Decide(cur, events.KindRequest, events.Command{
		Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose, PolicyVersion: cur.PolicyVersion + 1,
	}, h.now)
	require.NoError(tb, err)
	ev.ID = uuid.Must(uuid.NewV7()).String()
	return ev
}

// sealed seals ev and returns its payload.
func sealed(tb testing.TB, ev events.Event) []byte {
	tb.Helper()
	payload, err := ev.Seal()
	require.NoError(tb, err)
	return payload
}

// resealedWith adds a member to a payload and recomputes its hash, as a
// newer writer adding a field would.
func resealedWith(tb testing.TB, payload []byte, name string, value any) []byte {
	tb.Helper()
	var m map[string]any
	require.NoError(tb, json.Unmarshal(payload, &m))
	m[name] = value
	raw, err := json.Marshal(m)
	require.NoError(tb, err)
	sum, err := events.HashOf(raw)
	require.NoError(tb, err)
	m["hash"] = sum
	raw, err = json.Marshal(m)
	require.NoError(tb, err)
	return raw
}
