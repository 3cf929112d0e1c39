// Package metrics exposes consentd's Prometheus metrics on a registry of
// its own (never the global default): the counters and histograms the
// ledger's Observer hook feeds on the request paths, the gauges and
// counters read from the projector, the stream guard, the expirer and the
// feeds at scrape time, the Go runtime and process collectors, and
// consent_build_info. docs/operations.md lists every metric.
//
// Labels are bounded by the code: event types, endpoint names and result
// names. No metric carries a subject id, a tenant or a purpose.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// BuildInfo labels consent_build_info.
type BuildInfo struct {
	Version   string
	Commit    string
	GoVersion string
}

// Sources are read at every scrape; a nil function leaves its metrics
// out. They are called from the scraping goroutine, concurrently with
// everything else, and must be safe for that.
type Sources struct {
	// Projector gives consent_index_seq, consent_stream_seq,
	// consent_index_lag_events, consent_projector_running,
	// consent_projector_events_folded_total, consent_index_rebuilds_total
	// and consent_integrity_violations_total.
	Projector func() projector.Health
	// StreamSafe gives consent_stream_safe: the stream guard's verdict;
	// known is false before the stream was found (reported as 0).
	StreamSafe func() (safe, known bool)
	// Expiry gives consent_expiries_total; ok is false before the expirer
	// runs.
	Expiry func() (s ledger.ExpiryStats, ok bool)
	// ExpiryBacklog gives consent_expiry_backlog: the grants due and not
	// expired yet (consentd counts at most ExpiryBacklogCap).
	ExpiryBacklog func(ctx context.Context) (int, error)
	// Feeds gives consent_feed_consumers and
	// consent_feed_pending_messages.
	Feeds func(ctx context.Context) (ledger.FeedConsumerStats, error)
}

// ExpiryBacklogCap is the most consent_expiry_backlog counts, so that a
// scrape stays cheap whatever the backlog.
const ExpiryBacklogCap = 10_000

// scrapeTimeout bounds the sources that ask JetStream or scan the index.
const scrapeTimeout = 2 * time.Second

// Metrics is consentd's registry and the ledger.Observer that feeds it.
// It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	appends        *prometheus.CounterVec
	appendDuration *prometheus.HistogramVec
	lookups        *prometheus.CounterVec
	lookupDuration *prometheus.HistogramVec
	minSeqWaits    *prometheus.CounterVec
	batchSize      prometheus.Histogram
	flushDuration  prometheus.Histogram
	checkpoints    *prometheus.CounterVec

	// Made at New for every known label value, so that the request paths
	// do not hash label values, and every series exists from the start.
	appendsBy map[events.Type]*series
	lookupsBy map[string]*series
	reached   prometheus.Counter
	timedOut  prometheus.Counter
}

// series are one event type's (or endpoint's) counters by result and its
// latency histogram.
type series struct {
	results  map[string]prometheus.Counter
	duration prometheus.Observer
}

// Buckets of the latency histograms: lookups are answered from the index
// in microseconds, appends wait for the stream's fsync (milliseconds).
var (
	lookupBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
	appendBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	batchBuckets  = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000}
)

// New returns the metrics of one consentd: its registry with the Go
// runtime and process collectors, build info, the Observer's metrics and
// a collector reading src at every scrape.
func New(build BuildInfo, src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.appends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "consent_appends_total",
		Help: "Appends of consent events, by event type and result (stored, duplicate, conflict, forbidden, bad_request, unavailable, error).",
	}, []string{"type", "result"})
	m.appendDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "consent_append_duration_seconds",
		Help:    "Time to answer an append, by event type: for commands from taking the request to the reply, for expiries and erasures the append itself.",
		Buckets: appendBuckets,
	}, []string{"type"})
	m.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "consent_lookups_total",
		Help: "Lookups answered, by endpoint and result (allowed, consent_required, found, bad_request, forbidden, conflict, unavailable, error).",
	}, []string{"endpoint", "result"})
	m.lookupDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "consent_lookup_duration_seconds",
		Help:    "Time from taking a lookup to its reply, by endpoint (waits for min_seq included).",
		Buckets: lookupBuckets,
	}, []string{"endpoint"})
	m.minSeqWaits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "consent_min_seq_waits_total",
		Help: "Lookups that waited for the index to reach their min_seq, by result (reached, timeout).",
	}, []string{"result"})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "consent_group_commit_batch_size",
		Help:    "Events per group sent by group commit (groups below its minimum are published as single messages).",
		Buckets: batchBuckets,
	})
	m.flushDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "consent_group_commit_flush_duration_seconds",
		Help:    "Time for group commit to have one group stored (or refused) by the stream.",
		Buckets: appendBuckets,
	})
	m.checkpoints = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "consent_checkpoints_total",
		Help: "Attempts of the checkpointer, by result (published, skipped: made by another instance or nothing new, failed).",
	}, []string{"result"})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "consent_build_info",
		Help: "Always 1; the labels say which consentd this is.",
	}, []string{"version", "commit", "go_version"})
	buildInfo.WithLabelValues(build.Version, build.Commit, build.GoVersion).Set(1)

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.appends, m.appendDuration, m.lookups, m.lookupDuration, m.minSeqWaits,
		m.batchSize, m.flushDuration, m.checkpoints, buildInfo,
		&scraped{src: src},
	)

	m.appendsBy = make(map[events.Type]*series, len(ledger.AppendedTypes))
	for _, t := range ledger.AppendedTypes {
		s := &series{results: map[string]prometheus.Counter{}, duration: m.appendDuration.WithLabelValues(string(t))}
		for _, r := range ledger.AppendResults {
			s.results[r] = m.appends.WithLabelValues(string(t), r)
		}
		m.appendsBy[t] = s
	}
	m.lookupsBy = make(map[string]*series, len(ledger.LookupEndpoints))
	for _, e := range ledger.LookupEndpoints {
		s := &series{results: map[string]prometheus.Counter{}, duration: m.lookupDuration.WithLabelValues(e)}
		for _, r := range ledger.LookupResults {
			if (r == ledger.LookupAllowed || r == ledger.LookupConsentRequired) && e != "check" {
				continue // only check allows or refuses
			}
			if r == ledger.LookupFound && e == "check" {
				continue
			}
			s.results[r] = m.lookups.WithLabelValues(e, r)
		}
		m.lookupsBy[e] = s
	}
	m.reached = m.minSeqWaits.WithLabelValues("reached")
	m.timedOut = m.minSeqWaits.WithLabelValues("timeout")
	for _, r := range []string{CheckpointPublished, CheckpointSkipped, CheckpointFailed} {
		m.checkpoints.WithLabelValues(r)
	}
	return m
}

// Registry returns the registry every metric is on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format
// (/metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// Appended implements ledger.Observer.
func (m *Metrics) Appended(t events.Type, result string, d time.Duration) {
	s, ok := m.appendsBy[t]
	if !ok {
		m.appends.WithLabelValues(string(t), result).Inc()
		m.appendDuration.WithLabelValues(string(t)).Observe(d.Seconds())
		return
	}
	s.observe(m.appends, string(t), result, d)
}

// Looked implements ledger.Observer.
func (m *Metrics) Looked(endpoint, result string, d time.Duration) {
	s, ok := m.lookupsBy[endpoint]
	if !ok {
		m.lookups.WithLabelValues(endpoint, result).Inc()
		m.lookupDuration.WithLabelValues(endpoint).Observe(d.Seconds())
		return
	}
	s.observe(m.lookups, endpoint, result, d)
}

func (s *series) observe(vec *prometheus.CounterVec, label, result string, d time.Duration) {
	if c, ok := s.results[result]; ok {
		c.Inc()
	} else {
		vec.WithLabelValues(label, result).Inc()
	}
	s.duration.Observe(d.Seconds())
}

// MinSeqWaited implements ledger.Observer.
func (m *Metrics) MinSeqWaited(reached bool) {
	if reached {
		m.reached.Inc()
	} else {
		m.timedOut.Inc()
	}
}

// GroupCommitted implements ledger.Observer.
func (m *Metrics) GroupCommitted(n int, d time.Duration) {
	m.batchSize.Observe(float64(n))
	m.flushDuration.Observe(d.Seconds())
}

// Results of consent_checkpoints_total.
const (
	CheckpointPublished = "published"
	CheckpointSkipped   = "skipped"
	CheckpointFailed    = "failed"
)

// Checkpoint counts one attempt of the checkpointer (its Observe option).
func (m *Metrics) Checkpoint(published bool, err error) {
	switch {
	case err != nil:
		m.checkpoints.WithLabelValues(CheckpointFailed).Inc()
	case published:
		m.checkpoints.WithLabelValues(CheckpointPublished).Inc()
	default:
		m.checkpoints.WithLabelValues(CheckpointSkipped).Inc()
	}
}

var _ ledger.Observer = (*Metrics)(nil)
