package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Against a stream of three replicas consentd commits in groups by
// default, and the groups keep every command exact: under a concurrent
// load through two instances, each acknowledged command is stored once at
// the seq its reply named, every consent's history is one hash chain, and
// both indexes fold to what the stream says.
func TestClusterCommitsInGroups(t *testing.T) {
	h := startClusterHarness(t, 2)
	const writers = 32
	load := newWriteLoad("group", writers, 4)
	var clients []*client.Client
	for w := range writers {
		clients = append(clients, client.NewClient(h.connect(fmt.Sprintf("writer-%d", w)), client.ClientOptions{}))
	}
	stopLoad := load.start(t.Context(), clients)
	defer stopLoad()
	load.waitForAcks(t, 600, 60*time.Second)
	stopLoad()
	h.stopServices()

	var batches uint64
	for _, in := range h.instances {
		stats, grouped := in.ledger.GroupCommitStats()
		require.True(t, grouped, "consentd %s: no group commit against a replicated stream", in.name)
		t.Logf("consentd %s: %+v", in.name, stats)
		batches += stats.Batches
	}
	assert.Positive(t, batches, "no append went out in an atomic batch")

	audit := auditStream(t, h.jetStream())
	audit.assertAcknowledged(t, load.snapshot())
	for _, in := range h.instances {
		audit.assertIndexMatches(t, "consentd "+in.name, in.index)
	}
}
