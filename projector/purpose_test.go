package projector

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// purposeStreamConfig is the test stream capturing the purpose registry
// too.
func purposeStreamConfig() jetstream.StreamConfig {
	cfg := testStreamConfig()
	cfg.Subjects = append(cfg.Subjects, events.PurposeSubjects)
	return cfg
}

// setPurpose decides and queues a purpose.set event on h, returning the
// event and its seq. cur is the purpose's state, updated.
func (h *history) setPurpose(tb testing.TB, cur *events.Purpose, c events.PurposeCommand) (events.PurposeEvent, uint64) {
	tb.Helper()
	h.now = h.now.Add(time.Second)
	ev, err := events.DecidePurpose(*cur, c, h.now)
	require.NoError(tb, err)
	ev.ID = uuid.Must(uuid.NewV7()).String()
	payload, err := ev.Seal()
	require.NoError(tb, err)
	seq := h.queue(ev.Key().NATSSubject(), string(ev.Type), payload)
	*cur = events.EvolvePurpose(*cur, &ev, seq)
	return ev, seq
}

func TestProjectorFoldsPurposes(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, purposeStreamConfig())
	h := newHistory(7, 2, 3, 2)
	h.add(t, 40)

	news := events.NewPurpose(events.PurposeKey{Tenant: "t0", Purpose: "purpose_0"})
	other := events.NewPurpose(events.PurposeKey{Tenant: "t0", Purpose: "purpose_1"})
	elsewhere := events.NewPurpose(events.PurposeKey{Tenant: "t1", Purpose: "purpose_0"})
	h.setPurpose(t, &news, events.PurposeCommand{Tenant: "t0", Purpose: "purpose_0", Description: ptr("News"), DefaultTTL: ptr("720h")})
	h.add(t, 20)
	h.setPurpose(t, &other, events.PurposeCommand{Tenant: "t0", Purpose: "purpose_1", PolicyVersion: 4})
	h.setPurpose(t, &elsewhere, events.PurposeCommand{Tenant: "t1", Purpose: "purpose_0"})
	h.setPurpose(t, &news, events.PurposeCommand{Tenant: "t0", Purpose: "purpose_0", PolicyVersion: 2})

	// Bad purpose events are violations, as bad consent events are.
	type wantViolation struct {
		seq   uint64
		check string
	}
	var want []wantViolation
	forge := func() events.PurposeEvent {
		h.now = h.now.Add(time.Second)
		ev, err := events.DecidePurpose(news, events.PurposeCommand{Tenant: "t0", Purpose: "purpose_0", PolicyVersion: 9}, h.now)
		require.NoError(t, err)
		ev.ID = uuid.Must(uuid.NewV7()).String()
		return ev
	}
	seal := func(ev events.PurposeEvent) []byte {
		payload, err := ev.Seal()
		require.NoError(t, err)
		return payload
	}
	unlinked := forge()
	unlinked.PrevHash = ""
	want = append(want, wantViolation{h.queue(news.Key().NATSSubject(), string(events.TypePurposeSet), seal(unlinked)), CheckLink})
	tampered := bytes.Replace(seal(forge()), []byte(`"policy_version":9`), []byte(`"policy_version":1`), 1)
	want = append(want, wantViolation{h.queue(news.Key().NATSSubject(), string(events.TypePurposeSet), tampered), CheckHash})
	want = append(want, wantViolation{h.queue(other.Key().NATSSubject(), string(events.TypePurposeSet), seal(forge())), CheckSubject})
	want = append(want, wantViolation{h.queue(news.Key().NATSSubject(), "", seal(forge())), CheckHeader})
	want = append(want, wantViolation{h.queue("consent.purposes.t0.purpose_0", "purpose.set", []byte(`{"v":1}`)), CheckDecode})
	// A newer schema that is not sealed is a stray message, not a newer
	// writer's: no reason to stop.
	want = append(want, wantViolation{h.queue("consent.purposes.t0.purpose_0", "", []byte(`{"v":2}`)), CheckDecode})
	h.add(t, 20)
	h.publish(t, js)

	dir := t.TempDir()
	idx, err := Open(dir, IndexOptions{})
	require.NoError(t, err)
	stop := runProjector(t, New(js, idx, Options{MaxBatch: 16, Logger: testLogger(t)}))
	waitFor(t, idx, h.seq)
	assertMatchesModel(t, idx, h)

	violations, err := idx.Violations()
	require.NoError(t, err)
	require.Len(t, violations, len(want))
	for i, v := range violations {
		assert.Equal(t, want[i].seq, v.Seq, "violation %d", i)
		assert.Equal(t, want[i].check, v.Check, "violation %d: %s", i, v)
	}

	check := func(idx *Index) {
		t.Helper()
		ctx := context.Background()
		for _, p := range []events.Purpose{news, other, elsewhere} {
			got, seq, err := idx.Purpose(ctx, p.Key(), 0)
			require.NoError(t, err)
			assert.Equal(t, h.seq, seq)
			assert.Equal(t, p, got)
		}
		assert.Equal(t, 2, news.PolicyVersion)
		assert.Equal(t, "News", news.Description, "kept across sets")
		got, _, err := idx.Purpose(ctx, events.PurposeKey{Tenant: "t0", Purpose: "never_set"}, 0)
		require.NoError(t, err)
		assert.Equal(t, events.NewPurpose(events.PurposeKey{Tenant: "t0", Purpose: "never_set"}), got)
		assert.False(t, got.Registered)

		list, _, err := idx.Purposes(ctx, "t0", 0)
		require.NoError(t, err)
		assert.Equal(t, []events.Purpose{news, other}, list, "one tenant's, ordered by name")
		list, _, err = idx.Purposes(ctx, "nobody", 0)
		require.NoError(t, err)
		assert.Equal(t, []events.Purpose{}, list)
	}
	check(idx)

	// Reopened, the index has them from Pebble.
	require.NoError(t, stop())
	require.NoError(t, idx.Close())
	idx = openIndex(t, dir, IndexOptions{ReadyOnOpen: true})
	check(idx)
}

func TestProjectorStopsAtUnknownPurposeType(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, purposeStreamConfig())
	h := newHistory(8, 1, 1, 1)
	h.add(t, 3)
	p := events.NewPurpose(events.PurposeKey{Tenant: "t0", Purpose: "purpose_0"})
	h.setPurpose(t, &p, events.PurposeCommand{Tenant: "t0", Purpose: "purpose_0"})
	future := resealedWith(t, []byte(`{"v":1,"id":"x","type":"purpose.retired","tenant":"t0","purpose":"purpose_0","policy_version":1,"occurred_at":"2026-01-01T00:00:00Z","recorded_at":"2026-01-01T00:00:00Z","prev_hash":""}`), "sunset", "2030-01-01")
	stopSeq := h.queue(p.Key().NATSSubject(), "purpose.retired", future)
	h.add(t, 2)
	h.publish(t, js)

	idx := openIndex(t, t.TempDir(), IndexOptions{})
	err := New(js, idx, Options{Logger: testLogger(t)}).Run(context.Background())
	var stop *StopError
	require.ErrorAs(t, err, &stop)
	require.ErrorIs(t, err, events.ErrUnknownType)
	assert.Equal(t, stopSeq, stop.Seq)
	assert.Equal(t, stopSeq-1, idx.Checkpoint(), "everything before it is applied")
}

func ptr[T any](v T) *T { return &v }
