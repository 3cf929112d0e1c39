package audit_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/projector"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runIndex folds the stream into a projector index and waits until it has
// applied seq.
func runIndex(t *testing.T, tl *testLedger, seq uint64) *projector.Index {
	t.Helper()
	idx, err := projector.Open(t.TempDir(), projector.IndexOptions{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	p := projector.New(tl.js, idx, projector.Options{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = idx.Close()
	})
	waitCtx, waitCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer waitCancel()
	_, err = idx.Wait(waitCtx, seq)
	require.NoError(t, err)
	return idx
}

func TestVerifyComparesLiveIndex(t *testing.T) {
	tl := newTestLedger(t)
	last := tl.history(45)
	idx := runIndex(t, tl, last)

	t.Run("equal", func(t *testing.T) {
		live := func(ctx context.Context) (audit.IndexDigest, error) { return audit.DigestIndex(ctx, idx.ScanConsents) }
		r := verify(t, tl.js, audit.VerifyOptions{Live: live})
		assert.True(t, r.OK(), "problems: %v", r.Problems)
		require.NotNil(t, r.Live)
		assert.True(t, r.Live.Match)
		assert.Equal(t, last, r.Live.Live.IndexSeq)
		assert.Equal(t, uint64(10), r.Live.Live.Consents)
		assert.Equal(t, r.Live.Live, r.Live.Fresh)
	})

	t.Run("index behind the stream compares at its own seq", func(t *testing.T) {
		behind, err := audit.DigestIndex(context.Background(), idx.ScanConsents)
		require.NoError(t, err)
		more := tl.history(7)
		live := func(context.Context) (audit.IndexDigest, error) { return behind, nil }
		r := verify(t, tl.js, audit.VerifyOptions{Live: live})
		assert.True(t, r.OK(), "problems: %v", r.Problems)
		assert.Equal(t, more, r.LastSeq)
		assert.True(t, r.Live.Match)
		assert.Equal(t, last, r.Live.Fresh.IndexSeq)
	})

	t.Run("a changed state in the index", func(t *testing.T) {
		tampered := func(ctx context.Context) (audit.IndexDigest, error) {
			return audit.DigestIndex(ctx, func(ctx context.Context, fn func(*events.Consent) error) (uint64, error) {
				first := true
				return idx.ScanConsents(ctx, func(c *events.Consent) error {
					if first {
						c.PolicyVersion++ // one field of one consent
						first = false
					}
					return fn(c)
				})
			})
		}
		r := verify(t, tl.js, audit.VerifyOptions{Live: tampered})
		require.False(t, r.OK())
		assert.False(t, r.Live.Match)
		first := r.First()
		assert.Equal(t, audit.CheckIndex, first.Check)
		assert.Equal(t, r.Live.Live.IndexSeq, first.Seq)
	})

	t.Run("index unreachable", func(t *testing.T) {
		down := func(context.Context) (audit.IndexDigest, error) { return audit.IndexDigest{}, events.ErrNotReady }
		r := verify(t, tl.js, audit.VerifyOptions{Live: down})
		assert.True(t, r.OK(), "an index that cannot answer is reported, not a problem of the stream")
		assert.Contains(t, r.Live.Err, "not ready")
	})
}
