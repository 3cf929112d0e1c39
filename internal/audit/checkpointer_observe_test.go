package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/consentledger/consent/internal/audit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckpointerRunTellsObserve: every attempt Run makes reaches
// Observe (consentd's consent_checkpoints_total), published or not.
func TestCheckpointerRunTellsObserve(t *testing.T) {
	tl := newTestLedger(t)
	signer, _ := newSigner(t)
	clock := &testClock{t: t0.Add(30 * time.Second)}
	type attempt struct {
		res audit.CheckpointResult
		err error
	}
	attempts := make(chan attempt, 4)
	cp, err := audit.NewCheckpointer(tl.js, audit.CheckpointerOptions{Signer: signer, Interval: time.Minute, Now: clock.Now,
		Observe: func(res audit.CheckpointResult, err error) { attempts <- attempt{res, err} }})
	require.NoError(t, err)
	last := tl.history(3)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx) }()
	select {
	case a := <-attempts:
		require.NoError(t, a.err)
		assert.True(t, a.res.Published, a.res.Skipped)
		assert.Equal(t, last, a.res.Checkpoint.UpToSeq)
	case <-time.After(10 * time.Second):
		t.Fatal("Run's first attempt was not observed")
	}
	cancel()
	require.NoError(t, <-done)
}
