package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// The metrics read from Sources at scrape time.
var (
	indexSeqDesc = prometheus.NewDesc("consent_index_seq",
		"Last stream sequence applied to the index.", nil, nil)
	streamSeqDesc = prometheus.NewDesc("consent_stream_seq",
		"Last stream sequence known to exist (as the projector sees the stream).", nil, nil)
	indexLagDesc = prometheus.NewDesc("consent_index_lag_events",
		"consent_stream_seq minus consent_index_seq: events stored but not yet in the index.", nil, nil)
	projectorRunningDesc = prometheus.NewDesc("consent_projector_running",
		"1 while the projector runs, 0 when it stopped (lookups then answer 503).", nil, nil)
	foldedDesc = prometheus.NewDesc("consent_projector_events_folded_total",
		"Stream messages the projector applied to the index since consentd started.", nil, nil)
	rebuildsDesc = prometheus.NewDesc("consent_index_rebuilds_total",
		"Projector runs that began on an empty index while the stream held messages (first start, or a deleted index rebuilt).", nil, nil)
	violationsDesc = prometheus.NewDesc("consent_integrity_violations_total",
		"Integrity violations recorded in the index (consentctl audit violations lists them).", nil, nil)
	streamSafeDesc = prometheus.NewDesc("consent_stream_safe",
		"1 while the stream guard finds the stream safe for the audit trail, 0 while writes are refused (or the stream was not found yet).", nil, nil)
	expiriesDesc = prometheus.NewDesc("consent_expiries_total",
		"Due grants the expirer handled, by result (appended, lost: another instance, a renewal or a revocation got there first, failed: retried at the next sweep).", []string{"result"}, nil)
	expiryBacklogDesc = prometheus.NewDesc("consent_expiry_backlog",
		"Grants whose expires_at has passed and that have no consent.expired yet (counted up to 10000).", nil, nil)
	feedConsumersDesc = prometheus.NewDesc("consent_feed_consumers",
		"Consumers the feed endpoints opened on the stream (feed~...), durable and ephemeral.", nil, nil)
	feedPendingDesc = prometheus.NewDesc("consent_feed_pending_messages",
		"Messages stored and not yet delivered, summed over the feed consumers.", nil, nil)
)

// scraped is the collector of the metrics read from Sources at scrape
// time. A source that fails leaves its metrics out of that scrape.
type scraped struct{ src Sources }

func (c *scraped) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{indexSeqDesc, streamSeqDesc, indexLagDesc, projectorRunningDesc, foldedDesc, rebuildsDesc,
		violationsDesc, streamSafeDesc, expiriesDesc, expiryBacklogDesc, feedConsumersDesc, feedPendingDesc} {
		ch <- d
	}
}

func (c *scraped) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if f := c.src.Projector; f != nil {
		h := f()
		gauge(indexSeqDesc, float64(h.IndexSeq))
		gauge(streamSeqDesc, float64(h.StreamSeq))
		gauge(indexLagDesc, float64(h.StreamSeq-h.IndexSeq)) // Health keeps StreamSeq >= IndexSeq
		gauge(projectorRunningDesc, boolValue(h.Running))
		counter(foldedDesc, float64(h.Folded))
		counter(rebuildsDesc, float64(h.Rebuilds))
		counter(violationsDesc, float64(h.Violations))
	}
	if f := c.src.StreamSafe; f != nil {
		safe, known := f()
		gauge(streamSafeDesc, boolValue(safe && known))
	}
	if f := c.src.Expiry; f != nil {
		if s, ok := f(); ok {
			counter(expiriesDesc, float64(s.Appended), "appended")
			counter(expiriesDesc, float64(s.Lost), "lost")
			counter(expiriesDesc, float64(s.Failed), "failed")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if f := c.src.ExpiryBacklog; f != nil {
		if n, err := f(ctx); err == nil {
			gauge(expiryBacklogDesc, float64(n))
		}
	}
	if f := c.src.Feeds; f != nil {
		if s, err := f(ctx); err == nil {
			gauge(feedConsumersDesc, float64(s.Consumers))
			gauge(feedPendingDesc, float64(s.Pending))
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
