package projector

import (
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Signed checkpoints share the stream with the events: the projector
// passes over them, neither folding them nor calling them violations, and
// its checkpoint moves past them.
func TestProjectorPassesOverCheckpoints(t *testing.T) {
	_, _, js := natstest.Run(t)
	cfg := testStreamConfig()
	cfg.Subjects = append(cfg.Subjects, events.CheckpointSubjects)
	createStream(t, js, cfg)
	h := newHistory(7, 1, 3, 2)
	h.add(t, 20)
	h.queue(events.CheckpointSubject, "", []byte(`{"v":1,"up_to_seq":20}`))
	h.queue(events.CheckpointSubject, "", []byte(`not even json`))
	h.add(t, 20)
	h.queue(events.CheckpointSubject, "", []byte(`{"v":1,"up_to_seq":42}`))
	h.publish(t, js)

	idx := openIndex(t, t.TempDir(), IndexOptions{})
	p := New(js, idx, Options{MaxBatch: 8, Logger: testLogger(t)})
	stop := runProjector(t, p)
	waitFor(t, idx, h.seq)

	assertMatchesModel(t, idx, h)
	assert.Zero(t, idx.ViolationCount())
	require.NoError(t, stop())
	assert.Equal(t, h.seq, idx.Checkpoint())
	assert.Empty(t, p.Health().Err)
}
