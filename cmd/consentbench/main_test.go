package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary stand in for consentbench when the memory
// comparison starts it again as a child process with -hold, or the
// r3apart comparison with -serve-r3.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "-hold" || os.Args[1] == "-serve-r3") {
		main() // exits 1 on an error
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A small quick run prints the machine's core count, a table row per
// comparison, and ends with one "name ratio" line per comparison, in the
// table's order, for scripts.
func TestQuickRunEndsWithOneRatioPerComparison(t *testing.T) {
	var out bytes.Buffer
	args := []string{"-quick", "-dir", t.TempDir(), "-events", "2000", "-grants", "256", "-lookups", "400"}
	require.NoError(t, run(t.Context(), args, &out))

	text := out.String()
	assert.True(t, strings.HasPrefix(text, fmt.Sprintf("consentbench: %d cores", runtime.NumCPU())), "the first line names the core count:\n%s", text)
	var want []string
	want = append(want, "grant_group_vs_alone", "grant_group_vs_bare_batch", "grant_alone_vs_bare_publish")
	for _, endpoint := range []string{"status", "check"} {
		for _, callers := range []string{"1", "32"} {
			for _, figure := range []string{"throughput", "p50", "p99"} {
				want = append(want, endpoint+"_"+callers+"_"+figure)
			}
		}
	}
	// A quick run does not wait to measure memory at rest.
	want = append(want, "catchup_vs_drain", "rebuild_vs_pebble_load", "memory_caught_up_vs_bare_server")
	want = append(want, authRatios...)
	want = append(want, sealedRatios...)
	want = append(want, metricsRatios...)
	want = append(want, r3Ratios...)

	checkRatios(t, text, want)
	assert.Contains(t, text, "\ngroup commit: ", "the group commit note")
}

// authRatios are the "name ratio" lines of the auth comparison.
var authRatios = []string{
	"auth_check_1_throughput", "auth_check_1_p50", "auth_check_1_p99", "auth_import_share_1_throughput",
	"auth_check_32_throughput", "auth_check_32_p50", "auth_check_32_p99", "auth_import_share_32_throughput",
	"auth_grant_throughput", "auth_grant_p50", "auth_grant_p99",
}

// -compare runs only the comparisons it names: the cost of authentication
// alone gives its rows, each with a positive ratio.
func TestQuickRunOfTheAuthComparison(t *testing.T) {
	var out bytes.Buffer
	args := []string{"-quick", "-compare", "auth", "-dir", t.TempDir(), "-grants", "256", "-lookups", "400"}
	require.NoError(t, run(t.Context(), args, &out))
	checkRatios(t, out.String(), authRatios)
	assert.NotContains(t, out.String(), "grant_group_vs_alone")
}

// sealedRatios are the "name ratio" lines of the sealed comparison.
var sealedRatios = []string{
	"sealed_grant_new_throughput", "sealed_grant_new_p50", "sealed_grant_new_p99",
	"sealed_grant_known_throughput", "sealed_grant_known_p50", "sealed_grant_known_p99",
	"sealed_check_1_throughput", "sealed_check_1_p50", "sealed_check_1_p99",
	"sealed_check_32_throughput", "sealed_check_32_p50", "sealed_check_32_p99",
	"sealed_rebuild",
}

// The cost of encryption alone gives its rows, each with a positive
// ratio.
func TestQuickRunOfTheSealedComparison(t *testing.T) {
	var out bytes.Buffer
	args := []string{"-quick", "-compare", "sealed", "-dir", t.TempDir(), "-grants", "256", "-lookups", "400"}
	require.NoError(t, run(t.Context(), args, &out))
	checkRatios(t, out.String(), sealedRatios)
	assert.NotContains(t, out.String(), "auth_grant_throughput")
}

// metricsRatios are the "name ratio" lines of the metrics comparison.
var metricsRatios = []string{
	"metrics_grant_throughput", "metrics_grant_p99",
	"metrics_check_1_throughput", "metrics_check_1_p99",
	"metrics_check_32_throughput", "metrics_check_32_p99",
}

// The cost of metrics alone gives its rows, each with a positive ratio
// (perf.Metrics also checks that the registry counted every call).
func TestQuickRunOfTheMetricsComparison(t *testing.T) {
	var out bytes.Buffer
	args := []string{"-quick", "-compare", "metrics", "-dir", t.TempDir(), "-grants", "256", "-lookups", "400"}
	require.NoError(t, run(t.Context(), args, &out))
	checkRatios(t, out.String(), metricsRatios)
	assert.NotContains(t, out.String(), "sealed_rebuild")
}

func TestCompareNamesKnownComparisons(t *testing.T) {
	var out bytes.Buffer
	assert.ErrorContains(t, run(t.Context(), []string{"-compare", "auth,memory"}, &out), `-compare: unknown comparison "memory"`)
	assert.ErrorContains(t, run(t.Context(), []string{"-compare", ","}, &out), "-compare: no comparison named")
}

// checkRatios checks that text ends with one "name ratio" line per name
// of want, in that order, each positive and shown by the table row of the
// same rank.
func checkRatios(t *testing.T, text string, want []string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	require.GreaterOrEqual(t, len(lines), len(want))
	tail := lines[len(lines)-len(want):]

	// The table: the rows between its rule and the first blank line, each
	// ending with the ratio its "name ratio" line repeats.
	var rows []string
	for i, line := range lines {
		if strings.HasPrefix(line, "----------") {
			for _, row := range lines[i+1:] {
				if row == "" {
					break
				}
				rows = append(rows, row)
			}
			break
		}
	}
	require.Len(t, rows, len(want), "one table row per comparison:\n%s", text)

	for i, name := range want {
		fields := strings.Fields(tail[i])
		require.Len(t, fields, 2, "line %q", tail[i])
		assert.Equal(t, name, fields[0])
		ratio, err := strconv.ParseFloat(fields[1], 64)
		require.NoError(t, err, "line %q", tail[i])
		assert.Greater(t, ratio, 0.0, "line %q", tail[i])
		assert.True(t, strings.HasSuffix(rows[i], " "+fields[1]), "row %q shows the ratio of %s", rows[i], name)
	}
}

// r3Ratios are the "name ratio" lines of the replicated comparison.
var r3Ratios = []string{
	"r3_grant_group_vs_alone", "r3_grant_group_vs_bare_batch", "r3_grant_group_vs_bare_batch_read",
	"r3_grant_group_vs_bare_async", "r3_grant_group_vs_bare_async_p99",
	"r3_grant_group_vs_bare_publish", "r3_grant_alone_vs_bare_publish", "r3_grant_group_vs_bare_batch_cpu", "r3_grant_group_vs_bare_batch_read_cpu",
}

// The replicated comparison alone (a three-node cluster on this machine,
// a stream of three replicas) gives its rows, each with a positive ratio,
// and the note of group commit's batches.
func TestQuickRunOfTheR3Comparison(t *testing.T) {
	var out bytes.Buffer
	args := []string{"-quick", "-compare", "r3", "-dir", t.TempDir(), "-grants", "256"}
	require.NoError(t, run(t.Context(), args, &out))
	checkRatios(t, out.String(), r3Ratios)
	assert.Contains(t, out.String(), "\nR3 group commit: ")
	assert.Contains(t, out.String(), "\nR3 CPU bound: ")
	assert.NotContains(t, out.String(), "\ngrant_group_vs_alone ")
}

// The r3apart comparison, named on its own, gives the R3 rows again with
// the cluster and the client each on a core of their own, and a note of
// the client's CPU per grant; on a machine that cannot pin them it fails
// saying why.
func TestQuickRunOfTheR3ApartComparison(t *testing.T) {
	var out bytes.Buffer
	args := []string{"-quick", "-compare", "r3apart", "-dir", t.TempDir(), "-grants", "256"}
	err := run(t.Context(), args, &out)
	if _, lookErr := exec.LookPath("taskset"); runtime.NumCPU() < 2 || lookErr != nil {
		require.ErrorContains(t, err, "needs")
		return
	}
	require.NoError(t, err)
	var want []string
	for _, name := range r3Ratios[:len(r3Ratios)-2] { // no process CPU ratios: the servers are in another process
		want = append(want, strings.Replace(name, "r3_", "r3apart_", 1))
	}
	checkRatios(t, out.String(), want)
	assert.Contains(t, out.String(), "\nR3 apart group commit: ")
	assert.Contains(t, out.String(), "\nR3 apart: the three servers in a process on core 0, the client on core 1")
}
