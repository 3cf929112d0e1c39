package main

import (
	"context"

	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go/jetstream"
)

// openHolds returns the legal holds (ledger.HoldBucket, in the stream's
// account, with the stream's replicas) without waiting for the bucket:
// right after a cluster elected the stream's leader a replicated bucket
// may need seconds to elect its own, and commands must not wait for it
// (what needs the holds answers 503 meanwhile). The bucket is opened in
// the background, and again on first use if that failed.
func (m *Main) openHolds(ctx context.Context, js jetstream.JetStream) *ledger.Holds {
	holds := ledger.LazyHolds(js, m.replicas)
	go func() {
		if err := holds.Open(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("legal hold bucket not open yet; opened on first use", "error", err)
		}
	}()
	return holds
}

// startRetainer runs a retainer until Close: every instance runs one, and
// each consent.erased lands once whichever instances race for a person
// (see ledger.Retainer).
func (m *Main) startRetainer(l *ledger.Ledger) {
	m.retainer = ledger.NewRetainer(l, m.index, ledger.RetainerOptions{Interval: m.Config.RetentionInterval,
		Logger: m.log.With("component", "retainer")})
	ctx, stop := context.WithCancel(context.Background())
	m.stopRetainer, m.retainerDone = stop, make(chan struct{})
	go func() {
		defer close(m.retainerDone)
		_ = m.retainer.Run(ctx)
	}()
}
