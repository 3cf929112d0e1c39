package perf

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/metrics"
	"github.com/consentledger/consent/ledger"
)

// MetricsConfig sizes the cost-of-metrics comparison.
type MetricsConfig struct {
	Dir      string // parent of the stacks' directories
	Consents int    // consents granted through each stack before the runs: those the checks ask about
	Calls    int    // checks per stack and concurrency
	Callers  []int  // concurrencies of the checks
	Grants   int    // grants of new persons per stack
	// GrantCallers is the number of concurrent callers making grants.
	GrantCallers int
	// Rounds is the number of interleaved rounds the calls are split
	// into; default 8.
	Rounds int
}

// MetricsLookup is the checks at one concurrency with metrics on and off.
type MetricsLookup struct {
	Callers int
	On, Off Run
	// Ratios are each round's throughput with metrics over without.
	Ratios []float64
}

// MetricsResult holds the runs of the cost-of-metrics comparison.
type MetricsResult struct {
	Lookups      []MetricsLookup
	GrantCallers int
	// GrantsOn and GrantsOff: grants of new persons through the service
	// and the Go client, with group commit on a server that fsyncs every
	// write.
	GrantsOn, GrantsOff Run
	// GrantRatios are each round's grant throughput with metrics over
	// without.
	GrantRatios []float64
}

// Median returns the median of xs (0 for none). On a shared machine a
// stall hits one side of one round; the median of the rounds' ratios
// leaves it out, where the ratio of the totals keeps it.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// pairRatio is pair for one round into fresh runs: it merges them into
// the totals on and off and returns the round's throughput ratio.
func pairRatio(round, callers, n int, on, off timed) (float64, error) {
	var roundOn, roundOff Run
	totalOn, totalOff := on.into, off.into
	on.into, off.into = &roundOn, &roundOff
	if err := pair(round, callers, n, on, off); err != nil {
		return 0, err
	}
	*totalOn, *totalOff = totalOn.merge(roundOn), totalOff.merge(roundOff)
	return roundOn.Rate() / roundOff.Rate(), nil
}

// Metrics measures the cost of consentd's metrics: two stacks in this
// process as Auth starts them, without authentication, one whose ledger
// and service report to an internal/metrics registry (as consentd
// --http-listen) and one without. Each first grants cfg.Consents
// consents. The stacks then take turns in Rounds rounds, the first
// alternating: checks of those consents at each concurrency, then grants
// of new persons; the registry is gathered once per round, as a scrape
// would. Each side's calls of a round are one run, and each round gives
// a throughput ratio (Median). Last, it checks that the registry counted every call made.
func Metrics(ctx context.Context, cfg MetricsConfig) (MetricsResult, error) {
	res := MetricsResult{GrantCallers: cfg.GrantCallers}
	rounds := cfg.Rounds
	if rounds <= 0 {
		rounds = 8
	}
	if cfg.Consents <= 0 {
		return res, fmt.Errorf("perf: MetricsConfig.Consents must be positive")
	}
	reg := metrics.New(metrics.BuildInfo{}, metrics.Sources{})
	off, on, err := startPair(ctx, "metrics", stackConfig{Dir: cfg.Dir}, stackConfig{Dir: cfg.Dir, Observer: reg})
	if err != nil {
		return res, err
	}
	defer off.close()
	defer on.close()

	queries := statusQueries(cfg.Consents)
	for _, st := range []*stack{off, on} {
		if err := st.grantAll(ctx, cfg.GrantCallers, cfg.Consents); err != nil {
			return res, fmt.Errorf("%s: grant the consents: %w", st.name, err)
		}
	}

	res.Lookups = make([]MetricsLookup, len(cfg.Callers))
	for i, callers := range cfg.Callers {
		res.Lookups[i].Callers = callers
	}
	perLookup := func(callers int) int { return max(cfg.Calls/rounds, callers) }
	perGrant := max(cfg.Grants/rounds, cfg.GrantCallers)
	for round := range rounds {
		for i, callers := range cfg.Callers {
			l := &res.Lookups[i]
			check := func(st *stack) func(int) error {
				return func(j int) error {
					_, err := st.client.Check(ctx, queries[j%len(queries)])
					return err
				}
			}
			ratio, err := pairRatio(round, callers, perLookup(callers),
				timed{"check with metrics", &l.On, check(on)},
				timed{"check without metrics", &l.Off, check(off)})
			if err != nil {
				return res, err
			}
			l.Ratios = append(l.Ratios, ratio)
		}
		grant := func(st *stack) func(int) error {
			return func(j int) error {
				cmd := grantCommand("m"+strconv.Itoa(round), j)
				cmd.Tenant = "acme"
				_, err := st.client.Grant(ctx, cmd)
				return err
			}
		}
		ratio, err := pairRatio(round, cfg.GrantCallers, perGrant,
			timed{"grant with metrics", &res.GrantsOn, grant(on)},
			timed{"grant without metrics", &res.GrantsOff, grant(off)})
		if err != nil {
			return res, err
		}
		res.GrantRatios = append(res.GrantRatios, ratio)
		if _, err := reg.Registry().Gather(); err != nil {
			return res, fmt.Errorf("gather the metrics: %w", err)
		}
	}

	// The registry counted what the stack with metrics did.
	checks := 0
	for _, l := range res.Lookups {
		checks += len(l.On.Latencies)
	}
	for _, c := range []struct {
		name, label, value, result string
		want                       int
	}{
		{"consent_lookups_total", "endpoint", "check", ledger.LookupAllowed, checks},
		{"consent_appends_total", "type", string(events.TypeGranted), ledger.AppendStored, cfg.Consents + len(res.GrantsOn.Latencies)},
	} {
		got, err := counterValue(reg, c.name, c.label, c.value, c.result)
		if err != nil {
			return res, err
		}
		if got != float64(c.want) {
			return res, fmt.Errorf("%s{%s=%q,result=%q} is %v; %d were made", c.name, c.label, c.value, c.result, got, c.want)
		}
	}
	return res, nil
}

// counterValue returns the value of the counter name{label=value,result=result}.
func counterValue(m *metrics.Metrics, name, label, value, result string) (float64, error) {
	families, err := m.Registry().Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels[label] == value && labels["result"] == result {
				return s.GetCounter().GetValue(), nil
			}
		}
	}
	return 0, fmt.Errorf("no series %s{%s=%q,result=%q}", name, label, value, result)
}
