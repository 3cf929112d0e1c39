package projector

import (
	"strconv"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFolderRemembersCommittedStatesWithinABound checks that the states of
// a committed batch are served from memory afterwards, and that the cache
// starts again empty instead of growing past committedLimit.
func TestFolderRemembersCommittedStatesWithinABound(t *testing.T) {
	f := &folder{states: map[string]events.Consent{}, committed: map[string]events.Consent{}}
	f.states["a"] = events.Consent{Seq: 7, Hash: "h7"}
	f.remember()
	require.Empty(t, f.states, "the batch's states are moved, not copied")
	c, err := f.current([]byte("a"), events.Key{})
	require.NoError(t, err)
	assert.Equal(t, uint64(7), c.Seq, "a committed state is read from memory")

	for i := range committedLimit {
		f.states[strconv.Itoa(i)] = events.Consent{Seq: uint64(i)}
	}
	f.remember()
	assert.LessOrEqual(t, len(f.committed), committedLimit)
	assert.NotContains(t, f.committed, "a", "the cache started again before passing its bound")
	assert.Contains(t, f.committed, "0")
}
