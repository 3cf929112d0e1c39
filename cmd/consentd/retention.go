package main

import (
	"context"

	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go/jetstream"
)

// openHolds opens the bucket of the legal holds (ledger.HoldBucket) in the
// stream's account, with the stream's replicas, waiting while the cluster
// settles.
func (m *Main) openHolds(ctx context.Context, js jetstream.JetStream) (holds *ledger.Holds, err error) {
	err = m.retryUnanswered(ctx, "legal hold bucket", func(ctx context.Context) (err error) {
		holds, err = ledger.OpenHolds(ctx, js, m.replicas)
		return err
	})
	return holds, err
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
