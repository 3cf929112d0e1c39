package projector

import (
	"hash/maphash"
	"math/bits"
)

// newKeys is a Bloom filter of the consent keys a rebuild has written.
// A rebuild starts from an empty index, so a key the filter has never seen
// has no stored state, and the folder need not ask Pebble: most events of a
// rebuild are a consent's first, and each such miss would otherwise cost a
// read of the index. A false positive (about 1% at the size it was made
// for) only costs that read.
type newKeys struct {
	bits []uint64
	mask uint64 // len(bits)*64 - 1; the length is a power of two
}

var newKeysSeed = maphash.MakeSeed()

// newKeysHashes is the number of bits set per key: the best for 10 to 16
// bits per key.
const newKeysHashes = 7

// newNewKeys returns a filter sized for n keys, 10 to 20 bits each (2 MiB
// for a million).
func newNewKeys(n uint64) *newKeys {
	words := uint64(1) << bits.Len64(max(n*10/64, 1))
	return &newKeys{bits: make([]uint64, words), mask: words*64 - 1}
}

func (f *newKeys) add(key []byte) {
	h := maphash.Bytes(newKeysSeed, key)
	step := h>>32 | 1
	for range newKeysHashes {
		f.bits[(h&f.mask)>>6] |= 1 << (h & 63)
		h += step
	}
}

// mayContain reports false only for a key never added.
func (f *newKeys) mayContain(key []byte) bool {
	h := maphash.Bytes(newKeysSeed, key)
	step := h>>32 | 1
	for range newKeysHashes {
		if f.bits[(h&f.mask)>>6]&(1<<(h&63)) == 0 {
			return false
		}
		h += step
	}
	return true
}
