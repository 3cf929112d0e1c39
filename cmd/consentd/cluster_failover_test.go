package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClusterSurvivesLossOfTheStreamLeader kills the NATS node leading the
// R3 stream under a steady write load through two consentd instances.
// Every acknowledged append must be in the stream exactly once, every hash
// chain intact, writes must resume under the new leader, and both indexes
// must converge to a fresh fold of the stream.
func TestClusterSurvivesLossOfTheStreamLeader(t *testing.T) {
	h := startClusterHarness(t, 2)
	js := h.jetStream()
	stream, err := js.Stream(t.Context(), wire.DefaultStream)
	require.NoError(t, err)
	require.Equal(t, 3, stream.CachedInfo().Config.Replicas)

	// The writers connect to the node that leads the stream, so that its
	// loss also loses the replies to the commands in flight: their
	// retries must come back as duplicates, never as second events.
	leader := h.cluster.StreamLeader(wire.DefaultStream)
	const writers = 16
	load := newWriteLoad("load", writers, 8)
	var clients []*client.Client
	for w := range writers {
		clients = append(clients, client.NewClient(h.connectTo(leader, fmt.Sprintf("writer-%d", w)), client.ClientOptions{}))
	}
	stopLoad := load.start(t.Context(), clients)
	defer stopLoad()

	const before, after = 100, 100
	load.waitForAcks(t, before, 30*time.Second)
	require.Equal(t, leader, h.cluster.StreamLeader(wire.DefaultStream), "the stream leader moved under load")
	metaLeader := -1
	for i := range h.cluster.Size() {
		if h.cluster.Node(i).JetStreamIsLeader() {
			metaLeader = i
		}
	}
	killedAt := time.Now()
	h.cluster.Stop(leader)
	stopped := time.Now()
	ackedAtKill := load.acked.Load()

	// A probe on a surviving node measures when appends are taken again:
	// one grant, sent every 100ms (same idempotency key) until acknowledged.
	probe := newWriteLoad("probe", 1, 1)
	probe.callTimeout = 100 * time.Millisecond
	survivor := (leader + 1) % h.cluster.Size()
	stopProbe := probe.start(t.Context(), []*client.Client{client.NewClient(h.connectTo(survivor, "probe"), client.ClientOptions{})})
	probe.waitForAcks(t, 1, 60*time.Second)
	stopProbe()
	probed := probe.snapshot()[0]
	resumed := probed.at.Sub(killedAt)
	// Each index applies the first append under the new leader, also when
	// its consumer was on the lost node and has to be recreated: in about
	// two heartbeats (2s), and a request to recreate it that goes
	// unanswered (the lost node also led the JetStream meta group) is made
	// again after 0.5s.
	const resumeWithin = 6 * time.Second
	var indexed []string
	for _, in := range h.instances {
		waitIndex(t, in.index, probed.seq)
		took := time.Since(killedAt)
		indexed = append(indexed, fmt.Sprintf("consentd %s %s", in.name, took.Round(time.Millisecond)))
		assert.Less(t, took, resumeWithin, "consentd %s: index stood still after the node loss", in.name)
	}

	load.waitForAcks(t, ackedAtKill+after, 60*time.Second)
	stopLoad()
	h.stopServices()
	newLeader := h.cluster.StreamLeader(wire.DefaultStream)
	assert.NotEqual(t, leader, newLeader)

	acks := load.snapshot()
	t.Logf("killed n%d (stream leader; meta leader n%d) after %d acks; it took %s to stop; new leader n%d", leader+1, metaLeader+1, ackedAtKill,
		stopped.Sub(killedAt).Round(time.Millisecond), newLeader+1)
	t.Logf("write gap: a new append was acknowledged %s after the kill (probe %v); longest pause between the writers' acknowledgements: %s",
		resumed.Round(time.Millisecond), probe.failureSummary(), longestPause(acks).Round(time.Millisecond))
	t.Logf("the indexes had that append after the kill: %v", indexed)
	t.Logf("%d acknowledged, %d of them duplicates of an earlier attempt; slowest command took %s; failed attempts: %v",
		len(acks), countDuplicates(acks), slowest(acks).Round(time.Millisecond), load.failureSummary())
	assert.Empty(t, load.conflicts(), "a writer alone on its consents, retrying with the same key, must never meet a conflict")
	// Enough writers that each instance commits in groups: the kill
	// caught batches in flight, not single publishes only.
	var batches uint64
	for _, in := range h.instances {
		stats, _ := in.ledger.GroupCommitStats()
		t.Logf("consentd %s group commit: %+v", in.name, stats)
		batches += stats.Batches
	}
	assert.Positive(t, batches, "no append went out in an atomic batch")

	audit := auditStream(t, js)
	audit.assertAcknowledged(t, append(acks, probe.snapshot()...))
	for _, in := range h.instances {
		audit.assertIndexMatches(t, "consentd "+in.name, in.index)
	}
}

// longestPause returns the longest time between two acknowledgements.
func longestPause(acks []ack) time.Duration {
	times := make([]time.Time, 0, len(acks))
	for _, a := range acks {
		times = append(times, a.at)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var longest time.Duration
	for i := 1; i < len(times); i++ {
		longest = max(longest, times[i].Sub(times[i-1]))
	}
	return longest
}

// slowest returns the longest time a command took from its first attempt
// to its acknowledgement.
func slowest(acks []ack) time.Duration {
	var d time.Duration
	for _, a := range acks {
		d = max(d, a.at.Sub(a.firstSent))
	}
	return d
}

func countDuplicates(acks []ack) int {
	n := 0
	for _, a := range acks {
		if a.duplicate {
			n++
		}
	}
	return n
}
