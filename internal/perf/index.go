package perf

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/consentledger/consent/projector"
	"github.com/nats-io/nats.go/jetstream"
)

// runIndex opens a fresh index in a temporary directory under dir and runs
// a projector on it, as consentd does, until it has caught up with the
// stream (or ctx ends). stop ends the projector and removes the index.
func runIndex(ctx context.Context, js jetstream.JetStream, dir string) (idx *projector.Index, stop func(), err error) {
	indexDir, err := os.MkdirTemp(dir, "consentbench-index-")
	if err != nil {
		return nil, nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	idx, err = projector.Open(filepath.Join(indexDir, "index"), projector.IndexOptions{Logger: quiet})
	if err != nil {
		_ = os.RemoveAll(indexDir)
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- projector.New(js, idx, projector.Options{Logger: quiet}).Run(runCtx) }()
	stop = func() {
		cancel()
		<-done
		_ = idx.Close()
		_ = os.RemoveAll(indexDir)
	}
	for !idx.Ready() {
		changed := idx.Changed()
		if idx.Ready() {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			stop()
			return nil, nil, fmt.Errorf("index: %w", ctx.Err())
		}
	}
	return idx, stop, nil
}
