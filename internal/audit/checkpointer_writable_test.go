package audit_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckpointerAppendsNothingWhileWritesAreRefused: consentd's stream
// guard refuses writes (Writable), so the checkpointer appends nothing
// and says why; once writes are allowed again it appends.
func TestCheckpointerAppendsNothingWhileWritesAreRefused(t *testing.T) {
	tl := newTestLedger(t)
	signer, _ := newSigner(t)
	clock := &testClock{t: t0.Add(30 * time.Second)}
	var refused atomic.Bool
	refused.Store(true)
	cp, err := audit.NewCheckpointer(tl.js, audit.CheckpointerOptions{Signer: signer, Interval: time.Minute, Now: clock.Now,
		Writable: func() error {
			if refused.Load() {
				return &ledger.WritesRefusedError{Stream: wire.DefaultStream, Problems: []string{"is sealed (sealed is true): no event can be appended"}}
			}
			return nil
		}})
	require.NoError(t, err)

	last := tl.history(5)
	_, err = cp.Once(t.Context())
	require.ErrorIs(t, err, ledger.ErrUnsafeStream)
	assert.Contains(t, err.Error(), "sealed is true")
	info, err := tl.stream.Info(t.Context())
	require.NoError(t, err)
	assert.Equal(t, last, info.State.LastSeq, "no checkpoint was appended")

	refused.Store(false)
	res := once(t, cp)
	require.True(t, res.Published, res.Skipped)
	assert.Equal(t, last, res.Checkpoint.UpToSeq)
}
