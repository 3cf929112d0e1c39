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
// Each answer is exactly the state at the checkpoint it comes with. The
// slots and seq (the checkpoint they reflect) change together, under mu,
// when a commit is done (committed); gen counts the commits, odd while one
// is being written to Pebble (begin). A reader that misses reads Pebble and
// keeps its answer, and fills the slot, only when gen was even and did not
// move around the read: no commit landed in between, so Pebble's state is
// the one at seq, and a value read before a commit cannot land after it.
type hotStates struct {
	mu    sync.RWMutex
	gen   uint64 // 2 per commit; odd while a commit is written
	seq   uint64 // the checkpoint the slots (and Pebble, when gen is even) reflect
	slots [hotSlots]hotSlot
}

type hotSlot struct {
	key string // consent key; "" for an empty slot
	c   events.Consent
}

var hotSeed = maphash.MakeSeed()

func hotIndex(key []byte) int { return int(maphash.Bytes(hotSeed, key) & (hotSlots - 1)) }

// hotIndexString is hotIndex of a key held as a string (maphash hashes
// both alike).
func hotIndexString(key string) int { return int(maphash.String(hotSeed, key) & (hotSlots - 1)) }

// get returns the cached state of the consent key and the checkpoint it
// is the state at; on a miss, the generation to pass to stable and fill
// after reading Pebble.
func (h *hotStates) get(key []byte) (c events.Consent, ok bool, gen, seq uint64) {
	s := &h.slots[hotIndex(key)]
	h.mu.RLock()
	defer h.mu.RUnlock()
	if s.key == string(key) && s.key != "" {
		return s.c, true, h.gen, h.seq
	}
	return events.Consent{}, false, h.gen, h.seq
}

// stable reports whether no commit was written since get returned gen,
// and the checkpoint a Pebble read made in between reflects.
func (h *hotStates) stable(gen uint64) (uint64, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.seq, h.gen == gen && gen%2 == 0
}

// fill caches c, read from Pebble after get returned gen, when stable.
func (h *hotStates) fill(key []byte, c events.Consent, gen uint64) {
	s := &h.slots[hotIndex(key)]
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != gen || gen%2 != 0 {
		return
	}
	if s.key != string(key) {
		s.key = string(key)
	}
	s.c = c
}

// begin marks a commit about to be written to Pebble.
func (h *hotStates) begin() {
	h.mu.Lock()
	h.gen++
	h.mu.Unlock()
}

// committed ends the commit begin marked: it updates the cached slots
// among changed (the states it wrote, by consent key; nil when it failed)
// and records checkpoint as what the slots reflect.
func (h *hotStates) committed(changed map[string]events.Consent, checkpoint uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gen++
	h.seq = checkpoint
	for k, c := range changed {
		if s := &h.slots[hotIndexString(k)]; s.key == k {
			s.c = c
		}
	}
}
