package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startWithHTTP runs consentd in-process from its command line, with the
// HTTP listener and the embedded server's monitoring on free ports.
func startWithHTTP(t *testing.T, extra ...string) *Main {
	t.Helper()
	m := NewMain()
	m.Stdout, m.Stderr, m.Environ = io.Discard, testWriter{t}, func() []string { return nil }
	args := append([]string{"--listen", "127.0.0.1:-1", "--data-dir", t.TempDir(), "--log-level", "warn",
		"--http-listen", "127.0.0.1:0", "--nats-monitor", "127.0.0.1:-1"}, extra...)
	require.NoError(t, m.ParseFlags(args))
	err := m.Run(t.Context())
	if err != nil {
		_ = m.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	require.NotEmpty(t, m.HTTPAddr())
	return m
}

// get fetches url and returns its status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// scrape reads /metrics into the value of every series of the counters
// and gauges, and the sample count of the histograms, keyed by the
// series as Prometheus writes it: name{label="value",...}.
func scrape(t *testing.T, m *Main) map[string]float64 {
	t.Helper()
	code, body := get(t, "http://"+m.HTTPAddr()+"/metrics")
	require.Equal(t, http.StatusOK, code, body)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	out := map[string]float64{}
	for name, f := range families {
		for _, s := range f.GetMetric() {
			key := name + labelsOf(s)
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = s.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = s.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"+labelsOf(s)] = float64(s.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func labelsOf(s *dto.Metric) string {
	if len(s.GetLabel()) == 0 {
		return ""
	}
	var parts []string
	for _, l := range s.GetLabel() {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// moved returns the series with prefix whose value changed from before
// to after, by how much.
func moved(before, after map[string]float64, prefixes ...string) map[string]float64 {
	out := map[string]float64{}
	for key, v := range after {
		for _, p := range prefixes {
			if strings.HasPrefix(key, p) && v != before[key] {
				out[key] = v - before[key]
			}
		}
	}
	return out
}

// TestConsentdMetricsCountWhatItDid is the done-criterion of the metrics:
// after one grant, one check that is refused (consent required) and one
// status lookup that waits for min_seq, each counter moved by exactly
// that, and nothing else did.
func TestConsentdMetricsCountWhatItDid(t *testing.T) {
	m := startWithHTTP(t)
	client := connectClient(t, m.ClientURL(), adminOptions(t, m.Config.DataDir)...)
	ctx := t.Context()

	before := scrape(t, m)
	assert.Equal(t, 1.0, before[`consent_build_info{commit="unknown",go_version="`+buildInfo().GoVersion+`",version="`+ledger.ServiceVersion+`"}`])
	assert.Contains(t, before, "go_goroutines", "the Go runtime collector")
	assert.Contains(t, before, "process_open_fds", "the process collector")
	assert.Equal(t, 1.0, before["consent_stream_safe"])
	assert.Equal(t, 1.0, before["consent_projector_running"])
	assert.Equal(t, 0.0, before["consent_index_lag_events"])
	assert.Equal(t, 0.0, before[`consent_appends_total{result="stored",type="consent.granted"}`], "series exist before their first event")

	// The status lookup waits for the grant's seq (the stream is empty,
	// so it is 1) before the grant exists.
	alice := events.Command{SubjectID: "alice@example.com", Purpose: "marketing_email"}
	waited := make(chan events.Status, 1)
	go func() {
		st, err := client.Status(ctx, wire.StatusQuery{SubjectID: alice.SubjectID, Purpose: alice.Purpose, MinSeq: 1})
		assert.NoError(t, err)
		waited <- st
	}()
	granted, err := client.Grant(ctx, alice)
	require.NoError(t, err)
	require.Equal(t, uint64(1), granted.Seq)
	select {
	case st := <-waited:
		assert.Equal(t, events.StateGranted, st.State)
	case <-time.After(10 * time.Second):
		t.Fatal("the lookup waiting for min_seq 1 was not answered")
	}
	_, err = client.Check(ctx, wire.StatusQuery{SubjectID: "bob@example.com", Purpose: "marketing_email"})
	require.ErrorIs(t, err, wire.ErrConsentRequired)

	after := scrape(t, m)
	assert.Equal(t, map[string]float64{
		`consent_appends_total{result="stored",type="consent.granted"}`:     1,
		`consent_append_duration_seconds_count{type="consent.granted"}`:     1,
		`consent_lookups_total{endpoint="check",result="consent_required"}`: 1,
		`consent_lookup_duration_seconds_count{endpoint="check"}`:           1,
		`consent_lookups_total{endpoint="status",result="found"}`:           1,
		`consent_lookup_duration_seconds_count{endpoint="status"}`:          1,
		`consent_min_seq_waits_total{result="reached"}`:                     1,
	}, moved(before, after, "consent_appends_total", "consent_append_duration", "consent_lookups_total",
		"consent_lookup_duration", "consent_min_seq_waits_total"))
	// The embedded server fsyncs every write and commits in groups: the
	// grant went out in a group of one.
	assert.Equal(t, 1.0, after["consent_group_commit_batch_size_count"]-before["consent_group_commit_batch_size_count"])
	assert.Equal(t, 1.0, after["consent_index_seq"])
	assert.Equal(t, 1.0, after["consent_stream_seq"])
	assert.Equal(t, 1.0, after["consent_projector_events_folded_total"])
	assert.Equal(t, 0.0, after["consent_feed_consumers"])
}

// TestConsentdMetricsOfFeedsAndExpiries: a feed the service opened shows
// in consent_feed_consumers, and a grant that lapses in
// consent_expiries_total and consent_appends_total, with no backlog left.
func TestConsentdMetricsOfFeedsAndExpiries(t *testing.T) {
	m := startWithHTTP(t, "--expiry-interval", "10ms")
	cli := connectClient(t, m.ClientURL(), adminOptions(t, m.Config.DataDir)...)
	ctx := t.Context()

	w, err := cli.Watch(ctx, client.WatchOptions{Durable: "mailer", Purposes: []string{"newsletter"}})
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	got := scrape(t, m)
	assert.Equal(t, 1.0, got["consent_feed_consumers"])
	assert.Contains(t, got, "consent_feed_pending_messages")

	expires := time.Now().Add(100 * time.Millisecond)
	_, err = cli.Grant(ctx, events.Command{SubjectID: "alice", Purpose: "trial", ExpiresAt: &expires})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return scrape(t, m)[`consent_expiries_total{result="appended"}`] == 1
	}, 10*time.Second, 10*time.Millisecond)
	got = scrape(t, m)
	assert.Equal(t, 1.0, got[`consent_appends_total{result="stored",type="consent.expired"}`])
	assert.Equal(t, 1.0, got[`consent_append_duration_seconds_count{type="consent.expired"}`])
	// The index applies the expiry a moment after the expirer counted it.
	require.Eventually(t, func() bool {
		v, ok := scrape(t, m)["consent_expiry_backlog"]
		return ok && v == 0
	}, 10*time.Second, 10*time.Millisecond)
}

// TestConsentdReadiness takes /readyz through its states: ready; not
// ready with the reason while the projector is stopped, and ready again
// once it runs; not ready while the stream is unsafe, and ready again once
// it is restored. /healthz answers throughout, and the embedded server's
// monitoring serves /varz.
func TestConsentdReadiness(t *testing.T) {
	m := startWithHTTP(t)
	base := "http://" + m.HTTPAddr()
	readyz := func() (int, string) { return get(t, base+"/readyz") }
	healthz := func() {
		code, body := get(t, base+"/healthz")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "ok\n", body)
	}
	require.Eventually(t, func() bool { code, _ := readyz(); return code == http.StatusOK }, 10*time.Second, 5*time.Millisecond)
	code, body := readyz()
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ready\n", body)
	healthz()

	// The projector stops: not ready, saying so.
	m.stopProjector()
	<-m.projectorDone
	code, body = readyz()
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "not ready:\nprojector not running\n", body)
	assert.Equal(t, 0.0, scrape(t, m)["consent_projector_running"])
	healthz()
	// It runs again: ready.
	ctx, stop := context.WithCancel(context.Background())
	m.stopProjector, m.projectorDone = stop, make(chan struct{})
	go m.superviseProjector(ctx)
	require.Eventually(t, func() bool { code, _ := readyz(); return code == http.StatusOK }, 10*time.Second, 5*time.Millisecond)

	// The stream is made unsafe through the JetStream API: not ready,
	// naming the setting, until it is restored.
	admin, err := nats.Connect(m.ClientURL(), serviceOptions(t, m.Config.DataDir)...)
	require.NoError(t, err)
	t.Cleanup(admin.Close)
	js, err := jetstream.New(admin)
	require.NoError(t, err)
	updateStream(func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject, c.Discard = 1, jetstream.DiscardOld })(t, js)
	require.Eventually(t, func() bool { code, _ := readyz(); return code == http.StatusServiceUnavailable }, 10*time.Second, 5*time.Millisecond)
	code, body = readyz()
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "stream CONSENT is unsafe for the audit trail: ")
	assert.Contains(t, body, "max_msgs_per_subject is 1")
	assert.Equal(t, 0.0, scrape(t, m)["consent_stream_safe"])
	healthz()
	updateStream(func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject, c.Discard = -1, jetstream.DiscardNew })(t, js)
	require.Eventually(t, func() bool { code, _ := readyz(); return code == http.StatusOK }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1.0, scrape(t, m)["consent_stream_safe"])

	// The embedded NATS server's own monitoring.
	monitor := m.monitorAddr()
	require.NotEmpty(t, monitor)
	code, body = get(t, "http://"+monitor+"/varz")
	require.Equal(t, http.StatusOK, code)
	var varz struct {
		ServerName string `json:"server_name"`
		JetStream  any    `json:"jetstream"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &varz))
	assert.Equal(t, "consentd", varz.ServerName)
	code, _ = get(t, "http://"+monitor+"/jsz")
	assert.Equal(t, http.StatusOK, code)
}

// TestReadinessReasons: each condition /readyz checks, alone and
// together; the index lag against --ready-max-lag among them.
func TestReadinessReasons(t *testing.T) {
	safe := &ledger.StreamHealth{Stream: "CONSENT", Safe: true}
	live := projector.Health{IndexSeq: 90, StreamSeq: 100, Running: true, Ready: true}
	assert.Empty(t, readiness("CONSENT", safe, live, 10))
	assert.Equal(t, []string{"index lags the stream by 10 events (index at seq 90, stream at 100; --ready-max-lag 9)"},
		readiness("CONSENT", safe, live, 9))
	assert.Equal(t, []string{"stream CONSENT: not found yet"}, readiness("CONSENT", nil, live, 10))
	unsafe := &ledger.StreamHealth{Stream: "CONSENT", Problems: []string{"is sealed (sealed is true)"}, WritesRefused: "stream CONSENT is unsafe for the audit trail: is sealed"}
	assert.Equal(t, []string{"stream CONSENT is unsafe for the audit trail: is sealed"}, readiness("CONSENT", unsafe, live, 10))
	catchingUp := projector.Health{IndexSeq: 5, StreamSeq: 100, Running: true}
	assert.Equal(t, []string{"index catching up: at seq 5 of 100", "index lags the stream by 95 events (index at seq 5, stream at 100; --ready-max-lag 10)"},
		readiness("CONSENT", safe, catchingUp, 10))
	stopped := projector.Health{IndexSeq: 100, StreamSeq: 100, Err: "projector: gap at seq 101", Ready: true}
	assert.Equal(t, []string{"stream CONSENT: not found yet", "projector not running: projector: gap at seq 101"},
		readiness("CONSENT", nil, stopped, 10))
}

func TestHTTPFlagsAreChecked(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--http-listen", "9090"}, `--http-listen "9090": want HOST:PORT`},
		{[]string{"--http-listen", "127.0.0.1:70000"}, `--http-listen "127.0.0.1:70000": want HOST:PORT with a port from 1 to 65535 (or 0 for any free port)`},
		{[]string{"--nats-monitor", "127.0.0.1:x"}, `--nats-monitor "127.0.0.1:x": want HOST:PORT`},
		{[]string{"--ready-max-lag", "0"}, "--ready-max-lag 0: must be at least 1"},
		{[]string{"--nats-url", "nats://127.0.0.1:4222", "--nats-monitor", "127.0.0.1:8222"}, "--nats-monitor configures the embedded NATS server"},
	} {
		m := NewMain()
		m.Stderr, m.Environ = io.Discard, func() []string { return nil }
		err := m.ParseFlags(tt.args)
		require.Error(t, err, tt.args)
		assert.Contains(t, err.Error(), tt.want)
	}
	m := NewMain()
	m.Stderr, m.Environ = io.Discard, func() []string { return []string{"CONSENTD_HTTP_LISTEN=0.0.0.0:9090"} }
	require.NoError(t, m.ParseFlags(nil), "a listener beyond loopback is allowed (it shows no consent data)")
	assert.Equal(t, "0.0.0.0:9090", m.Config.HTTPListen)
	assert.Equal(t, uint64(DefaultReadyMaxLag), m.Config.ReadyMaxLag)
}
