package projector

import (
	"testing"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Health counts the messages the projector folded (consentd's
// consent_projector_events_folded_total) and the runs that rebuilt an
// empty index from a stream with messages (consent_index_rebuilds_total);
// a restart on a built index is not a rebuild.
func TestHealthCountsFoldedMessagesAndRebuilds(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	h := newHistory(3, 1, 5, 2)
	h.add(t, 50)
	h.publish(t, js)

	idx := openIndex(t, t.TempDir(), IndexOptions{})
	p := New(js, idx, Options{Logger: testLogger(t)})
	stop := runProjector(t, p)
	waitFor(t, idx, h.seq)
	assert.Equal(t, h.seq, p.Health().Folded)
	assert.Equal(t, uint64(1), p.Health().Rebuilds)
	require.NoError(t, stop())

	h.add(t, 10)
	h.publish(t, js)
	stop = runProjector(t, p)
	waitFor(t, idx, h.seq)
	assert.Equal(t, h.seq, p.Health().Folded)
	assert.Equal(t, uint64(1), p.Health().Rebuilds, "a restart on a built index")
	require.NoError(t, stop())
}
