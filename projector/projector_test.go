package projector

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProjectorFoldsStreamAndRecordsViolations(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	h := newHistory(1, 2, 4, 3)
	h.add(t, 150)

	type wantViolation struct {
		seq   uint64
		check string
	}
	var want []wantViolation
	k := h.keys[0]
	for _, ok := h.model[k]; !ok; _, ok = h.model[k] {
		h.add(t, 1) // make sure k has a history to break
	}
	other := h.keys[len(h.keys)-1]

	forged := h.nextEvent(t, k)
	forged.PrevHash = "0000000000000000000000000000000000000000000000000000000000000000"
	want = append(want, wantViolation{h.queueBad(k.NATSSubject(), string(forged.Type), sealed(t, forged)), CheckLink})

	tampered := sealed(t, h.nextEvent(t, k))
	tampered = bytes.Replace(tampered, []byte(`"policy_version":`), []byte(`"policy_version":9`), 1)
	want = append(want, wantViolation{h.queueBad(k.NATSSubject(), string(events.TypeRequested), tampered), CheckHash})

	misplaced := h.nextEvent(t, k)
	want = append(want, wantViolation{h.queueBad(other.NATSSubject(), string(misplaced.Type), sealed(t, misplaced)), CheckSubject})

	headless := h.nextEvent(t, k)
	want = append(want, wantViolation{h.queueBad(k.NATSSubject(), "", sealed(t, headless)), CheckHeader})

	want = append(want, wantViolation{h.queueBad(k.NATSSubject(), string(events.TypeGranted), []byte("not json")), CheckDecode})
	want = append(want, wantViolation{h.queueBad("consent.events.stray", "", []byte(`{"hello":"world"}`)), CheckDecode})
	want = append(want, wantViolation{h.queueBad(k.NATSSubject(), "", []byte(`{"v":1}`)), CheckDecode})
	h.add(t, 150)
	h.publish(t, js)

	idx := openIndex(t, t.TempDir(), IndexOptions{})
	p := New(js, idx, Options{MaxBatch: 64, Logger: testLogger(t)})
	stop := runProjector(t, p)
	waitFor(t, idx, h.seq)

	assertMatchesModel(t, idx, h)
	violations, err := idx.Violations()
	require.NoError(t, err)
	require.Len(t, violations, len(want))
	for i, v := range violations {
		assert.Equal(t, want[i].seq, v.Seq, "violation %d", i)
		assert.Equal(t, want[i].check, v.Check, "violation %d: %s", i, v)
		assert.NotEmpty(t, v.Reason)
		assert.False(t, v.Timestamp.IsZero())
	}
	assert.Equal(t, forged.ID, violations[0].EventID)
	assert.Equal(t, "consent.events.stray", violations[5].Subject)

	assert.Equal(t, Health{IndexSeq: h.seq, StreamSeq: h.seq, Violations: len(want), Running: true, Ready: true, Folded: h.seq, Rebuilds: 1}, p.Health())

	require.NoError(t, stop())
	assert.Equal(t, Health{IndexSeq: h.seq, StreamSeq: h.seq, Violations: len(want), Folded: h.seq, Rebuilds: 1}, p.Health())
	_, _, err = idx.Consent(context.Background(), k, 0)
	require.ErrorIs(t, err, events.ErrNotReady, "no projector keeps the index current")
}

func TestProjectorReadYourWrites(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	idx := openIndex(t, t.TempDir(), IndexOptions{})

	k := events.Key{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email"}
	_, _, err := idx.Consent(context.Background(), k, 0)
	require.ErrorIs(t, err, events.ErrNotReady, "before a projector runs")

	runProjector(t, New(js, idx, Options{Logger: testLogger(t)}))
	require.Eventually(t, idx.Ready, 10*time.Second, 5*time.Millisecond)

	got, seq, err := idx.Consent(context.Background(), k, 0)
	require.NoError(t, err)
	assert.Equal(t, events.NewConsent(k), got)
	assert.Zero(t, seq)

	type result struct {
		c   events.Consent
		seq uint64
		err error
	}
	waiting := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, seq, err := idx.Consent(ctx, k, 1)
		waiting <- result{c, seq, err}
	}()

	h := newHistory(2, 1, 1, 1)
	h.keys = []events.Key{k}
	h.add(t, 1)
	h.publish(t, js)
	r := <-waiting
	require.NoError(t, r.err)
	assert.Equal(t, uint64(1), r.seq)
	assert.Equal(t, h.model[k], r.c)

	list, seq, err := idx.Consents(context.Background(), k, 1)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), seq)
	assert.Equal(t, []events.Consent{h.model[k]}, list)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = idx.Consents(ctx, k, 2)
	require.ErrorIs(t, err, events.ErrStale)
	require.NotErrorIs(t, err, events.ErrNotReady)
}

func TestProjectorResumesAtCheckpoint(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	dir := t.TempDir()
	h := newHistory(3, 1, 5, 3)
	h.add(t, 200)
	h.publish(t, js)

	idx := openIndex(t, dir, IndexOptions{})
	stop := runProjector(t, New(js, idx, Options{Logger: testLogger(t)}))
	waitFor(t, idx, h.seq)
	require.NoError(t, stop())
	require.NoError(t, idx.Close())

	// More events, one of them a violation, while no projector runs.
	h.add(t, 100)
	bad := h.queueBad(h.keys[0].NATSSubject(), string(events.TypeGranted), []byte(`{}`))
	h.add(t, 100)
	h.publish(t, js)

	idx = openIndex(t, dir, IndexOptions{})
	assert.Equal(t, uint64(200), idx.Checkpoint(), "checkpoint survives a reopen")
	p := New(js, idx, Options{Logger: testLogger(t)})
	stop = runProjector(t, p)
	waitFor(t, idx, h.seq)
	require.NoError(t, stop())

	// Had it resumed before checkpoint+1, re-applied events would break
	// their links and show up as violations; after it, the model would
	// differ.
	idx2, err := Open(dir, IndexOptions{ReadyOnOpen: true})
	require.ErrorIs(t, err, ErrLocked)
	assert.Nil(t, idx2)
	v, err := idx.Violations()
	require.NoError(t, err)
	require.Len(t, v, 1)
	assert.Equal(t, bad, v[0].Seq)

	// A third run with nothing new is ready at once and changes nothing.
	stop = runProjector(t, p)
	require.Eventually(t, idx.Ready, 10*time.Second, 5*time.Millisecond)
	assertMatchesModel(t, idx, h)
	assert.Equal(t, 1, p.Health().Violations)
	require.NoError(t, stop())
}

func TestProjectorStopsOnWhatItCannotApply(t *testing.T) {
	newerSchema := func(tb testing.TB, ev events.Event) []byte {
		ev.V = events.SchemaVersion + 1
		return sealed(tb, ev)
	}
	unknownType := func(tb testing.TB, ev events.Event) []byte {
		ev.Type = "consent.paused"
		return sealed(tb, ev)
	}
	tests := []struct {
		name    string
		payload func(testing.TB, events.Event) []byte
		want    error
	}{
		{"newer schema", newerSchema, events.ErrNewerSchema},
		{"newer schema with a new field", func(tb testing.TB, ev events.Event) []byte {
			return resealedWith(tb, newerSchema(tb, ev), "channel", "sms")
		}, events.ErrNewerSchema},
		{"unknown type", unknownType, events.ErrUnknownType},
		{"unknown type with a new field", func(tb testing.TB, ev events.Event) []byte {
			return resealedWith(tb, unknownType(tb, ev), "pause_until", "2027-01-01T00:00:00Z")
		}, events.ErrUnknownType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, js := natstest.Run(t)
			createStream(t, js, testStreamConfig())
			h := newHistory(4, 1, 2, 2)
			h.add(t, 20)
			k := h.keys[0]
			ev := h.nextEvent(t, k)
			badSeq := h.queue(k.NATSSubject(), "consent.future", tt.payload(t, ev))
			h.add(t, 5)
			h.publish(t, js)

			idx := openIndex(t, t.TempDir(), IndexOptions{})
			p := New(js, idx, Options{MaxBatch: 7, Logger: testLogger(t)})
			for range 2 { // a restart stops at the same event: nothing is skipped
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := p.Run(ctx)
				cancel()
				var stopErr *StopError
				require.ErrorAs(t, err, &stopErr)
				require.ErrorIs(t, err, tt.want)
				assert.Equal(t, badSeq, stopErr.Seq)
				assert.Equal(t, k.NATSSubject(), stopErr.Subject)
				assert.Equal(t, badSeq-1, idx.Checkpoint(), "everything before it is committed")

				health := p.Health()
				assert.Equal(t, err.Error(), health.Err)
				assert.False(t, health.Running)
				assert.False(t, health.Ready)
				assert.Equal(t, h.seq, health.StreamSeq)
				assert.Equal(t, badSeq, health.StopSeq, "health names the sequence")
				if errors.Is(tt.want, events.ErrNewerSchema) {
					assert.Equal(t, events.SchemaVersion+1, health.NewerVersion, "and the version")
				} else {
					assert.Equal(t, events.SchemaVersionClear, health.NewerVersion, "the version of the event the ledger writes today")
					assert.NotEmpty(t, health.NewerType)
				}
				_, _, err = idx.Consent(context.Background(), k, 0)
				require.ErrorIs(t, err, events.ErrNotReady)
			}
		})
	}
}

func TestProjectorStopsOnGap(t *testing.T) {
	_, _, js := natstest.Run(t)
	cfg := testStreamConfig()
	cfg.DenyDelete = false // only to make the gap
	stream := createStream(t, js, cfg)
	h := newHistory(5, 1, 3, 1)
	h.add(t, 3)
	h.publish(t, js)
	require.NoError(t, stream.DeleteMsg(context.Background(), 2))

	idx := openIndex(t, t.TempDir(), IndexOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := New(js, idx, Options{Logger: testLogger(t)}).Run(ctx)
	var stopErr *StopError
	require.ErrorAs(t, err, &stopErr)
	require.ErrorIs(t, err, ErrGap)
	assert.Equal(t, uint64(3), stopErr.Seq)
	assert.Equal(t, uint64(1), idx.Checkpoint())
}

func TestProjectorRefusesAnotherStream(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	h := newHistory(6, 1, 2, 2)
	h.add(t, 10)
	h.publish(t, js)
	idx := openIndex(t, t.TempDir(), IndexOptions{})
	stop := runProjector(t, New(js, idx, Options{Logger: testLogger(t)}))
	waitFor(t, idx, h.seq)
	require.NoError(t, stop())

	t.Run("ahead of the stream", func(t *testing.T) {
		// As if the stream had been restored from an older backup.
		b, err := idx.newBatch()
		require.NoError(t, err)
		require.NoError(t, idx.commit(b, nil, nil, h.seq+5, 0))
		require.NoError(t, b.Close())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = New(js, idx, Options{Logger: testLogger(t)}).Run(ctx)
		require.ErrorIs(t, err, ErrIndexAhead)
		b = must(idx.newBatch())
		require.NoError(t, idx.commit(b, nil, nil, h.seq, 0))
		require.NoError(t, b.Close())
	})
	t.Run("recreated stream", func(t *testing.T) {
		require.NoError(t, js.DeleteStream(context.Background(), DefaultStream))
		recreateStream(t, js, testStreamConfig())
		h2 := newHistory(7, 1, 2, 2)
		h2.add(t, 20)
		h2.publish(t, js)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := New(js, idx, Options{Logger: testLogger(t)}).Run(ctx)
		var stopErr *StopError
		require.ErrorAs(t, err, &stopErr)
		require.ErrorIs(t, err, ErrStreamMismatch)
		assert.Equal(t, h.seq, idx.Checkpoint())
	})
}

func TestProjectorRunsAlone(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	idx := openIndex(t, t.TempDir(), IndexOptions{})
	stop := runProjector(t, New(js, idx, Options{Logger: testLogger(t)}))
	require.Eventually(t, idx.Ready, 10*time.Second, 5*time.Millisecond)
	err := New(js, idx, Options{Logger: testLogger(t)}).Run(context.Background())
	require.ErrorIs(t, err, ErrBusy)
	require.NoError(t, stop())
}

func TestProjectorMissingStream(t *testing.T) {
	_, _, js := natstest.Run(t)
	idx := openIndex(t, t.TempDir(), IndexOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := New(js, idx, Options{Logger: testLogger(t)})
	err := p.Run(ctx)
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
	assert.Contains(t, p.Health().Err, DefaultStream)
	assert.False(t, errors.As(err, new(*StopError)), "a missing stream is not a problem in the stream")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A stream deleted under a running projector leaves the index answering
// with what it folded; one created anew in its place is another stream,
// and the projector stops rather than fold it.
func TestProjectorOutlivesItsStreamButNotAReplacement(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	h := newHistory(8, 1, 2, 2)
	h.add(t, 10)
	h.publish(t, js)
	idx := openIndex(t, t.TempDir(), IndexOptions{})
	p := New(js, idx, Options{Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, idx, h.seq)

	require.NoError(t, js.DeleteStream(context.Background(), DefaultStream))
	// The feed notices (its consumer is gone) and waits for the stream.
	require.Eventually(t, func() bool {
		return idx.Ready() && p.Health().Err == "" && len(done) == 0
	}, 10*time.Second, 5*time.Millisecond)
	assertMatchesModel(t, idx, h)

	recreateStream(t, js, testStreamConfig())
	h2 := newHistory(9, 1, 2, 2)
	h2.add(t, 20)
	h2.publish(t, js)
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrStreamMismatch)
	case <-time.After(30 * time.Second):
		t.Fatal("the projector folds a stream created anew")
	}
	assert.Equal(t, h.seq, idx.Checkpoint(), "nothing of the new stream folded")
}
