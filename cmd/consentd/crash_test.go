package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/projector"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConsentdSurvivesSIGKILLUnderWriteLoad kills consentd (embedded NATS
// server, fsync on every write) with SIGKILL while writers grant and
// revoke through it, at three different moments of the load, and restarts
// it on the same data directory each time. After every restart, every
// acknowledged append must be in the stream exactly once with every hash
// chain intact, and the index must answer as a fresh fold of the stream;
// at the end the index on disk must equal that fold.
func TestConsentdSurvivesSIGKILLUnderWriteLoad(t *testing.T) {
	dataDir := t.TempDir()
	port := natstest.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)

	child := startCrashChild(t, dataDir, port)
	// The writers' connections outlive each consentd: they reconnect to
	// the same port once it is back.
	const writers = 3
	var clients []*client.Client
	for w := range writers {
		nc, err := nats.Connect(url, append(adminOptions(t, dataDir), writerOptions(fmt.Sprintf("writer-%d", w))...)...)
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		clients = append(clients, client.NewClient(nc, client.ClientOptions{}))
	}
	load := newWriteLoad("crash", writers, 6)

	// Kill early (few events, the first index commits), in the middle and
	// later in the load, counted in acknowledgements since the restart.
	for round, killAfter := range []int64{5, 40, 120} {
		stopLoad := load.start(t.Context(), clients)
		load.waitForAcks(t, load.acked.Load()+killAfter, 60*time.Second)
		child.kill() // commands are in flight: some landed, their replies lost
		stopLoad()
		t.Logf("round %d: SIGKILL after %d acknowledged in all; failed attempts so far: %v", round+1, load.acked.Load(), load.failureSummary())

		child = startCrashChild(t, dataDir, port)
		verifyAfterRestart(t, url, dataDir, load)
	}

	// Commands left pending by the last kill are retried with their keys.
	// Then consentd stops cleanly, finishing what it was given, and starts
	// again: from then on nothing is written.
	stopLoad := load.start(t.Context(), clients)
	load.waitForAcks(t, load.acked.Load()+2*writers, 60*time.Second)
	stopLoad()
	child.stop()
	child = startCrashChild(t, dataDir, port)
	audit := verifyAfterRestart(t, url, dataDir, load)
	acks := load.snapshot()
	t.Logf("%d acknowledged, %d of them duplicates of an attempt whose reply a kill had lost; stream at seq %d",
		len(acks), countDuplicates(acks), audit.lastSeq)

	// The index on disk, once consentd has stopped cleanly, is the fold.
	child.stop()
	idx, err := projector.Open(filepath.Join(dataDir, "index"), projector.IndexOptions{ReadyOnOpen: true})
	require.NoError(t, err)
	defer idx.Close()
	assert.Equal(t, audit.lastSeq, idx.Checkpoint())
	audit.assertIndexMatches(t, "index on disk", idx)
}

// verifyAfterRestart checks consentd at url, just restarted with no load
// running: every acknowledged append of load is in the stream exactly
// once, the stream is intact, and every status equals a fresh fold of the
// stream.
func verifyAfterRestart(t *testing.T, url, dataDir string, load *writeLoad) *streamAudit {
	t.Helper()
	nc, err := nats.Connect(url, serviceOptions(t, dataDir)...)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	audit := auditStream(t, js, openWithKeys(t, js, filepath.Join(dataDir, KEKFile)))
	acks := load.snapshot()
	audit.assertAcknowledged(t, acks)
	audit.assertStatusesMatch(t, connectClient(t, url, adminOptions(t, dataDir)...))
	return audit
}
