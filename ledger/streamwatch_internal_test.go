package ledger

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStreamGuardPeriodicCheckAloneCatchesAChange: with no advisory
// delivered (the guard does not subscribe to them), the periodic check
// still finds the change.
func TestStreamGuardPeriodicCheckAloneCatchesAChange(t *testing.T) {
	_, _, js := natstest.Run(t)
	ctx := t.Context()
	_, err := EnsureStream(ctx, js, StreamOptions{})
	require.NoError(t, err)
	guard := NewStreamGuard(js, StreamGuardOptions{Interval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	guard.advisories = false
	RunGuard(t, guard)
	require.NoError(t, guard.Err())

	cfg := StreamOptions{}.Config()
	cfg.MaxMsgsPerSubject = 1
	cfg.Discard = jetstream.DiscardOld
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return errors.Is(guard.Err(), ErrUnsafeStream) }, 10*time.Second, 2*time.Millisecond)
	assert.Contains(t, guard.Err().Error(), "max_msgs_per_subject is 1")

	cfg.MaxMsgsPerSubject = -1
	cfg.Discard = jetstream.DiscardNew
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return guard.Err() == nil }, 10*time.Second, 2*time.Millisecond)
}

// TestStreamGuardContinuity: a stream created again under the name, or
// whose last sequence went back, is refused; one that grew is not.
func TestStreamGuardContinuity(t *testing.T) {
	g := NewStreamGuard(nil, StreamGuardOptions{})
	created := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	info := func(created time.Time, last uint64) *jetstream.StreamInfo {
		return &jetstream.StreamInfo{Created: created, State: jetstream.StreamState{LastSeq: last}}
	}
	assert.Empty(t, g.continuity(info(created, 40)))
	assert.Empty(t, g.continuity(info(created, 41)), "a stream that grew")
	assert.Equal(t, []string{"lost its last messages (last sequence is 12, was 41): acknowledged events are gone"},
		g.continuity(info(created, 12)), "restored from an older backup")
	assert.Empty(t, g.continuity(info(created, 41)), "restored from a backup that holds everything")
	assert.Equal(t, []string{"was replaced (created at 2026-12-06T08:00:00Z; the stream the ledger started on was created at 2026-12-06T07:00:00Z): its history is not the one the ledger and its index hold"},
		g.continuity(info(created.Add(time.Hour), 41)))
}

// RunGuard runs guard until the end of the test and returns once it has
// made its first check. It is exported for the tests of package ledger_test
// as well.
func RunGuard(tb testing.TB, guard *StreamGuard) {
	tb.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = guard.Run(ctx)
	}()
	tb.Cleanup(func() { stop(); <-done })
	require.Eventually(tb, func() bool { return !guard.Health().CheckedAt.IsZero() }, 10*time.Second, 2*time.Millisecond)
}
