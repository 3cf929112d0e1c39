package projector

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewKeysNeverForgetsAndRarelyLies(t *testing.T) {
	const n = 20000
	f := newNewKeys(n)
	for i := range n {
		f.add(fmt.Appendf(nil, "added-%d", i))
	}
	for i := range n {
		assert.True(t, f.mayContain(fmt.Appendf(nil, "added-%d", i)), "added-%d", i)
	}
	falsePositives := 0
	for i := range n {
		if f.mayContain(fmt.Appendf(nil, "other-%d", i)) {
			falsePositives++
		}
	}
	assert.Less(t, falsePositives, n/50, "false positives among %d keys never added", n)

	tiny := newNewKeys(0)
	tiny.add([]byte("k"))
	assert.True(t, tiny.mayContain([]byte("k")))
}

// TestRebuildFilterFallsBackToTheIndex: with the written filter on, a
// consent the fold has written but no longer holds in memory is still read
// from the index, so a forged first event on it (prev_hash "") is a link
// violation, while a consent never written is known to be new.
func TestRebuildFilterFallsBackToTheIndex(t *testing.T) {
	h := newHistory(3, 1, 2, 1)
	idx := openIndex(t, t.TempDir(), IndexOptions{ReadyOnOpen: true})
	f, err := newFolder(idx, testLogger(t))
	require.NoError(t, err)
	defer f.close()
	f.written = newNewKeys(100)

	written, fresh := h.keys[0], h.keys[1]
	first := h.nextEvent(t, written)
	_, err = first.Seal()
	require.NoError(t, err)
	require.NoError(t, f.apply(&delivery{seq: 1, subj: written.NATSSubject(), ev: &first, key: appendConsentKey(nil, written)}))
	require.NoError(t, f.flush())
	clear(f.committed) // as when the folder's memory of committed states has filled up

	again := h.nextEvent(t, written) // decided against no state: prev_hash ""
	_, err = again.Seal()
	require.NoError(t, err)
	require.Empty(t, again.PrevHash)
	require.NoError(t, f.apply(&delivery{seq: 2, subj: written.NATSSubject(), ev: &again, key: appendConsentKey(nil, written)}))
	newcomer := h.nextEvent(t, fresh)
	_, err = newcomer.Seal()
	require.NoError(t, err)
	require.NoError(t, f.apply(&delivery{seq: 3, subj: fresh.NATSSubject(), ev: &newcomer, key: appendConsentKey(nil, fresh)}))
	require.NoError(t, f.flush())

	violations, err := idx.Violations()
	require.NoError(t, err)
	require.Len(t, violations, 1)
	assert.Equal(t, uint64(2), violations[0].Seq)
	assert.Equal(t, CheckLink, violations[0].Check)
	c, _, err := idx.Consent(context.Background(), written, 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), c.Seq, "the forged event was not applied")
	c, _, err = idx.Consent(context.Background(), fresh, 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), c.Seq)
}
