package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkCheckerHit measures a check answered from the Checker's memory
// (Allowed, and Check which also builds the status) next to a bare lookup
// of the same keys in a map[events.Key]events.Consent, in batches of 1000
// interleaved in each iteration so both see the same machine noise.
func BenchmarkCheckerHit(b *testing.B) {
	st := startStack(b, stackOptions{})
	ctx := context.Background()
	const n = 1000
	var queries []wire.StatusQuery
	bare := make(map[events.Key]events.Consent, n)
	var lastSeq uint64
	for i := range n {
		reply, err := st.ledger.Append(ctx, events.KindGrant, events.Command{SubjectID: fmt.Sprintf("person-%d", i), Purpose: "newsletter"})
		if err != nil {
			b.Fatal(err)
		}
		lastSeq = reply.Seq
		queries = append(queries, wire.StatusQuery{SubjectID: fmt.Sprintf("person-%d", i), Purpose: "newsletter"})
		bare[reply.Event.Key()] = events.Evolve(events.NewConsent(reply.Event.Key()), reply.Event, reply.Seq)
	}
	k := newChecker(b, st.client)
	for _, q := range queries {
		q.MinSeq = lastSeq
		if _, err := k.Check(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	keys := make([]events.Key, n)
	for i, q := range queries {
		keys[i] = q.Key()
	}
	fills := k.Stats().Fills

	var allowed, check, lookup opTimer
	var sink int
	b.ReportAllocs()
	for b.Loop() {
		allowed.time(func() {
			for _, q := range queries {
				if ok, _ := k.Allowed(ctx, q); ok {
					sink++
				}
			}
		})
		check.time(func() {
			for _, q := range queries {
				if st, _ := k.Check(ctx, q); st.Allowed {
					sink++
				}
			}
		})
		lookup.time(func() {
			for _, key := range keys {
				if c := bare[key]; c.State == events.StateGranted {
					sink++
				}
			}
		})
	}
	if k.Stats().Fills != fills || sink == 0 {
		b.Fatalf("checks went to the service: %+v", k.Stats())
	}
	b.ReportMetric(allowed.nsPerOp()/n, "allowed-ns/check")
	b.ReportMetric(check.nsPerOp()/n, "check-ns/check")
	b.ReportMetric(lookup.nsPerOp()/n, "map-ns/lookup")
	b.ReportMetric(allowed.nsPerOp()/lookup.nsPerOp(), "allowed/map")
	b.ReportMetric(check.nsPerOp()/lookup.nsPerOp(), "check/map")
}

// BenchmarkCheckerRevocationDelay measures how long a revocation takes to
// reach a Checker: from the start of its publish to the stream (the
// ledger's own publish: expected last sequence, msg id) until the Checker
// answers not allowed from memory; next to a bare publish to another
// stream of the same server until an ordered consumer delivers it. Both
// are measured until the later of the ack and the delivery.
func BenchmarkCheckerRevocationDelay(b *testing.B) {
	st := startStack(b, stackOptions{})
	ctx := context.Background()
	bareCfg := ledger.StreamOptions{Name: "BARE"}.Config()
	bareCfg.Subjects = []string{"bare.>"}
	bareStream, err := st.js.CreateStream(ctx, bareCfg)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := bareStream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	delivered := make(chan uint64, 16)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		meta, _ := m.Metadata()
		delivered <- meta.Sequence.Stream
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	k := newChecker(b, st.client)

	var revocation, bare opTimer
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		subjectID := fmt.Sprintf("person-%d", i)
		q := wire.StatusQuery{SubjectID: subjectID, Purpose: "newsletter"}
		granted, err := st.ledger.Append(ctx, events.KindGrant, events.Command{SubjectID: subjectID, Purpose: "newsletter"})
		if err != nil {
			b.Fatal(err)
		}
		q.MinSeq = granted.Seq
		if ok, err := k.Allowed(ctx, q); err != nil || !ok {
			b.Fatalf("grant not allowed: %v", err)
		}
		cur := events.Evolve(events.NewConsent(granted.Event.Key()), granted.Event, granted.Seq)
		msg := revocationMsg(b, cur)
		revocation.time(func() {
			ack, err := st.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msg.Header.Get(events.HeaderMsgID)),
				jetstream.WithExpectLastSequencePerSubject(cur.Seq))
			if err != nil {
				b.Fatal(err)
			}
			if err := k.WaitSeq(ctx, ack.Sequence); err != nil {
				b.Fatal(err)
			}
		})
		q.MinSeq = 0
		if ok, err := k.Allowed(ctx, q); err != nil || ok {
			b.Fatalf("revocation not seen: %v", err)
		}
		bare.time(func() {
			ack, err := st.js.Publish(ctx, fmt.Sprintf("bare.%d", i), msg.Data)
			if err != nil {
				b.Fatal(err)
			}
			for seq := range delivered {
				if seq >= ack.Sequence {
					break
				}
			}
		})
	}
	b.ReportMetric(revocation.nsPerOp(), "revocation-ns")
	b.ReportMetric(bare.nsPerOp(), "bare-ns")
	b.ReportMetric(revocation.nsPerOp()/bare.nsPerOp(), "revocation/bare")
}

// revocationMsg is the message the ledger publishes to revoke cur.
func revocationMsg(b *testing.B, cur events.Consent) *nats.Msg {
	b.Helper()
	ev, err := events.Decide(cur, events.KindRevoke, events.Command{Tenant: cur.Tenant, SubjectID: cur.SubjectID, Purpose: cur.Purpose}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	ev.ID = uuid.Must(uuid.NewV7()).String()
	payload, err := ev.Seal()
	if err != nil {
		b.Fatal(err)
	}
	msg := nats.NewMsg(cur.Key().NATSSubject())
	msg.Data = payload
	msg.Header.Set(events.HeaderEventType, string(ev.Type))
	msg.Header.Set(events.HeaderMsgID, ev.ID)
	return msg
}
