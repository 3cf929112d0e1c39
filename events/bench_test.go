package events

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchAgainst runs op in b's loop and reports its time per op as a ratio
// to bare, the plain encoding/json (or crypto) operation it builds on, run
// as many times right after in the same process.
func benchAgainst(b *testing.B, bare, op func() error) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	opTime, n := b.Elapsed(), b.N
	start := time.Now()
	for range n {
		if err := bare(); err != nil {
			b.Fatal(err)
		}
	}
	if bareTime := time.Since(start); bareTime > 0 {
		b.ReportMetric(float64(opTime)/float64(bareTime), "x_bare")
	}
}

func goldenGrant(b *testing.B) []byte {
	payload, err := os.ReadFile(filepath.Join("testdata", "golden", "granted.v1.json"))
	if err != nil {
		b.Fatal(err)
	}
	return payload
}

// Decode (strict, validated) against json.Unmarshal into the same struct.
func BenchmarkDecode(b *testing.B) {
	payload := goldenGrant(b)
	benchAgainst(b,
		func() error { var e Event; return json.Unmarshal(payload, &e) },
		func() error { _, err := Decode(payload); return err },
	)
}

// Seal (the canonical encoding written directly, one SHA-256) against one
// json.Marshal of the event.
func BenchmarkSeal(b *testing.B) {
	ev, err := Decode(goldenGrant(b))
	if err != nil {
		b.Fatal(err)
	}
	benchAgainst(b,
		func() error { _, err := json.Marshal(ev); return err },
		func() error { _, err := ev.Seal(); return err },
	)
}

// VerifyHash (canonicalize and hash) against json.Unmarshal of the payload.
func BenchmarkVerifyHash(b *testing.B) {
	payload := goldenGrant(b)
	ev, err := Decode(payload)
	if err != nil {
		b.Fatal(err)
	}
	benchAgainst(b,
		func() error { var e Event; return json.Unmarshal(payload, &e) },
		func() error { return VerifyHash(payload, ev) },
	)
}

// Canonical alone against SHA-256 of the same bytes: what hashing costs
// beyond the hash.
func BenchmarkCanonical(b *testing.B) {
	payload := goldenGrant(b)
	benchAgainst(b,
		func() error { sha256.Sum256(payload); return nil },
		func() error { _, err := Canonical(payload, "hash"); return err },
	)
}

func goldenSealedGrant(b *testing.B) []byte {
	payload, err := os.ReadFile(filepath.Join("testdata", "golden", "granted.v2.json"))
	if err != nil {
		b.Fatal(err)
	}
	return payload
}

// SealWith (encrypt the personal fields, then Seal the v2 event) against
// Seal of the same event as v1: what encryption adds to a write.
func BenchmarkSealWith(b *testing.B) {
	ev, err := Decode(goldenGrant(b))
	if err != nil {
		b.Fatal(err)
	}
	dk := testDataKey()
	benchAgainst(b,
		func() error { e := *ev; _, err := e.Seal(); return err },
		func() error { e := *ev; e.SubjectKey = testSubjectKey; _, err := e.SealWith(dk); return err },
	)
}

// Decode of a v2 event against Decode of a v1 one: what reading a sealed
// event costs without opening it (the fold, verify).
func BenchmarkDecodeSealed(b *testing.B) {
	v1, v2 := goldenGrant(b), goldenSealedGrant(b)
	benchAgainst(b,
		func() error { _, err := Decode(v1); return err },
		func() error { _, err := Decode(v2); return err },
	)
}

// Decode and Open of a v2 event against Decode of a v1 one: what reading
// the personal fields costs (history, export with keys).
func BenchmarkDecodeAndOpen(b *testing.B) {
	v1, v2 := goldenGrant(b), goldenSealedGrant(b)
	dk := testDataKey()
	benchAgainst(b,
		func() error { _, err := Decode(v1); return err },
		func() error {
			ev, err := Decode(v2)
			if err != nil {
				return err
			}
			return ev.Open(dk)
		},
	)
}
