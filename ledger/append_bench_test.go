package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
)

// opTimer accumulates the time of one kind of operation inside a b.Loop
// that interleaves several, so that all of them see the same machine noise.
type opTimer struct {
	total time.Duration
	n     int
}

func (o *opTimer) time(f func()) {
	start := time.Now()
	f()
	o.total += time.Since(start)
	o.n++
}

func (o *opTimer) nsPerOp() float64 { return float64(o.total.Nanoseconds()) / float64(max(o.n, 1)) }

// BenchmarkGrant measures the grant path (Append of a grant to a consent
// that has no events yet) next to a bare JetStream publish of the same
// payload bytes on the same server, each iteration doing one of each, with
// the server fsyncing every write (sync_always, as consentd runs) and with
// its default two-minute sync interval. ns/op is the sum of both; the
// metrics give each and their ratio. keyed is the grant path with an
// idempotency key, which reads the consent's history with a batched get
// instead of its last message.
func BenchmarkGrant(b *testing.B) {
	modes := []struct {
		name string
		opts []natstest.Option
	}{
		{"sync_always", []natstest.Option{natstest.SyncAlways()}},
		{"default", nil},
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			_, _, js := natstest.Run(b, mode.opts...)
			ctx := context.Background()
			stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
			if err != nil {
				b.Fatal(err)
			}
			// The bare publishes go to a stream configured the same way.
			bareCfg := ledger.StreamOptions{Name: "BARE"}.Config()
			bareCfg.Subjects = []string{"bare.>"}
			if _, err := js.CreateStream(ctx, bareCfg); err != nil {
				b.Fatal(err)
			}
			l := ledger.New(js, stream, ledger.Options{})
			first, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "warm-up", Purpose: "marketing_email"})
			if err != nil {
				b.Fatal(err)
			}
			stored, err := stream.GetMsg(ctx, first.Seq)
			if err != nil {
				b.Fatal(err)
			}
			payload := stored.Data

			var grant, keyed, bare opTimer
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				bare.time(func() {
					if _, err := js.Publish(ctx, fmt.Sprintf("bare.%d", i), payload); err != nil {
						b.Fatal(err)
					}
				})
				grant.time(func() {
					if _, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: fmt.Sprintf("person-%d", i), Purpose: "marketing_email"}); err != nil {
						b.Fatal(err)
					}
				})
				keyed.time(func() {
					if _, err := l.Append(ctx, events.KindGrant, events.Command{
						SubjectID: fmt.Sprintf("keyed-%d", i), Purpose: "marketing_email", IdempotencyKey: fmt.Sprintf("key-%d", i),
					}); err != nil {
						b.Fatal(err)
					}
				})
			}
			b.ReportMetric(bare.nsPerOp(), "bare-ns/op")
			b.ReportMetric(grant.nsPerOp(), "grant-ns/op")
			b.ReportMetric(keyed.nsPerOp(), "keyed-ns/op")
			b.ReportMetric(grant.nsPerOp()/bare.nsPerOp(), "grant/bare")
			b.ReportMetric(keyed.nsPerOp()/bare.nsPerOp(), "keyed/bare")
		})
	}
}
