package projector

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// BenchmarkCatchUp projects a stream of catchUpEvents events into a fresh
// index, and drains the same stream with a bare ordered consumer, in every
// iteration: events/s of both, and ratio = projected rate / bare rate (1
// would be as fast as the bare drain).
func BenchmarkCatchUp(b *testing.B) {
	const catchUpEvents = 5000
	_, _, js := natstest.Run(b)
	stream := createStream(b, js, testStreamConfig())
	h := newHistory(10, 4, 50, 5)
	h.add(b, catchUpEvents)
	h.publish(b, js)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	var bare, projected time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		drain(b, stream, h.seq)
		bare += time.Since(start)

		idx := openIndex(b, b.TempDir(), IndexOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start = time.Now()
		go func() { done <- New(js, idx, Options{Logger: quiet}).Run(ctx) }()
		waitFor(b, idx, h.seq)
		projected += time.Since(start)
		cancel()
		require.NoError(b, <-done)
		require.NoError(b, idx.Close())
	}
	n := float64(b.N) * float64(h.seq)
	b.ReportMetric(n/projected.Seconds(), "events/s")
	b.ReportMetric(n/bare.Seconds(), "bare-events/s")
	b.ReportMetric(bare.Seconds()/projected.Seconds(), "ratio")
}

// drain reads the stream up to last with an ordered consumer, doing
// nothing with the messages.
func drain(tb testing.TB, stream jetstream.Stream, last uint64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(tb, err)
	done := make(chan struct{})
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err == nil && meta.Sequence.Stream == last {
			close(done)
		}
	})
	require.NoError(tb, err)
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		tb.Fatal("drain did not finish")
	}
}

// BenchmarkIndexConsent looks consents up in an index of 10,000 and does
// the bare Pebble Get of the same keys in every iteration: ns per lookup
// of both, and ratio = bare time / lookup time (1 would be as fast as the
// bare Get; above 1, faster).
func BenchmarkIndexConsent(b *testing.B) {
	const consents, block = 10_000, 256
	idx := openIndex(b, b.TempDir(), IndexOptions{ReadyOnOpen: true})
	batch, err := idx.newBatch()
	require.NoError(b, err)
	keys := make([]events.Key, consents)
	raw := make([][]byte, consents)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range keys {
		k := events.Key{Tenant: "acme", SubjectID: fmt.Sprintf("person-%d@example.com", i/5), Purpose: fmt.Sprintf("purpose_%d", i%5)}
		c := events.Consent{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose, State: events.StateGranted,
			PolicyVersion: 1, UpdatedAt: at, ExpiresAt: &at, Seq: uint64(i + 1),
			EventID: "0190f1e2-0000-7000-8000-000000000001", Hash: "d88d39f02e30b79bf21166f97651eab7de18f64267d7eb07e8ac4d868bbf78b6"}
		keys[i], raw[i] = k, appendConsentKey(nil, k)
		require.NoError(b, batch.Set(raw[i], appendConsent(nil, &c), nil))
	}
	require.NoError(b, idx.commit(batch, nil, nil, consents, 0))
	require.NoError(b, batch.Close())
	ctx := context.Background()

	// "spread" touches 10,000 consents, more than the index keeps in
	// memory; "hot" the same 256 over and over, as a busy service would.
	for _, set := range []struct {
		name string
		n    int
	}{{"spread", consents}, {"hot", block}} {
		b.Run(set.name, func(b *testing.B) {
			var bare, indexed time.Duration
			next := 0
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				for j := range block {
					v, closer, err := idx.db.Get(raw[(next+j*7919)%set.n])
					if err != nil || len(v) == 0 {
						b.Fatal(err)
					}
					_ = closer.Close()
				}
				bare += time.Since(start)
				start = time.Now()
				for j := range block {
					c, _, err := idx.Consent(ctx, keys[(next+j*7919)%set.n], 0)
					if err != nil || c.State != events.StateGranted {
						b.Fatal(err, c.State)
					}
				}
				indexed += time.Since(start)
				next++
			}
			n := float64(b.N * block)
			b.ReportMetric(float64(indexed.Nanoseconds())/n, "ns/lookup")
			b.ReportMetric(float64(bare.Nanoseconds())/n, "bare-ns/get")
			b.ReportMetric(float64(bare)/float64(indexed), "ratio")
		})
	}
}
