package ledger_test

import (
	"context"
	"testing"

	"github.com/consentledger/consent/internal/perf"
)

// BenchmarkGroupCommit makes durable grants (the server fsyncing every
// write) from 64 concurrent callers with and without group commit, next to
// bare JetStream publishes and bare atomic batches of 64 on the same
// server, in every iteration (cmd/consentbench runs the same comparison at
// full size). Metrics: grants/s and p99 of each, and the ratios
// group/alone (the gain), group/bare-batch (against the ceiling) and
// alone/bare.
func BenchmarkGroupCommit(b *testing.B) {
	const callers = 64
	var group, alone, bare, batch, p99group, p99alone float64
	b.ReportAllocs()
	for b.Loop() {
		r, err := perf.Grants(context.Background(), perf.GrantConfig{Dir: b.TempDir(), Callers: callers, Grants: 10 * callers})
		if err != nil {
			b.Fatal(err)
		}
		group += r.Group.Rate()
		alone += r.Alone.Rate()
		bare += r.Bare.Rate()
		batch += r.BareBatch.Rate() * callers
		p99group += float64(r.Group.Percentile(99).Microseconds())
		p99alone += float64(r.Alone.Percentile(99).Microseconds())
	}
	n := float64(b.N)
	b.ReportMetric(group/n, "group-grants/s")
	b.ReportMetric(alone/n, "alone-grants/s")
	b.ReportMetric(p99group/n, "group-p99-us")
	b.ReportMetric(p99alone/n, "alone-p99-us")
	b.ReportMetric(group/alone, "group/alone")
	b.ReportMetric(group/batch, "group/bare-batch")
	b.ReportMetric(alone/bare, "alone/bare")
}
