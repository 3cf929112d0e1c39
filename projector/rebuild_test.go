package projector

import (
	"context"
	"os"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// statuses reads the status of every consent of h and every person's list
// as the service would show them at h's clock, which has left some grants
// expired.
func statuses(t *testing.T, idx *Index, h *history) (map[events.Key]events.Status, map[[2]string][]events.Status) {
	t.Helper()
	ctx := context.Background()
	one := make(map[events.Key]events.Status, len(h.keys))
	for _, k := range h.keys {
		c, seq, err := idx.Consent(ctx, k, 0)
		require.NoError(t, err)
		st := c.View(h.now, 2)
		st.IndexSeq = seq
		one[k] = st
	}
	lists := make(map[[2]string][]events.Status)
	for _, p := range h.persons() {
		cs, seq, err := idx.Consents(ctx, events.Key{Tenant: p[0], SubjectID: p[1]}, 0)
		require.NoError(t, err)
		for _, c := range cs {
			st := c.View(h.now, 0)
			st.IndexSeq = seq
			lists[p] = append(lists[p], st)
		}
	}
	return one, lists
}

func TestIndexRebuildsFromTheStream(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	h := newHistory(8, 3, 10, 4)
	h.add(t, 5000) // past rebuildFilterMin: both folds keep the written filter
	h.publish(t, js)
	for _, p := range h.persons() { // consents without events read as none
		h.keys = append(h.keys, events.Key{Tenant: p[0], SubjectID: p[1], Purpose: "never_asked"})
	}

	dir := t.TempDir()
	idx := openIndex(t, dir, IndexOptions{})
	stop := runProjector(t, New(js, idx, Options{Logger: testLogger(t)}))
	waitFor(t, idx, h.seq)
	assertMatchesModel(t, idx, h)
	before, beforeLists := statuses(t, idx, h)
	require.NoError(t, stop())
	require.NoError(t, idx.Close())

	// The test is only as good as the variety of what it compares.
	seen := map[events.State]int{}
	allowed := 0
	for _, st := range before {
		seen[st.State]++
		if st.Allowed {
			allowed++
		}
	}
	for _, s := range []events.State{events.StateNone, events.StateRequested, events.StateGranted, events.StateDenied, events.StateRevoked, events.StateExpired} {
		require.Positive(t, seen[s], "no consent ends %s: %v", s, seen)
	}
	require.Positive(t, allowed)
	require.Less(t, allowed, seen[events.StateGranted], "min_policy_version 2 refuses some grants")

	require.NoError(t, os.RemoveAll(dir))
	idx = openIndex(t, dir, IndexOptions{})
	require.Zero(t, idx.Checkpoint())
	stop = runProjector(t, New(js, idx, Options{Logger: testLogger(t)}))
	waitFor(t, idx, h.seq)
	after, afterLists := statuses(t, idx, h)
	require.NoError(t, stop())

	assert.Equal(t, before, after)
	assert.Equal(t, beforeLists, afterLists)
}
