package perf

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/keystore"
)

// BenchmarkEnsureDataKey hands data keys to new persons from 64 callers,
// as the grants of new persons do in the sealed comparison, on a server
// that fsyncs every write (consentd's default) and on one that does not:
// with nothing else to do, the callers take keys as fast as the pool is
// refilled, which bounds the rate of new persons' sealed grants.
func BenchmarkEnsureDataKey(b *testing.B) {
	for _, syncAlways := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%t", syncAlways), func(b *testing.B) {
			s, err := StartServer(b.TempDir(), syncAlways)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			js, err := s.JetStream()
			if err != nil {
				b.Fatal(err)
			}
			kek, err := keystore.GenerateKEK(filepath.Join(b.TempDir(), "kek"))
			if err != nil {
				b.Fatal(err)
			}
			keys, err := keystore.Open(b.Context(), js, keystore.Config{KEK: kek})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			r, err := Drive(64, b.N, func(i int) error {
				_, _, err := keys.EnsureDataKey(b.Context(), "acme", events.SubjectKey("acme", fmt.Sprintf("new-%d@example.com", i)))
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.Rate(), "keys/s")
			b.ReportMetric(float64(r.Percentile(50).Microseconds()), "p50-µs")
		})
	}
}
