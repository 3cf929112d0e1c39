package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/metrics"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	dto "github.com/prometheus/client_model/go"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestComposeEveryServiceHasAHealthcheck: every long-running service of
// docker-compose.yml has a healthcheck (the one-shot auth-init is waited
// for by its completion); consentd's asks its own /readyz with consentd
// probe, on the port of its --http-listen; the others wait for it.
func TestComposeEveryServiceHasAHealthcheck(t *testing.T) {
	f := readCompose(t)
	for name, s := range f.Services {
		t.Run(name, func(t *testing.T) {
			if s.Restart == "no" {
				assert.True(t, isNATSConfig(s), "only auth-init runs once")
				return
			}
			require.NotEmpty(t, s.Healthcheck.Test, "a healthcheck")
			assert.Equal(t, "CMD", s.Healthcheck.Test[0], "exec form: the consentd image has no shell")
			if !isConsentd(s) {
				return
			}
			probe := []string(s.Healthcheck.Test[1:])
			require.GreaterOrEqual(t, len(probe), 2)
			assert.Equal(t, []string{"/usr/local/bin/consentd", "probe"}, probe[:2])
			_, port, err := net.SplitHostPort(argOrEnv(s, "http-listen"))
			require.NoError(t, err, "--http-listen")
			url := probe[slices.Index(probe, "--url")+1]
			assert.Equal(t, "http://127.0.0.1:"+port+"/readyz", url)
			for dep, condition := range s.DependsOn {
				if _, ok := f.Services[dep]; ok && (isNATS(f.Services[dep]) || isConsentd(f.Services[dep])) {
					assert.Equal(t, "service_healthy", condition, "waits for %s to be healthy", dep)
				}
			}
		})
	}
}

// prometheusConfig is the part of deploy/prometheus/prometheus.yml these
// tests read.
type prometheusConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// TestPrometheusScrapesEveryConsentd: the Prometheus of docker-compose.yml
// scrapes every consentd on its --http-listen port, and loads the alert
// rules from where the compose file mounts them.
func TestPrometheusScrapesEveryConsentd(t *testing.T) {
	f := readCompose(t)
	prom, ok := f.Services["prometheus"]
	require.True(t, ok, "a prometheus service")
	var cfg prometheusConfig
	data, err := os.ReadFile(hostPath(t, prom, "/etc/prometheus/prometheus.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &cfg))

	var want, got []string
	for name, s := range f.Services {
		if isConsentd(s) {
			_, port, err := net.SplitHostPort(argOrEnv(s, "http-listen"))
			require.NoError(t, err, "%s --http-listen", name)
			want = append(want, name+":"+port)
		}
	}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName == "consentd" {
			for _, st := range sc.StaticConfigs {
				got = append(got, st.Targets...)
			}
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	assert.Equal(t, want, got, "job consentd scrapes every consentd")
	require.Len(t, cfg.RuleFiles, 1)
	assert.Equal(t, filepath.Join(repoRoot, "deploy/prometheus/alerts.yml"), hostPath(t, prom, cfg.RuleFiles[0]))
}

// exportedMetrics returns the name of every metric family consentd
// exports, each series made to exist (a vector has none until used), with
// the _bucket, _sum and _count series of its histograms.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New(metrics.BuildInfo{Version: "test"}, metrics.Sources{
		Projector:     func() projector.Health { return projector.Health{} },
		StreamSafe:    func() (bool, bool) { return true, true },
		Expiry:        func() (ledger.ExpiryStats, bool) { return ledger.ExpiryStats{}, true },
		ExpiryBacklog: func(context.Context) (int, error) { return 0, nil },
		Feeds:         func(context.Context) (ledger.FeedConsumerStats, error) { return ledger.FeedConsumerStats{}, nil },
	})
	m.Appended(events.TypeGranted, "stored", time.Millisecond)
	m.Looked("check", "allowed", time.Millisecond)
	m.MinSeqWaited(true)
	m.GroupCommitted(2, time.Millisecond)
	m.Checkpoint(true, nil)
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	names := map[string]bool{"up": true} // Prometheus' own, per target
	for _, f := range families {
		names[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+suffix] = true
			}
		}
	}
	return names
}

// metricNames are the names of metrics in a PromQL expression (those of
// consentd, the Go and process collectors, and up).
var metricNames = regexp.MustCompile(`\b(?:consent|go|process)_[a-z0-9_]+\b|\bup\b`)

// TestAlertRulesAndDashboardNameExportedMetrics: the alert rules and the
// Grafana dashboard parse, and every query in them names metrics consentd
// exports, so that neither watches a metric that does not exist.
func TestAlertRulesAndDashboardNameExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	checkExpr := func(t *testing.T, where, expr string) {
		t.Helper()
		used := metricNames.FindAllString(expr, -1)
		assert.NotEmpty(t, used, "%s: %q names no metric", where, expr)
		for _, name := range used {
			assert.True(t, exported[name], "%s: %s is not a metric consentd exports", where, name)
		}
	}

	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy/prometheus/alerts.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &rules))
	require.NotEmpty(t, rules.Groups)
	runbook, err := os.ReadFile(filepath.Join(repoRoot, "docs/alerts.md"))
	require.NoError(t, err)
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts++
			checkExpr(t, "alert "+r.Alert, r.Expr)
			assert.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], r.Alert)
			assert.NotEmpty(t, r.Annotations["summary"], r.Alert)
			assert.Contains(t, string(runbook), "## "+r.Alert+"\n", "docs/alerts.md says what to do when %s fires", r.Alert)
		}
	}
	for _, name := range []string{"consent_index_lag_events", "consent_integrity_violations_total", "consent_stream_safe", "consent_appends_total", "consent_expiry_backlog"} {
		assert.Contains(t, string(data), name, "an alert watches %s", name)
	}

	var dashboard struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	data, err = os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/dashboards/consent-ledger.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &dashboard))
	assert.NotEmpty(t, dashboard.UID)
	queries := 0
	for _, p := range dashboard.Panels {
		if p.Type == "row" {
			continue
		}
		assert.NotEmpty(t, p.Targets, "panel %q has queries", p.Title)
		for _, target := range p.Targets {
			queries++
			checkExpr(t, "panel "+p.Title, target.Expr)
		}
	}
	assert.Greater(t, queries, 10)
	t.Logf("%d alert rules, %d dashboard queries checked against %d exported names", alerts, queries, len(exported))
}
