package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
)

// BenchmarkClientCall measures what the Go client adds to a request-reply
// for each kind of context a caller may hold: Client.Status against a bare
// nc.Request to the same responder (a plain subscription answering a
// canned status) in the same run, 32 concurrent callers over TCP loopback.
//
// Metrics: calls/s, p50-us and p99-us for the client; bare-req/s,
// bare-p50-us and bare-p99-us for nc.Request; and the ratios
// x-bare-throughput (client/bare, higher is better), x-bare-p50 and
// x-bare-p99 (lower is better).
func BenchmarkClientCall(b *testing.B) {
	s := natstest.RunServer(b)
	responder := natstest.Connect(b, s)
	answer := []byte(`{"tenant":"","subject":"a","purpose":"p","state":"granted","allowed":true,"policy_version":1,"updated_at":"2026-03-01T12:00:00Z","seq":7,"event_id":"0196b3c2-0000-7000-8000-000000000001","index_seq":7}`)
	if _, err := responder.Subscribe(wire.SubjectStatus, func(m *nats.Msg) { _ = m.Respond(answer) }); err != nil {
		b.Fatal(err)
	}
	if err := responder.Flush(); err != nil {
		b.Fatal(err)
	}
	nc := natstest.Connect(b, s)
	client := client.NewClient(nc, client.ClientOptions{})
	q := wire.StatusQuery{SubjectID: "a", Purpose: "p"}
	body := []byte(`{"subject":"a","purpose":"p"}`)

	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	withDeadline, cancelDeadline := context.WithTimeout(context.Background(), time.Hour)
	defer cancelDeadline()
	const callers = 32
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{
		{"background", context.Background()},
		{"cancellable", cancellable},
		{"deadline", withDeadline},
	} {
		b.Run(fmt.Sprintf("ctx=%s/callers=%d", c.name, callers), func(b *testing.B) {
			b.ReportAllocs()
			got, bare := driveAgainst(b, callers, func(int) error {
				_, err := client.Status(c.ctx, q)
				return err
			}, func(int) error {
				_, err := nc.Request(wire.SubjectStatus, body, 5*time.Second)
				return err
			})
			reportAgainst(b, got, bare, "calls/s", "bare-req/s", "bare")
		})
	}
}
