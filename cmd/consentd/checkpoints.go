package main

import (
	"context"

	"github.com/consentledger/consent/internal/audit"
	"github.com/nats-io/nats.go/jetstream"
)

// startCheckpointer appends a signed checkpoint per Config.CheckpointInterval
// window until Close. Every instance with the key runs one; the
// checkpointer's expected-sequence publish lets one checkpoint land per
// window (see audit.Checkpointer).
func (m *Main) startCheckpointer(js jetstream.JetStream, signer *audit.Signer) error {
	cp, err := audit.NewCheckpointer(js, audit.CheckpointerOptions{
		Stream:   m.Config.Stream,
		Signer:   signer,
		Interval: m.Config.CheckpointInterval,
		Logger:   m.log.With("component", "checkpointer"),
		Writable: m.guard.Err,
		Observe:  m.ops.observeCheckpoint(),
	})
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	m.stopCheckpointer, m.checkpointerDone = stop, make(chan struct{})
	go func() {
		defer close(m.checkpointerDone)
		_ = cp.Run(ctx)
	}()
	m.log.Info("signing checkpoints and receipts", "key_id", signer.KeyID(), "interval", m.Config.CheckpointInterval)
	return nil
}
