// Command consentbench measures Consent Ledger against the bare NATS and
// Pebble operations it is built on, every comparison in one process on one
// machine, and prints a table: each figure beside its bare counterpart and
// the ratio, and the machine's core count. Its last lines are one
// "name ratio" pair per comparison, for scripts.
//
//	go run ./cmd/consentbench          # full run (one million events; about fifteen minutes)
//	go run ./cmd/consentbench -quick   # CI-sized run (seconds)
//
// The comparisons:
//   - durable grants (the embedded server fsyncing every write) by 64
//     concurrent callers, with and without group commit, against bare
//     JetStream publishes and bare atomic batches;
//   - status and check over request-reply at 1 and 32 callers against a
//     bare echo micro service (throughput, p50, p99);
//   - projector catch-up against a bare ordered-consumer drain of the same
//     stream, and the index rebuild of N events against a bare Pebble load
//     of N keys;
//   - resident memory of consentd holding N consents (with its
//     --memory-limit, -memory-limit here) against the embedded server
//     alone (with the same limit) holding the same stream and read once
//     by a bare drain, measured in child processes once caught up and
//     again at rest (-at-rest later), both started once the fill has
//     left the stream's duplicate window (not in a quick run);
//   - the cost of authentication: check at 1 and 32 callers and durable
//     grants with group commit by -callers callers, through a consent
//     service with authentication (operator mode, the client a writer of
//     tenant acme in its own account) against one without (one account,
//     an anonymous client), in interleaved rounds; and the bound the
//     account import sets, a bare echo across the import with shared
//     identity against one in the service's account;
//   - the cost of encryption: durable grants with group commit by -callers
//     callers, of new persons (each makes a data key) and of known ones,
//     check at 1 and 32 callers, and the rebuild of each stack's stream,
//     through a consent service whose ledger seals personal fields under
//     the persons' data keys (a key store under a KEK made for the run)
//     against one that does not, in interleaved rounds;
//   - durable grants on a replicated stream (r3): three embedded servers
//     in a cluster, each fsyncing every write, a stream of three replicas,
//     grants by -callers callers with and without group commit against
//     bare atomic batches of group commit's mean size and bare publishes,
//     one request per message and asynchronous with a window of -callers,
//     in rounds (5, 3 with -quick); and the process's CPU time per grant
//     against per bare batch message (servers and client share the cores).
//   - r3apart, only when named: the r3 comparison with the cluster in a
//     child process pinned to one core and the client (ledgers, projector,
//     bare publishers) pinned to the other, as consentd runs beside a NATS
//     cluster on machines of its own; it needs 2 cores and taskset.
//
// -compare picks some of them: go run ./cmd/consentbench -compare auth.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/consentledger/consent/internal/perf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "consentbench:", err)
		os.Exit(1)
	}
}

// config is what the flags set.
type config struct {
	quick    bool
	dir      string
	events   int
	grants   int
	callers  int
	lookups  int
	holdMode string // child process: measure memory over -hold-store
	serveR3  string // child process: serve the R3 comparison's cluster from this directory
	store    string
	memLimit int64         // -memory-limit for both processes of the memory comparison
	atRest   time.Duration // how long after the catch-up memory is measured again
	compare  []string      // the comparisons to run, in comparisons' order
}

// comparisons names the comparisons -compare picks from, in the order they
// run; defaults those it runs without -compare (r3apart pins processes to
// cores, which needs 2 cores and taskset).
var (
	comparisons = []string{"grants", "lookups", "stream", "auth", "sealed", "metrics", "r3", "r3apart"}
	defaults    = comparisons[:len(comparisons)-1]
)

func parse(args []string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("consentbench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.BoolVar(&c.quick, "quick", false, "CI-sized run: fewer events, grants and lookups")
	fs.StringVar(&c.dir, "dir", "", "`DIR` for the stores (default: the system's temporary directory); put it on the disk to measure")
	fs.IntVar(&c.events, "events", 0, "`N` events (one per consent) for catch-up, rebuild and memory; default 1000000, 20000 with -quick")
	fs.IntVar(&c.grants, "grants", 0, "`N` grants with group commit; default 12800, 1280 with -quick")
	fs.IntVar(&c.callers, "callers", 64, "`N` concurrent callers making grants")
	fs.IntVar(&c.lookups, "lookups", 0, "`N` lookups per endpoint and concurrency; default 40000, 4000 with -quick")
	fs.Int64Var(&c.memLimit, "memory-limit", 200<<20, "soft memory limit in `BYTES` of both processes measured for memory, as consentd --memory-limit sets it; 0 for none")
	fs.DurationVar(&c.atRest, "at-rest", -1, "measure memory again this long after the catch-up (`DURATION`); default 150s, none with -quick")
	compare := fs.String("compare", strings.Join(defaults, ","), "the comparisons to run, a comma-separated `LIST` of "+strings.Join(comparisons, ", ")+" (stream: catch-up, rebuild and memory; r3: durable grants on a three-node cluster; r3apart: the same with the cluster and the client each pinned to a core of their own)")
	fs.StringVar(&c.holdMode, "hold", "", "internal: measure the memory of `MODE` (consentd or bare) over -hold-store and print it as JSON")
	fs.StringVar(&c.store, "hold-store", "", "internal: the JetStream store `DIR` for -hold")
	fs.StringVar(&c.serveR3, "serve-r3", "", "internal: serve the r3apart comparison's cluster with its stores in `DIR`, print its URL as JSON, stop when stdin closes")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, name := range strings.Split(*compare, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if !slices.Contains(comparisons, name) {
			return c, fmt.Errorf("-compare: unknown comparison %q (want some of %s)", name, strings.Join(comparisons, ", "))
		}
		c.compare = append(c.compare, name)
	}
	if len(c.compare) == 0 {
		return c, fmt.Errorf("-compare: no comparison named (want some of %s)", strings.Join(comparisons, ", "))
	}
	def := func(v *int, full, quick int) {
		if *v <= 0 {
			*v = full
			if c.quick {
				*v = quick
			}
		}
	}
	def(&c.events, 1_000_000, 20_000)
	def(&c.grants, 12_800, 1_280)
	def(&c.lookups, 40_000, 4_000)
	if c.atRest < 0 {
		c.atRest = perf.DefaultAtRest
		if c.quick {
			c.atRest = 0
		}
	}
	return c, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	c, err := parse(args, out)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if c.serveR3 != "" {
		return serveReplicated(ctx, c.serveR3, out)
	}
	if c.holdMode != "" {
		m, err := perf.Hold(ctx, c.store, perf.HoldMode(c.holdMode), perf.HoldOptions{MemoryLimit: c.memLimit, AtRest: c.atRest})
		if err != nil {
			return err
		}
		return json.NewEncoder(out).Encode(m)
	}

	t := newTable(out)
	fmt.Fprintf(out, "consentbench: %d cores (GOMAXPROCS %d), %s %s/%s, %d events, %d grants by %d callers\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH, c.events, c.grants, c.callers)

	if slices.Contains(c.compare, "grants") {
		if err := grants(ctx, c, t); err != nil {
			return fmt.Errorf("grants: %w", err)
		}
	}
	if slices.Contains(c.compare, "lookups") {
		if err := lookups(ctx, c, t); err != nil {
			return fmt.Errorf("lookups: %w", err)
		}
	}
	if slices.Contains(c.compare, "stream") {
		if err := catchUpAndMemory(ctx, c, t); err != nil {
			return err
		}
	}
	if slices.Contains(c.compare, "auth") {
		if err := authCost(ctx, c, t); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if slices.Contains(c.compare, "sealed") {
		if err := sealedCost(ctx, c, t); err != nil {
			return fmt.Errorf("sealed: %w", err)
		}
	}
	if slices.Contains(c.compare, "metrics") {
		if err := metricsCost(ctx, c, t); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	if slices.Contains(c.compare, "r3") {
		if err := replicated(ctx, c, t); err != nil {
			return fmt.Errorf("r3: %w", err)
		}
	}
	if slices.Contains(c.compare, "r3apart") {
		if err := replicatedApart(ctx, c, t); err != nil {
			return fmt.Errorf("r3apart: %w", err)
		}
	}
	t.print()
	return nil
}

func grants(ctx context.Context, c config, t *table) error {
	r, err := perf.Grants(ctx, perf.GrantConfig{Dir: c.dir, Callers: c.callers, Grants: c.grants})
	if err != nil {
		return err
	}
	batchRate := r.BareBatch.Rate() * float64(c.callers)
	callers := fmt.Sprintf("%d callers", c.callers)
	t.row("grant durable, group commit vs alone", callers,
		rate(r.Group.Rate(), "grants/s")+", "+latencies(r.Group), rate(r.Alone.Rate(), "grants/s")+", "+latencies(r.Alone),
		"grant_group_vs_alone", r.Group.Rate()/r.Alone.Rate())
	t.row("grant durable, group commit vs bare atomic batches", fmt.Sprintf("batches of %d", c.callers),
		rate(r.Group.Rate(), "grants/s"), rate(batchRate, "msgs/s")+fmt.Sprintf(", batch p50 %s", ms(r.BareBatch.Percentile(50))),
		"grant_group_vs_bare_batch", r.Group.Rate()/batchRate)
	t.row("grant durable alone vs bare publish", callers,
		rate(r.Alone.Rate(), "grants/s"), rate(r.Bare.Rate(), "msgs/s")+", "+latencies(r.Bare),
		"grant_alone_vs_bare_publish", r.Alone.Rate()/r.Bare.Rate())
	s := r.GroupStats
	t.note(fmt.Sprintf("group commit: %d batches of %.1f grants on average, %d published alone, %d batches refused",
		s.Batches, float64(s.Batched)/float64(max(s.Batches, 1)), s.Singles, s.Refused))
	return nil
}

// replicated measures durable grants on a three-node cluster with a
// stream of three replicas against the bare replicated operations, in
// rounds: the figures are over all rounds, the ratios medians of the
// rounds' ratios. The servers and the client share this process and its
// cores, so it also compares the process's CPU time per grant and per
// bare batch message.
func replicated(ctx context.Context, c config, t *table) error {
	rounds := 5
	if c.quick {
		rounds = 3
	}
	r, err := perf.Replicated(ctx, perf.ReplicatedConfig{Dir: c.dir, Callers: c.callers, Grants: c.grants, Rounds: rounds})
	if err != nil {
		return err
	}
	cores := runtime.GOMAXPROCS(0)
	printReplicated(t, r, rounds, "R3", "r3_grant_", replicatedRow{
		"process CPU per grant, group commit vs per bare batch message", fmt.Sprintf("servers and client, %d cores, median of %d rounds", cores, rounds),
		func(m perf.ReplicatedRound) string { return cpu(m.GroupCPUPerGrant(), m.Group.Busy(cores)) },
		func(m perf.ReplicatedRound) string { return cpu(m.BareBatchCPUPerMsg(), m.BareBatch.Busy(cores)) },
		"group_vs_bare_batch_cpu",
		func(x perf.ReplicatedRound) float64 { return ratio(x.GroupCPUPerGrant(), x.BareBatchCPUPerMsg()) }}, replicatedRow{
		"process CPU per grant, group commit vs per bare batch message read by a consumer", fmt.Sprintf("servers and client, %d cores, median of %d rounds", cores, rounds),
		func(m perf.ReplicatedRound) string { return cpu(m.GroupCPUPerGrant(), m.Group.Busy(cores)) },
		func(m perf.ReplicatedRound) string {
			return cpu(m.BareBatchReadCPUPerMsg(), m.BareBatchRead.Busy(cores))
		},
		"group_vs_bare_batch_read_cpu",
		func(x perf.ReplicatedRound) float64 { return ratio(x.GroupCPUPerGrant(), x.BareBatchReadCPUPerMsg()) }})
	m := r.Merged()
	t.note(fmt.Sprintf("R3 CPU bound: %d cores never idle would allow %s at the grants' CPU each, %s at the bare batches' (the servers and the client share the cores)",
		cores, rate(cpuBound(cores, m.GroupCPUPerGrant()), "grants/s"), rate(cpuBound(cores, m.BareBatchCPUPerMsg()), "msgs/s")))
	return nil
}

// replicatedRow is one row of printReplicated: what it compares, under
// which load, the figures of the merged rounds, its name after the
// prefix, and its ratio in one round (nil: of the merged rounds' p99s).
type replicatedRow struct {
	what, load   string
	figure, bare func(perf.ReplicatedRound) string
	name         string
	f            func(perf.ReplicatedRound) float64
}

// printReplicated prints the rows of a replicated comparison, labelled
// label and named prefix..., then extra, and notes on group commit's
// batches and on each ratio's range over the rounds.
func printReplicated(t *table, r perf.ReplicatedResult, rounds int, label, prefix string, extra ...replicatedRow) {
	m := r.Merged()
	callers := fmt.Sprintf("%d callers, median of %d rounds", r.Callers, rounds)
	window := fmt.Sprintf("%d callers, window %d", r.Callers, r.Window)
	group := func(m perf.ReplicatedRound) string {
		return rate(m.Group.Rate(), "grants/s") + ", " + latencies(m.Group)
	}
	groupRate := func(m perf.ReplicatedRound) string { return rate(m.Group.Rate(), "grants/s") }
	rows := []replicatedRow{
		{"grant durable, group commit vs alone", callers,
			group, func(m perf.ReplicatedRound) string {
				return rate(m.Alone.Rate(), "grants/s") + ", " + latencies(m.Alone)
			}, "group_vs_alone",
			func(x perf.ReplicatedRound) float64 { return x.Group.Rate() / x.Alone.Rate() }},
		{"grant durable, group commit vs bare atomic batches", fmt.Sprintf("batches of %d, median of %d rounds", m.BatchSize, rounds),
			groupRate, func(m perf.ReplicatedRound) string {
				return rate(m.BareBatchRate(), "msgs/s") + ", batch " + latencies(m.BareBatch)
			}, "group_vs_bare_batch",
			func(x perf.ReplicatedRound) float64 { return x.Group.Rate() / x.BareBatchRate() }},
		{"grant durable, group commit vs bare atomic batches read by a consumer", fmt.Sprintf("batches of %d, median of %d rounds", m.BatchSize, rounds),
			groupRate, func(m perf.ReplicatedRound) string {
				return rate(m.BareBatchReadRate(), "msgs/s") + ", batch " + latencies(m.BareBatchRead)
			}, "group_vs_bare_batch_read",
			func(x perf.ReplicatedRound) float64 { return x.Group.Rate() / x.BareBatchReadRate() }},
		{"grant durable, group commit vs bare async publish", window + fmt.Sprintf(", median of %d rounds", rounds),
			group, func(m perf.ReplicatedRound) string {
				return rate(m.BareAsync.Rate(), "msgs/s") + ", " + latencies(m.BareAsync)
			}, "group_vs_bare_async",
			func(x perf.ReplicatedRound) float64 { return x.Group.Rate() / x.BareAsync.Rate() }},
		{"grant durable, group commit vs bare async publish, p99 latency", window,
			func(m perf.ReplicatedRound) string { return ms(m.Group.Percentile(99)) },
			func(m perf.ReplicatedRound) string { return ms(m.BareAsync.Percentile(99)) }, "group_vs_bare_async_p99", nil},
		{"grant durable, group commit vs bare publish", callers,
			group, func(m perf.ReplicatedRound) string {
				return rate(m.BareSync.Rate(), "msgs/s") + ", " + latencies(m.BareSync)
			}, "group_vs_bare_publish",
			func(x perf.ReplicatedRound) float64 { return x.Group.Rate() / x.BareSync.Rate() }},
		{"grant durable alone vs bare publish", callers,
			func(m perf.ReplicatedRound) string { return rate(m.Alone.Rate(), "grants/s") },
			func(m perf.ReplicatedRound) string { return rate(m.BareSync.Rate(), "msgs/s") }, "alone_vs_bare_publish",
			func(x perf.ReplicatedRound) float64 { return x.Alone.Rate() / x.BareSync.Rate() }},
	}
	var spread []string
	for _, x := range append(rows, extra...) {
		what := label + " " + x.what
		if x.f == nil { // over all rounds' latencies together
			t.row(what, x.load, x.figure(m), x.bare(m), prefix+x.name, ratio(m.Group.Percentile(99), m.BareAsync.Percentile(99)))
			continue
		}
		t.row(what, x.load, x.figure(m), x.bare(m), prefix+x.name, r.Median(x.f))
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, round := range r.Rounds {
			lo, hi = min(lo, x.f(round)), max(hi, x.f(round))
		}
		spread = append(spread, fmt.Sprintf("%s %.2f-%.2f", x.name, lo, hi))
	}
	s := m.GroupStats
	t.note(fmt.Sprintf("%s group commit: %d batches of %.1f grants on average, %d published alone, %d batches refused",
		label, s.Batches, float64(s.Batched)/float64(max(s.Batches, 1)), s.Singles, s.Refused))
	t.note(label + " ratios over the rounds: " + strings.Join(spread, ", "))
}

// cpu formats a CPU time per operation and the share of the cores busy.
func cpu(per time.Duration, busy float64) string {
	return fmt.Sprintf("%s CPU each, %.0f%% of the cores busy", us(per), 100*busy)
}

// cpuBound is the operations per second that cores never idle allow at
// per CPU time each.
func cpuBound(cores int, per time.Duration) float64 {
	if per <= 0 {
		return 0
	}
	return float64(cores) / per.Seconds()
}

func lookups(ctx context.Context, c config, t *table) error {
	results, err := perf.Lookups(ctx, perf.LookupConfig{Dir: c.dir, Consents: 1000, Calls: c.lookups, Callers: []int{1, 32}})
	if err != nil {
		return err
	}
	for _, r := range results {
		name := fmt.Sprintf("%s_%d", r.Endpoint, r.Callers)
		t.row(r.Endpoint+" vs echo, throughput", fmt.Sprintf("%d callers", r.Callers),
			rate(r.Lookup.Rate(), "req/s"), rate(r.Echo.Rate(), "req/s"), name+"_throughput", r.Lookup.Rate()/r.Echo.Rate())
		t.row(r.Endpoint+" vs echo, p50 latency", fmt.Sprintf("%d callers", r.Callers),
			us(r.Lookup.Percentile(50)), us(r.Echo.Percentile(50)), name+"_p50", ratio(r.Lookup.Percentile(50), r.Echo.Percentile(50)))
		t.row(r.Endpoint+" vs echo, p99 latency", fmt.Sprintf("%d callers", r.Callers),
			us(r.Lookup.Percentile(99)), us(r.Echo.Percentile(99)), name+"_p99", ratio(r.Lookup.Percentile(99), r.Echo.Percentile(99)))
	}
	return nil
}

// authCost measures lookups and grants with authentication against the
// same without, and the bound the account import sets.
func authCost(ctx context.Context, c config, t *table) error {
	r, err := perf.Auth(ctx, perf.AuthConfig{Dir: c.dir, Consents: 1000, Calls: c.lookups, Callers: []int{1, 32},
		Grants: c.grants, GrantCallers: c.callers})
	if err != nil {
		return err
	}
	for _, l := range r.Lookups {
		callers := fmt.Sprintf("%d callers", l.Callers)
		name := fmt.Sprintf("auth_check_%d", l.Callers)
		t.row("check with auth vs without, throughput", callers,
			rate(l.Auth.Rate(), "req/s"), rate(l.NoAuth.Rate(), "req/s"), name+"_throughput", l.Auth.Rate()/l.NoAuth.Rate())
		t.row("check with auth vs without, p50 latency", callers,
			us(l.Auth.Percentile(50)), us(l.NoAuth.Percentile(50)), name+"_p50", ratio(l.Auth.Percentile(50), l.NoAuth.Percentile(50)))
		t.row("check with auth vs without, p99 latency", callers,
			us(l.Auth.Percentile(99)), us(l.NoAuth.Percentile(99)), name+"_p99", ratio(l.Auth.Percentile(99), l.NoAuth.Percentile(99)))
		t.row("bare echo across import+share vs one account", callers,
			rate(l.Import.Rate(), "req/s")+", p50 "+us(l.Import.Percentile(50)), rate(l.SameAccount.Rate(), "req/s")+", p50 "+us(l.SameAccount.Percentile(50)),
			fmt.Sprintf("auth_import_share_%d_throughput", l.Callers), l.Import.Rate()/l.SameAccount.Rate())
	}
	callers := fmt.Sprintf("%d callers", r.GrantCallers)
	t.row("grant durable, group commit, with auth vs without", callers,
		rate(r.AuthGrant.Rate(), "grants/s")+", "+latencies(r.AuthGrant), rate(r.NoAuthGrant.Rate(), "grants/s")+", "+latencies(r.NoAuthGrant),
		"auth_grant_throughput", r.AuthGrant.Rate()/r.NoAuthGrant.Rate())
	t.row("grant durable, group commit, with auth vs without, p50 latency", callers,
		ms(r.AuthGrant.Percentile(50)), ms(r.NoAuthGrant.Percentile(50)), "auth_grant_p50", ratio(r.AuthGrant.Percentile(50), r.NoAuthGrant.Percentile(50)))
	t.row("grant durable, group commit, with auth vs without, p99 latency", callers,
		ms(r.AuthGrant.Percentile(99)), ms(r.NoAuthGrant.Percentile(99)), "auth_grant_p99", ratio(r.AuthGrant.Percentile(99), r.NoAuthGrant.Percentile(99)))
	return nil
}

// sealedCost measures grants, lookups and rebuild with encryption against
// the same without.
func sealedCost(ctx context.Context, c config, t *table) error {
	r, err := perf.Sealed(ctx, perf.SealedConfig{Dir: c.dir, Consents: 1000, Calls: c.lookups, Callers: []int{1, 32},
		Grants: c.grants, GrantCallers: c.callers})
	if err != nil {
		return err
	}
	callers := fmt.Sprintf("%d callers", r.GrantCallers)
	for _, g := range []struct {
		what, name    string
		sealed, clear perf.Run
	}{{"new persons", "new", r.SealedNew, r.ClearNew}, {"known persons", "known", r.SealedKnown, r.ClearKnown}} {
		what := "grant durable, group commit, " + g.what + ", sealed vs clear"
		name := "sealed_grant_" + g.name
		t.row(what, callers,
			rate(g.sealed.Rate(), "grants/s")+", "+latencies(g.sealed), rate(g.clear.Rate(), "grants/s")+", "+latencies(g.clear),
			name+"_throughput", g.sealed.Rate()/g.clear.Rate())
		t.row(what+", p50 latency", callers,
			ms(g.sealed.Percentile(50)), ms(g.clear.Percentile(50)), name+"_p50", ratio(g.sealed.Percentile(50), g.clear.Percentile(50)))
		t.row(what+", p99 latency", callers,
			ms(g.sealed.Percentile(99)), ms(g.clear.Percentile(99)), name+"_p99", ratio(g.sealed.Percentile(99), g.clear.Percentile(99)))
	}
	for _, l := range r.Lookups {
		callers := fmt.Sprintf("%d callers", l.Callers)
		name := fmt.Sprintf("sealed_check_%d", l.Callers)
		t.row("check sealed vs clear, throughput", callers,
			rate(l.Sealed.Rate(), "req/s"), rate(l.Clear.Rate(), "req/s"), name+"_throughput", l.Sealed.Rate()/l.Clear.Rate())
		t.row("check sealed vs clear, p50 latency", callers,
			us(l.Sealed.Percentile(50)), us(l.Clear.Percentile(50)), name+"_p50", ratio(l.Sealed.Percentile(50), l.Clear.Percentile(50)))
		t.row("check sealed vs clear, p99 latency", callers,
			us(l.Sealed.Percentile(99)), us(l.Clear.Percentile(99)), name+"_p99", ratio(l.Sealed.Percentile(99), l.Clear.Percentile(99)))
	}
	t.row("index rebuild sealed vs clear", fmt.Sprintf("%d events", r.SealedRebuild.Events),
		rate(r.SealedRebuild.Rate(), "events/s"), rate(r.ClearRebuild.Rate(), "events/s"),
		"sealed_rebuild", r.SealedRebuild.Rate()/r.ClearRebuild.Rate())
	return nil
}

// catchUpAndMemory fills one store with c.events events, times the
// catch-up and rebuild over it, then measures memory over it in child
// processes.
func catchUpAndMemory(ctx context.Context, c config, t *table) error {
	dir, err := os.MkdirTemp(c.dir, "consentbench-stream-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store := filepath.Join(dir, "store")
	s, err := perf.StartServerAt(store, false)
	if err != nil {
		return err
	}
	js, err := s.JetStream()
	if err != nil {
		s.Close()
		return err
	}
	if err := perf.FillStream(ctx, js, c.events); err != nil {
		s.Close()
		return fmt.Errorf("fill the stream: %w", err)
	}
	filled := time.Now()
	rounds := 1
	if c.quick {
		rounds = 3
	}
	r, err := perf.CatchUp(ctx, js, dir, rounds)
	s.Close()
	if err != nil {
		return fmt.Errorf("catch-up: %w", err)
	}
	n := fmt.Sprintf("%d events", r.Events)
	t.row("projector catch-up vs ordered-consumer drain", n,
		rate(r.Rate(), "events/s"), rate(r.BareRate(), "msgs/s"), "catchup_vs_drain", r.Rate()/r.BareRate())
	load, err := perf.PebbleLoad(dir, int(r.Events))
	if err != nil {
		return fmt.Errorf("pebble load: %w", err)
	}
	t.row("index rebuild vs bare Pebble load", n,
		seconds(r.Rebuild), seconds(load), "rebuild_vs_pebble_load", load.Seconds()/r.Rebuild.Seconds())

	// Outside the duplicate window, so that neither server holds the ids
	// of the fill's writes (a quick run's are few: it does not wait).
	if !c.quick {
		if err := perf.WaitOutDuplicateWindow(ctx, filled); err != nil {
			return err
		}
	}
	// One after the other: two servers must not share a store.
	consentd, err := holdInChild(ctx, c, store, perf.HoldConsentd, c.memLimit)
	if err != nil {
		return fmt.Errorf("memory of consentd: %w", err)
	}
	// The same limit for both, so that the ratio is what consentd adds.
	bare, err := holdInChild(ctx, c, store, perf.HoldBare, c.memLimit)
	if err != nil {
		return fmt.Errorf("memory of the bare server: %w", err)
	}
	n = fmt.Sprintf("%d consents", r.Events)
	limit := "no memory limit"
	if c.memLimit > 0 {
		limit = "--memory-limit " + mib(uint64(c.memLimit))
	}
	t.row("resident memory after catch-up, consentd vs server after a drain", n+", "+limit,
		mib(consentd.CaughtUp.RSS)+fmt.Sprintf(" (peak %s)", mib(consentd.CaughtUp.Peak)),
		mib(bare.CaughtUp.RSS)+fmt.Sprintf(" (peak %s)", mib(bare.CaughtUp.Peak)),
		"memory_caught_up_vs_bare_server", float64(consentd.CaughtUp.RSS)/float64(bare.CaughtUp.RSS))
	if c.atRest > 0 {
		t.row("resident memory at rest, consentd vs server after a drain", fmt.Sprintf("%s, %s later", n, c.atRest),
			mib(consentd.AtRest.RSS), mib(bare.AtRest.RSS),
			"memory_at_rest_vs_bare_server", float64(consentd.AtRest.RSS)/float64(bare.AtRest.RSS))
	}
	return nil
}

// holdInChild measures memory in a fresh process running this program
// with -hold.
func holdInChild(ctx context.Context, c config, store string, mode perf.HoldMode, limit int64) (perf.HoldResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return perf.HoldResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute+c.atRest)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-hold", string(mode), "-hold-store", store,
		"-memory-limit", fmt.Sprint(limit), "-at-rest", c.atRest.String())
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		return perf.HoldResult{}, err
	}
	var m perf.HoldResult
	if err := json.Unmarshal(outb, &m); err != nil {
		return perf.HoldResult{}, fmt.Errorf("child said %q: %w", outb, err)
	}
	return m, nil
}

// metricsCost measures grants and checks with consentd's metrics against
// the same without.
func metricsCost(ctx context.Context, c config, t *table) error {
	// Short interleaved rounds: the difference measured is small, and a
	// stall of the shared machine then weighs on both sides alike.
	r, err := perf.Metrics(ctx, perf.MetricsConfig{Dir: c.dir, Consents: 1000, Calls: c.lookups, Callers: []int{1, 32},
		Grants: c.grants, GrantCallers: c.callers, Rounds: 32})
	if err != nil {
		return err
	}
	callers := fmt.Sprintf("%d callers", r.GrantCallers)
	t.row("grant durable, group commit, metrics on vs off, median of rounds", callers,
		rate(r.GrantsOn.Rate(), "grants/s")+", "+latencies(r.GrantsOn), rate(r.GrantsOff.Rate(), "grants/s")+", "+latencies(r.GrantsOff),
		"metrics_grant_throughput", perf.Median(r.GrantRatios))
	t.row("grant metrics on vs off, p99 latency", callers,
		ms(r.GrantsOn.Percentile(99)), ms(r.GrantsOff.Percentile(99)), "metrics_grant_p99", ratio(r.GrantsOn.Percentile(99), r.GrantsOff.Percentile(99)))
	for _, l := range r.Lookups {
		callers := fmt.Sprintf("%d callers", l.Callers)
		name := fmt.Sprintf("metrics_check_%d", l.Callers)
		t.row("check metrics on vs off, throughput, median of rounds", callers,
			rate(l.On.Rate(), "req/s"), rate(l.Off.Rate(), "req/s"), name+"_throughput", perf.Median(l.Ratios))
		t.row("check metrics on vs off, p99 latency", callers,
			us(l.On.Percentile(99)), us(l.Off.Percentile(99)), name+"_p99", ratio(l.On.Percentile(99), l.Off.Percentile(99)))
	}
	return nil
}
