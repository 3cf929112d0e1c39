package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// BenchmarkStatusLookup measures consent.v1.status through the service
// and the Go client, answered by the real projector.Index, at 1 and at 32
// concurrent callers, against a bare echo micro service on the same kind
// of connection (TCP loopback to an embedded server) in the same run. The
// "inline" variant answers lookups on the endpoint goroutine, "pool"
// hands them to 4 workers (ServiceConfig.LookupWorkers).
//
// Metrics: lookups/s, p50-us and p99-us for the service; echo-req/s,
// echo-p50-us and echo-p99-us for the bare echo; and the ratios
// x-echo-throughput (service/echo, higher is better), x-echo-p50 and
// x-echo-p99 (service/echo, lower is better).
func BenchmarkStatusLookup(b *testing.B) {
	s := natstest.RunServer(b)
	nc := natstest.Connect(b, s)
	js := natstest.JetStream(b, nc)
	ctx := context.Background()
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	if err != nil {
		b.Fatal(err)
	}
	l := ledger.New(js, stream, ledger.Options{})

	const people = 100
	queries := make([]wire.StatusQuery, people)
	var last uint64
	for i := range queries {
		subjectID := "person-" + strconv.Itoa(i) + "@example.com"
		r, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: subjectID, Purpose: "marketing_email"})
		if err != nil {
			b.Fatal(err)
		}
		last = r.Seq
		queries[i] = wire.StatusQuery{SubjectID: subjectID, Purpose: "marketing_email"}
	}

	idx := runIndex(b, js)
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = idx.Wait(waitCtx, last)
	cancel()
	if err != nil {
		b.Fatal(err)
	}

	echoConn := natstest.Connect(b, s)
	echo, err := micro.AddService(echoConn, micro.Config{
		Name: "echo", Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: "bench.echo", Handler: micro.HandlerFunc(func(req micro.Request) { _ = req.Respond(req.Data()) })},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = echo.Stop() })
	echoBody := []byte(`{"subject":"person-1@example.com","purpose":"marketing_email"}`)

	clientConn := natstest.Connect(b, s)
	client := client.NewClient(clientConn, client.ClientOptions{})
	if err := echoConn.Flush(); err != nil {
		b.Fatal(err)
	}

	for _, mode := range []struct {
		name    string
		workers int
	}{{"inline", 0}, {"pool", 4}} {
		svc, err := ledger.NewService(natstest.Connect(b, s), l, idx, ledger.ServiceConfig{LookupWorkers: mode.workers, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		for _, callers := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/callers=%d", mode.name, callers), func(b *testing.B) {
				b.ReportAllocs()
				lookup := func(i int) error {
					_, err := client.Status(ctx, queries[i%people])
					return err
				}
				got, bare := driveAgainst(b, callers, lookup, func(int) error {
					_, err := clientConn.Request("bench.echo", echoBody, 5*time.Second)
					return err
				})
				reportAgainst(b, got, bare, "lookups/s", "echo-req/s", "echo")
			})
		}
		if err := svc.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// run is the outcome of driving calls: their latencies and the wall time.
type run struct {
	latencies []time.Duration
	elapsed   time.Duration
}

func (r run) rate() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

// percentile returns the p-th percentile latency in microseconds.
func (r run) percentile(p int) float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	i := (len(r.latencies)*p+99)/100 - 1
	return float64(r.latencies[max(i, 0)]) / float64(time.Microsecond)
}

// driveAgainst makes the benchmark's calls (b.Loop) and then as many bare
// ones, each from `callers` goroutines, and returns both runs.
func driveAgainst(b *testing.B, callers int, call, bare func(i int) error) (got, base run) {
	got = drive(b, callers, func(yield func() bool) {
		for b.Loop() {
			if !yield() {
				return
			}
		}
	}, call)
	n := b.N
	base = drive(b, callers, func(yield func() bool) {
		for range n {
			if !yield() {
				return
			}
		}
	}, bare)
	return got, base
}

// reportAgainst reports got's rate (as rateUnit) and its p50-us and
// p99-us, base's rate (as baseRateUnit) and its p50 and p99 (as
// <basis>-p50-us and <basis>-p99-us), and the ratios got/base
// x-<basis>-throughput (higher is better), x-<basis>-p50 and x-<basis>-p99
// (lower is better).
func reportAgainst(b *testing.B, got, base run, rateUnit, baseRateUnit, basis string) {
	b.ReportMetric(got.rate(), rateUnit)
	b.ReportMetric(got.percentile(50), "p50-us")
	b.ReportMetric(got.percentile(99), "p99-us")
	b.ReportMetric(base.rate(), baseRateUnit)
	b.ReportMetric(base.percentile(50), basis+"-p50-us")
	b.ReportMetric(base.percentile(99), basis+"-p99-us")
	b.ReportMetric(got.rate()/base.rate(), "x-"+basis+"-throughput")
	b.ReportMetric(got.percentile(50)/base.percentile(50), "x-"+basis+"-p50")
	b.ReportMetric(got.percentile(99)/base.percentile(99), "x-"+basis+"-p99")
}

// drive makes calls from `callers` goroutines, one per value the iterator
// yields, and returns every call's latency, sorted, and the wall time from
// the first call to the last answer.
func drive(b *testing.B, callers int, each func(yield func() bool), call func(i int) error) run {
	tokens := make(chan int)
	lat := make([][]time.Duration, callers)
	var failed sync.Once
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range tokens {
				start := time.Now()
				if err := call(i); err != nil {
					failed.Do(func() { b.Error(err) })
				}
				lat[c] = append(lat[c], time.Since(start))
			}
		})
	}
	start := time.Now()
	i := 0
	each(func() bool {
		tokens <- i
		i++
		return true
	})
	close(tokens)
	wg.Wait()
	r := run{latencies: slices.Concat(lat...), elapsed: time.Since(start)}
	slices.Sort(r.latencies)
	return r
}

// BenchmarkGrantThroughService measures grants through the service and the
// Go client at 32 concurrent callers, one consent each, with commands
// handled one at a time (MaxInFlight 1: what a plain micro handler does)
// and fanned out to goroutines (MaxInFlight 256, the default), against a
// bare JetStream publish with expected last sequence and message id (the
// core of an append) from 32 publishers in the same run. The stream uses
// the server's default fsync interval, so that the fsync does not hide
// what fan-out changes.
//
// Metrics: grants/s, p50-us, p99-us; publish/s, publish-p50-us,
// publish-p99-us for the bare publish; x-publish-throughput, x-publish-p50
// and x-publish-p99 as ratios service/bare.
func BenchmarkGrantThroughService(b *testing.B) {
	s := natstest.RunServer(b)
	nc := natstest.Connect(b, s)
	js := natstest.JetStream(b, nc)
	ctx := context.Background()
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	if err != nil {
		b.Fatal(err)
	}
	l := ledger.New(js, stream, ledger.Options{})
	clientConn := natstest.Connect(b, s)
	client := client.NewClient(clientConn, client.ClientOptions{})
	quiet := slog.New(slog.DiscardHandler)
	payload := make([]byte, 400) // about the size of a grant event
	var unique atomic.Uint64
	const callers = 32

	for _, inFlight := range []int{1, ledger.DefaultMaxInFlight} {
		svc, err := ledger.NewService(natstest.Connect(b, s), l, newFakeReader(0), ledger.ServiceConfig{MaxInFlight: inFlight, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("max-in-flight=%d/callers=%d", inFlight, callers), func(b *testing.B) {
			b.ReportAllocs()
			got, bare := driveAgainst(b, callers, func(int) error {
				_, err := client.Grant(ctx, events.Command{SubjectID: "person-" + strconv.FormatUint(unique.Add(1), 10), Purpose: "marketing_email"})
				return err
			}, func(int) error {
				id := strconv.FormatUint(unique.Add(1), 10)
				_, err := js.Publish(ctx, "consent.events.bench.bare."+id, payload,
					jetstream.WithMsgID(id), jetstream.WithExpectLastSequencePerSubject(0))
				return err
			})
			reportAgainst(b, got, bare, "grants/s", "publish/s", "publish")
		})
		if err := svc.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
