package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
)

// The flood of BenchmarkGrantUnderFlood: every floodWave, floodSenders
// goroutines together publish floodLookups status and list lookups with a
// reply subject nobody listens to (half with a far-future min_seq, half
// with a min_seq a little beyond the index, which the grants reach soon)
// and floodBig requests of just under 64 KiB to grant, status and list
// (each refused with 400 once decoded): 20,000 lookups and 12 MB a second.
const (
	floodWave    = 100 * time.Millisecond
	floodSenders = 8
	floodLookups = 2000
	floodBig     = 18
)

// BenchmarkGrantUnderFlood measures grants through the service and the Go
// client at 32 concurrent callers, one consent each, while a flood of
// lookups with min_seq and of big requests comes in on another connection,
// and then as many grants without the flood, in the same run, each on a
// fresh service over the same stream and index (the real projector.Index).
//
// Metrics: grants/s, p50-us and p99-us under the flood;
// unflooded-grants/s, unflooded-p50-us and unflooded-p99-us without it;
// x-unflooded-throughput (flooded/unflooded grants/s: 1 means the flood
// costs nothing), x-unflooded-p50 and x-unflooded-p99 (flooded/unflooded
// latency); flood-msgs/s, what the flood sent.
func BenchmarkGrantUnderFlood(b *testing.B) {
	s := natstest.RunServer(b)
	nc := natstest.Connect(b, s)
	js := natstest.JetStream(b, nc)
	ctx := context.Background()
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	if err != nil {
		b.Fatal(err)
	}
	l := ledger.New(js, stream, ledger.Options{})
	idx := runIndex(b, js)
	for !idx.Ready() {
		<-idx.Changed()
	}

	client := client.NewClient(natstest.Connect(b, s), client.ClientOptions{})
	floodConn := natstest.Connect(b, s)
	var unique atomic.Uint64
	const callers = 32
	grant := func(int) error {
		_, err := client.Grant(ctx, events.Command{SubjectID: "person-" + strconv.FormatUint(unique.Add(1), 10), Purpose: "marketing_email"})
		return err
	}
	serve := func() *ledger.Service {
		svc, err := ledger.NewService(natstest.Connect(b, s), l, idx, ledger.ServiceConfig{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		return svc
	}
	// stop stops a service, giving up on what it still works on after 1s
	// (lookups waiting for min_seq are then answered 503).
	stop := func(svc *ledger.Service) {
		stopCtx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_ = svc.Stop(stopCtx)
	}

	b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
		b.ReportAllocs()
		svc := serve()
		f := startFlood(b, floodConn, idx)
		got := drive(b, callers, func(yield func() bool) {
			for b.Loop() {
				if !yield() {
					return
				}
			}
		}, grant)
		sent := f.stop()
		stop(svc)

		svc = serve()
		n := b.N
		base := drive(b, callers, func(yield func() bool) {
			for range n {
				if !yield() {
					return
				}
			}
		}, grant)
		stop(svc)
		reportAgainst(b, got, base, "grants/s", "unflooded-grants/s", "unflooded")
		b.ReportMetric(float64(sent)/got.elapsed.Seconds(), "flood-msgs/s")
	})
}

// flood publishes the flood of BenchmarkGrantUnderFlood until stopped.
type flood struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sent   atomic.Uint64
}

func startFlood(b *testing.B, nc *nats.Conn, idx *projector.Index) *flood {
	ctx, cancel := context.WithCancel(context.Background())
	f := &flood{cancel: cancel}
	big := []byte(`{"subject":"s","purpose":"p","pad":"` + strings.Repeat("x", wire.MaxRequestSize-64) + `"}`)
	bigSubjects := []string{wire.SubjectGrant, wire.SubjectStatus, wire.SubjectList}
	for sender := range floodSenders {
		f.wg.Go(func() {
			tick := time.NewTicker(floodWave)
			defer tick.Stop()
			var body []byte
			for {
				for j := range floodLookups / floodSenders {
					minSeq := uint64(1) << 40 // far beyond the stream
					if j%2 == 1 {
						minSeq = idx.Checkpoint() + 1 + uint64(j%500) // not reached yet
					}
					subj := wire.SubjectStatus
					if j%4 == 3 {
						subj = wire.SubjectList
					}
					body = fmt.Appendf(body[:0], `{"subject":"flood-%d-%d","purpose":"p","min_seq":%d}`, sender, j, minSeq)
					// A reply subject nobody listens to: the service
					// answers, the server drops the answer.
					if err := nc.PublishRequest(subj, "_INBOX.flood", body); err != nil {
						b.Error(err)
						return
					}
				}
				n := floodLookups / floodSenders
				for j := sender; j < floodBig; j += floodSenders {
					if err := nc.PublishRequest(bigSubjects[j%len(bigSubjects)], "_INBOX.flood", big); err != nil {
						b.Error(err)
						return
					}
					n++
				}
				f.sent.Add(uint64(n))
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	return f
}

// stop stops the flood and returns how many messages it sent.
func (f *flood) stop() uint64 {
	f.cancel()
	f.wg.Wait()
	return f.sent.Load()
}
