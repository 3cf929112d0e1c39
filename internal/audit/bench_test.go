package audit_test

import (
	"context"
	"io"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// benchEventsEnv sets the stream size of BenchmarkAuditRates. The default
// is small, so that CI's single pass of every benchmark is quick; the
// figures in docs/audit.md come from 1,000,000:
//
//	CONSENT_AUDIT_BENCH_EVENTS=1000000 go test -run '^$' -bench AuditRates -benchtime 3x ./internal/audit/
const benchEventsEnv = "CONSENT_AUDIT_BENCH_EVENTS"

// BenchmarkAuditRates measures, on one stream, a bare ordered-consumer
// drain (count the messages, nothing else), an export to JSON lines and a
// verification (every hash and link, the chain, a signed checkpoint, the
// fresh fold), and reports each as messages per second and the export and
// verify rates as ratios to the drain.
func BenchmarkAuditRates(b *testing.B) {
	n := 5_000
	if s := os.Getenv(benchEventsEnv); s != "" {
		v, err := strconv.Atoi(s)
		require.NoError(b, err, benchEventsEnv)
		n = v
	}
	consents := max(n/10, 1)
	_, _, js := natstest.Run(b)
	ctx := context.Background()
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	require.NoError(b, err)
	filling := time.Now()
	last := fillStream(b, js, n, consents, "")
	signer, pub := newSigner(b)
	cp, err := audit.NewCheckpointer(js, audit.CheckpointerOptions{Signer: signer})
	require.NoError(b, err)
	res, err := cp.Once(ctx)
	require.NoError(b, err)
	require.True(b, res.Published)
	total := last + 1
	info, err := stream.Info(ctx)
	require.NoError(b, err)
	b.Logf("stream: %d messages (%d consents, %d MiB) filled and checkpointed in %s",
		info.State.Msgs, consents, info.State.Bytes>>20, time.Since(filling).Round(time.Millisecond))

	// The three run in turn in every iteration, so that a noisy machine
	// disturbs them alike; each ratio is the median of the iterations'.
	var drainTime, exportTime, verifyTime time.Duration
	var exportRatios, verifyRatios []float64
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		drain(b, stream, total)
		d := time.Since(start)

		start = time.Now()
		st, err := audit.Export(ctx, js, io.Discard, audit.ExportOptions{})
		e := time.Since(start)
		require.NoError(b, err)
		require.Equal(b, last, st.Events)

		start = time.Now()
		r, err := audit.Verify(ctx, js, audit.VerifyOptions{Keys: audit.NewKeyring(pub)})
		v := time.Since(start)
		require.NoError(b, err)
		require.True(b, r.OK(), "problems: %v", r.Problems)
		require.Equal(b, uint64(1), r.Verified)

		drainTime, exportTime, verifyTime = drainTime+d, exportTime+e, verifyTime+v
		exportRatios = append(exportRatios, d.Seconds()/e.Seconds())
		verifyRatios = append(verifyRatios, d.Seconds()/v.Seconds())
	}
	rate := func(d time.Duration) float64 { return float64(total) * float64(b.N) / d.Seconds() }
	b.ReportMetric(rate(drainTime), "drain_msgs/s")
	b.ReportMetric(rate(exportTime), "export_msgs/s")
	b.ReportMetric(rate(verifyTime), "verify_msgs/s")
	b.ReportMetric(median(exportRatios), "export/drain")
	b.ReportMetric(median(verifyRatios), "verify/drain")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// drain reads the whole stream with a bare ordered consumer, counting the
// messages: the floor every replay is measured against.
func drain(b *testing.B, stream jetstream.Stream, total uint64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(b, err)
	var seen atomic.Uint64
	done := make(chan struct{})
	cc, err := cons.Consume(func(jetstream.Msg) {
		if seen.Add(1) == total {
			close(done)
		}
	}, jetstream.PullMaxMessages(audit.DefaultReplayMaxBuffered))
	require.NoError(b, err)
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("drain: %d of %d messages in 10 minutes", seen.Load(), total)
	}
}
