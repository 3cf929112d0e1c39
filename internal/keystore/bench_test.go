package keystore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/consentledger/consent/internal/natstest"
)

// BenchmarkEnsureDataKeyNewPersons hands data keys to new persons from 64
// callers on a server that fsyncs every write (consentd's default), as
// fast as the pool is refilled: batched fills it as the store does, in
// atomic batches; single one create per key (a bucket without atomic
// batches).
func BenchmarkEnsureDataKeyNewPersons(b *testing.B) {
	for _, batched := range []bool{true, false} {
		name := map[bool]string{true: "batched", false: "single"}[batched]
		b.Run(name, func(b *testing.B) {
			kek, err := GenerateKEK(filepath.Join(b.TempDir(), "kek.pem"))
			if err != nil {
				b.Fatal(err)
			}
			srv := natstest.RunServer(b, natstest.SyncAlways())
			s, err := Open(context.Background(), natstest.JetStream(b, natstest.Connect(b, srv)), Config{KEK: kek})
			if err != nil {
				b.Fatal(err)
			}
			s.atomic = batched
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range 64 {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						if _, _, err := s.EnsureDataKey(context.Background(), "acme", fmt.Sprintf("%032x", i)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}
