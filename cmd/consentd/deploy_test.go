package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

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
