package projector

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pendingMsg is a stream message at seq with pending more after it: a
// checkpoint, which inspect passes over without reading its payload.
type pendingMsg struct {
	jetstream.Msg
	seq, pending uint64
}

func (m pendingMsg) Metadata() (*jetstream.MsgMetadata, error) {
	meta := &jetstream.MsgMetadata{NumPending: m.pending}
	meta.Sequence.Stream = m.seq
	return meta, nil
}

func (m pendingMsg) Subject() string { return "consent.checkpoints.test" }

// nextRun takes the next run in stream order, failing after 10s.
func nextRun(t *testing.T, c *checker) []uint64 {
	t.Helper()
	select {
	case r := <-c.ordered:
		var seqs []uint64
		for _, d := range c.wait(r) {
			seqs = append(seqs, d.seq)
		}
		c.release(r)
		return seqs
	case <-time.After(10 * time.Second):
		t.Fatal("no run came")
		return nil
	}
}

func TestCheckerHandsOverEachMessageNearTheStreamsEnd(t *testing.T) {
	c := newChecker(2, 8)
	defer c.stop()
	c.linger = time.Hour // no run may need the timer
	for seq := uint64(1); seq <= 3; seq++ {
		c.add(pendingMsg{seq: seq, pending: 3 - seq})
	}
	for seq := uint64(1); seq <= 3; seq++ {
		assert.Equal(t, []uint64{seq}, nextRun(t, c))
	}
}

func TestCheckerGathersRunsWhileFarBehindInStreamOrder(t *testing.T) {
	c := newChecker(2, 8)
	defer c.stop()
	c.linger = time.Hour
	const n = 2*checkRunMax + checkRunBehind
	go func() { // add blocks while the runs queued are not taken
		for seq := uint64(1); seq <= n; seq++ {
			c.add(pendingMsg{seq: seq, pending: n - seq})
		}
	}()
	var got []uint64
	for _, want := range []int{checkRunMax, checkRunMax, 1, 1} {
		run := nextRun(t, c)
		require.Len(t, run, want)
		got = append(got, run...)
	}
	for len(got) < n {
		got = append(got, nextRun(t, c)...)
	}
	for i, seq := range got {
		require.Equal(t, uint64(i+1), seq)
	}
}

func TestCheckerSendsARunWhosePendingMessagesDoNotCome(t *testing.T) {
	c := newChecker(2, 8)
	defer c.stop()
	c.linger = 10 * time.Millisecond
	c.add(pendingMsg{seq: 1, pending: checkRunBehind + 5})
	assert.Equal(t, []uint64{1}, nextRun(t, c))

	c.linger = 300 * time.Millisecond // long enough to take both adds
	c.add(pendingMsg{seq: 2, pending: checkRunBehind + 4})
	c.add(pendingMsg{seq: 3, pending: checkRunBehind + 3})
	assert.Equal(t, []uint64{2, 3}, nextRun(t, c), "the timer is armed again for the next run")
}
