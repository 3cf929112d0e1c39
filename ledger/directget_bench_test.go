package ledger

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// scanTimer accumulates the time of one kind of read inside a b.Loop that
// interleaves several, so that all of them see the same machine noise.
type scanTimer struct {
	total time.Duration
	n     int
}

func (o *scanTimer) time(f func()) {
	start := time.Now()
	f()
	o.total += time.Since(start)
	o.n++
}

func (o *scanTimer) nsPerOp() float64 { return float64(o.total.Nanoseconds()) / float64(max(o.n, 1)) }

// BenchmarkIdempotencyScan compares ways to look through one consent's
// history (10 events, in a stream of 2,000 consents) for a Nats-Msg-Id,
// next to the bare operation, a direct get of the consent's last message:
// the ledger's batched direct get, orbit.go's jetstreamext.GetBatch (the
// same protocol, but a 512 KiB channel per call) and an ordered consumer
// with HeadersOnly.
func BenchmarkIdempotencyScan(b *testing.B) {
	_, _, js := natstest.Run(b)
	ctx := context.Background()
	stream, err := EnsureStream(ctx, js, StreamOptions{})
	if err != nil {
		b.Fatal(err)
	}
	l := New(js, stream, Options{})
	for i := range 2000 {
		if _, err := js.Publish(ctx, fmt.Sprintf("consent.events.default.p.other%d", i), []byte("{}")); err != nil {
			b.Fatal(err)
		}
	}
	key := events.Key{Tenant: "default", SubjectID: "alice", Purpose: "p"}
	for i := range 10 {
		kind := events.KindGrant
		if i%2 == 1 {
			kind = events.KindRevoke
		}
		if _, err := l.Append(ctx, kind, events.Command{SubjectID: key.SubjectID, Purpose: key.Purpose, IdempotencyKey: fmt.Sprint("k", i)}); err != nil {
			b.Fatal(err)
		}
	}
	natsSubject := key.NATSSubject()
	const want = "k9" // the last one: every scan reads everything

	var last, ours, orbit, ordered scanTimer
	b.ReportAllocs()
	for b.Loop() {
		last.time(func() {
			if _, err := stream.GetLastMsgForSubject(ctx, natsSubject); err != nil {
				b.Fatal(err)
			}
		})
		ours.time(func() {
			msgs, err := l.readMsgs(ctx, natsSubject, 0, wire.MaxHistoryLimit)
			if err != nil || len(msgs) != 10 || msgs[9].Header.Get(events.HeaderMsgID) != want {
				b.Fatalf("batched direct get: %d messages, %v", len(msgs), err)
			}
		})
		orbit.time(func() {
			if !scanOrbit(ctx, b, js, natsSubject, want) {
				b.Fatal("orbit GetBatch did not find the key")
			}
		})
		ordered.time(func() {
			if !scanOrdered(ctx, b, js, natsSubject, want) {
				b.Fatal("ordered consumer did not find the key")
			}
		})
	}
	b.ReportMetric(last.nsPerOp(), "last-get-ns/op")
	b.ReportMetric(ours.nsPerOp(), "batch-ns/op")
	b.ReportMetric(orbit.nsPerOp(), "orbit-ns/op")
	b.ReportMetric(ordered.nsPerOp(), "ordered-ns/op")
	b.ReportMetric(ours.nsPerOp()/last.nsPerOp(), "batch/last-get")
	b.ReportMetric(orbit.nsPerOp()/last.nsPerOp(), "orbit/last-get")
	b.ReportMetric(ordered.nsPerOp()/last.nsPerOp(), "ordered/last-get")
}

func scanOrbit(ctx context.Context, b *testing.B, js jetstream.JetStream, natsSubject, msgID string) bool {
	msgs, err := jetstreamext.GetBatch(ctx, js, wire.DefaultStream, wire.MaxHistoryLimit,
		jetstreamext.GetBatchSubject(natsSubject), jetstreamext.GetBatchSeq(1))
	if err != nil {
		b.Fatal(err)
	}
	found := false
	for m, err := range msgs {
		if err != nil {
			b.Fatal(err)
		}
		if m.Header.Get(events.HeaderMsgID) == msgID {
			found = true
		}
	}
	return found
}

func scanOrdered(ctx context.Context, b *testing.B, js jetstream.JetStream, natsSubject, msgID string) bool {
	cons, err := js.OrderedConsumer(ctx, wire.DefaultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{natsSubject},
		HeadersOnly:       true,
		InactiveThreshold: time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	found := false
	for {
		batch, err := cons.Fetch(wire.MaxHistoryLimit, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for m := range batch.Messages() {
			if m.Headers().Get(events.HeaderMsgID) == msgID {
				found = true
			}
			meta, err := m.Metadata()
			if err != nil {
				b.Fatal(err)
			}
			if meta.NumPending == 0 {
				return found
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			b.Fatal(err)
		}
	}
}
