package perf

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/consentledger/consent/projector"
	"github.com/nats-io/nats.go/jetstream"
)

// CatchUpResult compares rebuilding the index from the stream with a bare
// ordered-consumer drain of the same stream.
type CatchUpResult struct {
	Events  uint64
	Bare    time.Duration // ordered-consumer drain, messages discarded
	Rebuild time.Duration // projector from an empty index until it holds every event
}

// BareRate and Rate are events per second.
func (r CatchUpResult) BareRate() float64 { return float64(r.Events) / r.Bare.Seconds() }
func (r CatchUpResult) Rate() float64     { return float64(r.Events) / r.Rebuild.Seconds() }

// CatchUp drains the CONSENT stream bare, then rebuilds an index from it
// under dir, rounds times each, and keeps the best of each.
func CatchUp(ctx context.Context, js jetstream.JetStream, dir string, rounds int) (CatchUpResult, error) {
	var res CatchUpResult
	stream, err := js.Stream(ctx, projector.DefaultStream)
	if err != nil {
		return res, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return res, err
	}
	res.Events = info.State.LastSeq
	quiet := slog.New(slog.DiscardHandler)
	for round := range max(rounds, 1) {
		bare, err := drain(ctx, stream, res.Events)
		if err != nil {
			return res, err
		}
		indexDir := filepath.Join(dir, fmt.Sprintf("index-%d", round))
		rebuild, err := rebuildIndex(ctx, js, indexDir, res.Events, quiet)
		_ = os.RemoveAll(indexDir)
		if err != nil {
			return res, err
		}
		if round == 0 || bare < res.Bare {
			res.Bare = bare
		}
		if round == 0 || rebuild < res.Rebuild {
			res.Rebuild = rebuild
		}
	}
	return res, nil
}

// rebuildIndex projects the stream into a new index until it has applied
// last, and returns how long that took.
func rebuildIndex(ctx context.Context, js jetstream.JetStream, dir string, last uint64, log *slog.Logger) (time.Duration, error) {
	idx, err := projector.Open(dir, projector.IndexOptions{Logger: log})
	if err != nil {
		return 0, err
	}
	defer idx.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- projector.New(js, idx, projector.Options{Logger: log}).Run(runCtx) }()
	_, err = idx.Wait(ctx, last)
	took := time.Since(start)
	stop()
	if runErr := <-done; err == nil {
		err = runErr
	}
	if err != nil {
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	return took, nil
}
