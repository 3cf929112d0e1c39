package projector

import (
	"hash/maphash"
	"sync"
	"unsafe"

	"github.com/consentledger/consent/events"
)

// hotSlots is the number of consents kept in memory for lookups (about
// 1 MiB); a power of two. They are kept in sets of hotWays.
const (
	hotSlots = 4096
	hotWays  = 4
	hotSets  = hotSlots / hotWays
)

// hotStates keeps the states of recently looked-up consents in memory, so
// that a status lookup of a hot consent neither reads Pebble nor decodes.
// It is a four-way set-associative cache: a consent may sit in any slot of
// one set, chosen by a hash of its key, and a lookup that misses takes the
// set's first slot, moving the others down and the oldest out. Nothing
// grows or is scanned, so a miss costs little more than the Pebble read it
// needs anyway. (With one slot per consent, a working set of 1,000
// consents looked up in turn missed on a fifth of its lookups, its
// consents evicting each other; with two ways, on a tenth.)
//
// Each answer is exactly the state at the checkpoint it comes with. The
// slots and seq (the checkpoint they reflect) change together, under mu,
// when a commit is done (committed); gen counts the commits, odd while one
// is being written to Pebble (begin). A reader that misses reads Pebble and
// keeps its answer, and fills the slot, only when gen was even and did not
// move around the read: no commit landed in between, so Pebble's state is
// the one at seq, and a value read before a commit cannot land after it.
type hotStates struct {
	mu   sync.RWMutex
	gen  uint64 // 2 per commit; odd while a commit is written
	seq  uint64 // the checkpoint the slots (and Pebble, when gen is even) reflect
	sets [hotSets][hotWays]hotSlot
	// taints holds, by consent NATS subject, the sequences of its
	// unquarantined violations, ascending (taint.go); they change with the
	// slots, in committed.
	taints map[string][]uint64
}

type hotSlot struct {
	key string // consent key; "" for an empty slot
	c   events.Consent
}

var hotSeed = maphash.MakeSeed()

func hotSet(key []byte) int { return int(maphash.Bytes(hotSeed, key) & (hotSets - 1)) }

// hotSetString is hotSet of a key held as a string (maphash hashes both
// alike).
func hotSetString(key string) int { return int(maphash.String(hotSeed, key) & (hotSets - 1)) }

// slotLocked returns the slot holding key in set, or nil.
func (h *hotStates) slotLocked(set int, key string) *hotSlot {
	for w := range h.sets[set] {
		if s := &h.sets[set][w]; s.key == key && key != "" {
			return s
		}
	}
	return nil
}

// get returns the cached state of the consent key and the checkpoint it
// is the state at, with its ViolationSeq from the taints of subj (its NATS
// subject, or "" when there are no taints); on a miss, the generation to
// pass to stable and fill after reading Pebble.
func (h *hotStates) get(key []byte, subj string) (c events.Consent, ok bool, gen, seq uint64) {
	set := hotSet(key)
	h.mu.RLock()
	defer h.mu.RUnlock()
	// slotLocked only compares the key, so it may share key's bytes.
	if s := h.slotLocked(set, unsafe.String(unsafe.SliceData(key), len(key))); s != nil {
		c = s.c
		if subj != "" {
			c.ViolationSeq = h.taintLocked(subj)
		}
		return c, true, h.gen, h.seq
	}
	return events.Consent{}, false, h.gen, h.seq
}

// stable reports whether no commit was written since get returned gen,
// and the checkpoint a Pebble read made in between reflects, with the
// first taint of subj at that checkpoint (see get).
func (h *hotStates) stable(gen uint64, subj string) (seq, violation uint64, ok bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.seq, h.taintLocked(subj), h.gen == gen && gen%2 == 0
}

// fill caches c, read from Pebble after get returned gen, when stable.
func (h *hotStates) fill(key []byte, c events.Consent, gen uint64) {
	set := hotSet(key)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != gen || gen%2 != 0 {
		return
	}
	if s := h.slotLocked(set, string(key)); s != nil {
		s.c = c // another reader filled it meanwhile
		return
	}
	ways := &h.sets[set]
	copy(ways[1:], ways[:hotWays-1])
	ways[0] = hotSlot{key: string(key), c: c}
}

// begin marks a commit about to be written to Pebble.
func (h *hotStates) begin() {
	h.mu.Lock()
	h.gen++
	h.mu.Unlock()
}

// committed ends the commit begin marked: it updates the cached slots
// among changed (the states it wrote, by consent key; nil when it failed)
// and the taints (added true, removed false; nil when it failed), and
// records checkpoint as what the slots reflect. It returns how many
// consents are tainted.
func (h *hotStates) committed(changed map[string]events.Consent, taints map[taintRef]bool, checkpoint uint64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gen++
	h.seq = checkpoint
	h.applyTaintsLocked(taints)
	for k, c := range changed {
		if s := h.slotLocked(hotSetString(k), k); s != nil {
			s.c = c
		}
	}
	return len(h.taints)
}
