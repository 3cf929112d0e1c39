package projector

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHotStatesAnswerTheStateAtTheirCheckpoint: while one writer commits a
// new state of a few consents at every checkpoint, readers looking them up
// (from memory once hot, from Pebble on a miss) always get exactly the
// state at the checkpoint their answer carries: never older, never newer.
func TestHotStatesAnswerTheStateAtTheirCheckpoint(t *testing.T) {
	idx := openIndex(t, t.TempDir(), IndexOptions{ReadyOnOpen: true})
	keys := make([]events.Key, 4)
	for i := range keys {
		keys[i] = events.Key{Tenant: "t", SubjectID: fmt.Sprintf("s%d", i), Purpose: "p"}
	}
	const commits = 1500
	ctx := context.Background()
	var wg sync.WaitGroup
	stale := make(chan string, 1)
	done := make(chan struct{})
	for r := range 3 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				k := keys[(n+r)%len(keys)]
				c, seq, err := idx.Consent(ctx, k, 0)
				if err != nil {
					stale <- err.Error()
					return
				}
				if c.Seq != seq { // every consent changes at every checkpoint
					select {
					case stale <- fmt.Sprintf("%s: state of seq %d answered at checkpoint %d", k.SubjectID, c.Seq, seq):
					default:
					}
					return
				}
			}
		})
	}
	for seq := uint64(1); seq <= commits; seq++ {
		b, err := idx.newBatch()
		require.NoError(t, err)
		changed := map[string]events.Consent{}
		for _, k := range keys { // every consent changes at every checkpoint
			c := events.Consent{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose, State: events.StateRequested, Seq: seq}
			key := appendConsentKey(nil, k)
			require.NoError(t, b.Set(key, appendConsent(nil, &c), nil))
			changed[string(key)] = c
		}
		require.NoError(t, idx.commit(b, changed, nil, seq, 0))
		require.NoError(t, b.Close())
	}
	close(done)
	wg.Wait()
	select {
	case msg := <-stale:
		t.Fatal(msg)
	default:
	}
	c, seq, err := idx.Consent(ctx, keys[0], 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(commits), seq)
	assert.Equal(t, uint64(commits), c.Seq)
	assert.Positive(t, idx.hot.cached(), "lookups were kept in memory")
}

// TestConsentReadOverlappingACommit: a lookup whose Pebble read overlaps a
// commit (written to Pebble, its checkpoint not yet published) is not
// answered with the new state at the old checkpoint; once the commit is
// done it is answered with both.
func TestConsentReadOverlappingACommit(t *testing.T) {
	idx := openIndex(t, t.TempDir(), IndexOptions{ReadyOnOpen: true})
	k := events.Key{Tenant: "t", SubjectID: "s", Purpose: "p"}
	requested := events.Consent{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose, State: events.StateRequested, Seq: 1}
	commitState(t, idx, requested, 1)

	// A commit half done, as the projector leaves it between its two steps.
	granted := requested
	granted.State, granted.Seq = events.StateGranted, 2
	key := appendConsentKey(nil, k)
	idx.hot.begin()
	b, err := idx.newBatch()
	require.NoError(t, err)
	require.NoError(t, b.Set(key, appendConsent(nil, &granted), nil))
	require.NoError(t, idx.apply(b, nil))
	require.NoError(t, b.Close())

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c, seq, err := idx.Consent(short, k, 0)
	require.ErrorIs(t, err, context.DeadlineExceeded, "answered %s at %d in the middle of a commit", c.State, seq)

	idx.hot.committed(map[string]events.Consent{string(key): granted}, nil, 2)
	idx.checkpoint.Store(2)
	c, seq, err = idx.Consent(context.Background(), k, 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), seq)
	assert.Equal(t, granted, c)
}

// cached reports how many slots hold a consent (for tests).
func (h *hotStates) cached() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for set := range h.sets {
		for _, s := range h.sets[set] {
			if s.key != "" {
				n++
			}
		}
	}
	return n
}

func TestHotSetOfStringAndBytesAgree(t *testing.T) {
	for _, k := range []string{"", "a", "acme\x00person-1@example.com\x00marketing_email"} {
		assert.Equal(t, hotSet([]byte(k)), hotSetString(k), "key %q", k)
	}
}

// TestHotStatesKeepAConsentPerWayOfOneSet: as many consents as a set has
// ways, all falling in that set, are all kept; one more takes the place
// of the oldest.
func TestHotStatesKeepAConsentPerWayOfOneSet(t *testing.T) {
	var h hotStates
	var same [][]byte
	for i := 0; len(same) < hotWays+1; i++ {
		k := []byte(fmt.Sprintf("t\x00s%d\x00p", i))
		if len(same) == 0 || hotSet(k) == hotSet(same[0]) {
			same = append(same, k)
		}
	}
	state := func(k []byte) events.Consent { return events.Consent{SubjectID: string(k), Seq: 1} }
	kept := func(keys [][]byte) {
		t.Helper()
		for _, k := range keys {
			c, ok, _, _ := h.get(k, "")
			require.True(t, ok, "%q is kept", k)
			assert.Equal(t, state(k), c)
		}
	}
	for _, k := range same[:hotWays] {
		_, ok, gen, _ := h.get(k, "")
		require.False(t, ok)
		h.fill(k, state(k), gen)
	}
	kept(same[:hotWays])

	_, _, gen, _ := h.get(same[hotWays], "")
	h.fill(same[hotWays], state(same[hotWays]), gen)
	_, ok, _, _ := h.get(same[0], "")
	assert.False(t, ok, "the set's oldest consent made room")
	kept(same[1:])

	// A commit updates a consent in whichever slot holds it.
	for _, k := range same[1:] {
		updated := state(k)
		updated.Seq = 2
		h.begin()
		h.committed(map[string]events.Consent{string(k): updated}, nil, 2)
		c, ok, _, seq := h.get(k, "")
		require.True(t, ok)
		assert.Equal(t, updated, c)
		assert.Equal(t, uint64(2), seq)
	}
}
