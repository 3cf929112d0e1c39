package projector

import (
	"hash/maphash"
	"sync"

	"github.com/consentledger/consent/events"
)

// hotSlots is the number of consents kept in memory for lookups (about
// 1 MiB); a power of two.
const hotSlots = 4096

// hotStates keeps the states of recently looked-up consents in memory, so
// that a status lookup of a hot consent neither reads Pebble nor decodes.
// It is direct-mapped: a consent has one slot, chosen by a hash of its key,
// and a lookup that misses takes the slot over. Nothing grows or is
// scanned, so a miss costs little more than the Pebble read it needs
// anyway.
//
// It never answers older than the index: the writer updates every slot a
// commit changes before the checkpoint advances (committed), and a reader
// fills a slot from Pebble only when no commit happened since before its
// read (gen), so a value read before a commit cannot land after it.
type hotStates struct {
	mu    sync.RWMutex
	gen   uint64 // commits so far
	slots [hotSlots]hotSlot
}

type hotSlot struct {
	key string // consent key; "" for an empty slot
	c   events.Consent
}

var hotSeed = maphash.MakeSeed()

func hotIndex(key []byte) int { return int(maphash.Bytes(hotSeed, key) & (hotSlots - 1)) }

// get returns the cached state of the consent key, or the generation to
// pass to fill after reading it from Pebble.
func (h *hotStates) get(key []byte) (events.Consent, bool, uint64) {
	s := &h.slots[hotIndex(key)]
	h.mu.RLock()
	defer h.mu.RUnlock()
	if s.key == string(key) && s.key != "" {
		return s.c, true, h.gen
	}
	return events.Consent{}, false, h.gen
}

// fill caches c, read from Pebble after get returned gen, unless a commit
// has happened since.
func (h *hotStates) fill(key []byte, c events.Consent, gen uint64) {
	s := &h.slots[hotIndex(key)]
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != gen {
		return
	}
	if s.key != string(key) {
		s.key = string(key)
	}
	s.c = c
}

// committed updates the cached slots among changed (the states a commit
// wrote, by consent key) and starts a new generation.
func (h *hotStates) committed(changed map[string]events.Consent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gen++
	for k, c := range changed {
		if s := &h.slots[hotIndex([]byte(k))]; s.key == k {
			s.c = c
		}
	}
}

// cached reports how many slots hold a consent (for tests).
func (h *hotStates) cached() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for i := range h.slots {
		if h.slots[i].key != "" {
			n++
		}
	}
	return n
}
