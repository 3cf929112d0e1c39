package perf

import (
	"context"
	"fmt"
	"github.com/consentledger/consent/wire"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// consentKey returns the consent of event i of a generated stream: every
// event is the first of its own consent, so n events are n consents.
func consentKey(i int) events.Key {
	return events.Key{Tenant: "acme", SubjectID: "person-" + strconv.Itoa(i) + "@example.com", Purpose: "marketing_email"}
}

// statusQueries returns the status queries of consents 0 to n-1
// (consentKey).
func statusQueries(n int) []wire.StatusQuery {
	queries := make([]wire.StatusQuery, n)
	for i := range queries {
		k := consentKey(i)
		queries[i] = wire.StatusQuery{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose}
	}
	return queries
}

// FillStream appends n sealed grants, one per consent, straight onto the
// CONSENT stream (as the ledger would store them, without its reads):
// the load for the catch-up, rebuild and memory comparisons. It seals on
// every core and publishes asynchronously.
func FillStream(ctx context.Context, js jetstream.JetStream, n int) error {
	if _, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{}); err != nil {
		return err
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const chunk = 4096
	type sealed struct {
		msgs []*nats.Msg
		err  error
	}
	chunks := (n + chunk - 1) / chunk
	out := make([]chan sealed, chunks)
	for c := range out {
		out[c] = make(chan sealed, 1)
	}
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	wg.Go(func() {
		for c := range chunks {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				lo, hi := c*chunk, min((c+1)*chunk, n)
				msgs := make([]*nats.Msg, 0, hi-lo)
				for i := lo; i < hi; i++ {
					k := consentKey(i)
					ev := events.Event{
						V: events.SchemaVersionClear, ID: uuid.Must(uuid.NewV7()).String(), Type: events.TypeGranted,
						Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose,
						OccurredAt: at, RecordedAt: at, PolicyVersion: 1, Actor: "subject", Method: "import",
					}
					payload, err := ev.Seal()
					if err != nil {
						out[c] <- sealed{err: err}
						return
					}
					msgs = append(msgs, &nats.Msg{Subject: k.NATSSubject(), Data: payload, Header: nats.Header{
						events.HeaderEventType: []string{string(ev.Type)},
						events.HeaderMsgID:     []string{ev.ID},
					}})
				}
				out[c] <- sealed{msgs: msgs}
			})
		}
	})
	defer wg.Wait()
	for c := range chunks {
		s := <-out[c]
		if s.err != nil {
			return s.err
		}
		for i, m := range s.msgs {
			if _, err := js.PublishMsgAsync(m); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			if i%1024 == 1023 {
				// Stay under the client's limit of outstanding acks.
				select {
				case <-js.PublishAsyncComplete():
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// drain reads the stream from its start up to last with a bare ordered
// consumer, doing nothing with the messages.
func drain(ctx context.Context, stream jetstream.Stream, last uint64) (time.Duration, error) {
	start := time.Now()
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, err
	}
	done := make(chan struct{})
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err == nil && meta.Sequence.Stream == last {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	select {
	case <-done:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("bare drain: %w", ctx.Err())
	}
}
