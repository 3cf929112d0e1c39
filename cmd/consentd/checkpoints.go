package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/consentledger/consent/internal/audit"
	"github.com/nats-io/nats.go/jetstream"
)

// loadSigningKey reads the private key of --signing-key. A public key
// (the .pub of consentctl audit keygen) is refused first, with an error
// matching audit.ErrKeyFile that names the private key to give instead:
// its mode does not matter, so the advice to chmod it would mislead.
func loadSigningKey(path string) (*audit.Signer, error) {
	if _, err := audit.LoadPublicKey(path); err == nil {
		private := "the .key file beside it"
		if base, ok := strings.CutSuffix(path, ".pub"); ok {
			private = base + ".key"
		}
		return nil, fmt.Errorf("%w: %s is a public key, which only verifies; give the private key that consentctl audit keygen wrote with it (%s)",
			audit.ErrKeyFile, path, private)
	}
	return audit.LoadSigningKey(path)
}

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
