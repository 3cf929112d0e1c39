package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/metrics"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What the Observer is told lands in the series of the same labels, the
// scrape-time sources are read at every gather, and a source that fails
// leaves its metrics out.
func TestMetricsExposeWhatTheyAreTold(t *testing.T) {
	health := projector.Health{IndexSeq: 7, StreamSeq: 10, Running: true, Violations: 2, Folded: 7, Rebuilds: 1}
	feedErr := errors.New("no JetStream")
	m := metrics.New(metrics.BuildInfo{Version: "1.0.0", Commit: "abc", GoVersion: "go1.26"}, metrics.Sources{
		Projector:     func() projector.Health { return health },
		StreamSafe:    func() (bool, bool) { return false, true },
		Expiry:        func() (ledger.ExpiryStats, bool) { return ledger.ExpiryStats{Appended: 3, Lost: 1}, true },
		ExpiryBacklog: func(context.Context) (int, error) { return 4, nil },
		Feeds:         func(context.Context) (ledger.FeedConsumerStats, error) { return ledger.FeedConsumerStats{}, feedErr },
	})
	m.Appended(events.TypeGranted, ledger.AppendStored, time.Millisecond)
	m.Appended(events.TypeGranted, ledger.AppendStored, time.Millisecond)
	m.Appended(events.TypeExpired, ledger.AppendConflict, time.Millisecond)
	m.Looked("check", ledger.LookupConsentRequired, time.Microsecond)
	m.Looked("feed.open", ledger.LookupFound, time.Microsecond) // not a known endpoint: still counted
	m.MinSeqWaited(true)
	m.MinSeqWaited(false)
	m.GroupCommitted(5, time.Millisecond)
	m.Checkpoint(true, nil)
	m.Checkpoint(false, errors.New("no leader"))

	expect := map[string]float64{
		`consent_appends_total{result="stored",type="consent.granted"}`:     2,
		`consent_appends_total{result="conflict",type="consent.expired"}`:   1,
		`consent_appends_total{result="stored",type="consent.revoked"}`:     0,
		`consent_lookups_total{endpoint="check",result="consent_required"}`: 1,
		`consent_lookups_total{endpoint="feed.open",result="found"}`:        1,
		`consent_min_seq_waits_total{result="reached"}`:                     1,
		`consent_min_seq_waits_total{result="timeout"}`:                     1,
		`consent_checkpoints_total{result="published"}`:                     1,
		`consent_checkpoints_total{result="failed"}`:                        1,
		`consent_checkpoints_total{result="skipped"}`:                       0,
		`consent_index_seq`:                                                    7,
		`consent_stream_seq`:                                                   10,
		`consent_index_lag_events`:                                             3,
		`consent_projector_running`:                                            1,
		`consent_projector_events_folded_total`:                                7,
		`consent_index_rebuilds_total`:                                         1,
		`consent_integrity_violations_total`:                                   2,
		`consent_stream_safe`:                                                  0,
		`consent_expiries_total{result="appended"}`:                            3,
		`consent_expiries_total{result="lost"}`:                                1,
		`consent_expiries_total{result="failed"}`:                              0,
		`consent_expiry_backlog`:                                               4,
		`consent_build_info{commit="abc",go_version="go1.26",version="1.0.0"}`: 1,
		`consent_group_commit_batch_size_sum`:                                  5,
		`consent_group_commit_flush_duration_seconds_count`:                    1,
		`consent_append_duration_seconds_count{type="consent.granted"}`:        2,
		`consent_lookup_duration_seconds_count{endpoint="check"}`:              1,
	}
	got := gather(t, m)
	for series, v := range expect {
		assert.Equal(t, v, got[series], series)
	}
	assert.NotContains(t, got, "consent_feed_consumers", "a source that failed leaves its metrics out")
	assert.Contains(t, got, "go_goroutines")
	assert.Contains(t, got, "process_cpu_seconds_total")
	for series := range got {
		assert.NotContains(t, series, "tenant")
		assert.NotContains(t, series, "subject")
	}
}

// gather renders the registry as the text format and reads every sample
// back, keyed by its series.
func gather(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			key := f.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case s.Counter != nil:
				out[key] = s.GetCounter().GetValue()
			case s.Gauge != nil:
				out[key] = s.GetGauge().GetValue()
			case s.Histogram != nil:
				name, rest, _ := strings.Cut(key, "{")
				if rest != "" {
					rest = "{" + rest
				}
				out[name+"_count"+rest] = float64(s.GetHistogram().GetSampleCount())
				out[name+"_sum"+rest] = s.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// The metrics lint clean by Prometheus' own rules (names, units, _total).
func TestMetricsLintClean(t *testing.T) {
	m := metrics.New(metrics.BuildInfo{}, metrics.Sources{})
	problems, err := testutil.GatherAndLint(m.Registry())
	require.NoError(t, err)
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "consent_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// What a request path pays for its metrics (see docs/operations.md).
func BenchmarkLooked(b *testing.B) {
	m := metrics.New(metrics.BuildInfo{}, metrics.Sources{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Looked("check", ledger.LookupAllowed, 100*time.Microsecond)
		}
	})
}

func BenchmarkAppended(b *testing.B) {
	m := metrics.New(metrics.BuildInfo{}, metrics.Sources{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Appended(events.TypeGranted, ledger.AppendStored, 5*time.Millisecond)
		}
	})
}
