package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// table collects the comparisons and prints them: the table, the notes,
// then one "name ratio" line per comparison.
type table struct {
	out   io.Writer
	rows  [][5]string
	names []string
	ratio []float64
	notes []string
}

func newTable(out io.Writer) *table { return &table{out: out} }

// row adds a comparison: what, under which load, the figure, its bare
// counterpart, and the ratio under a script-friendly name.
func (t *table) row(what, load, figure, bare, name string, ratio float64) {
	t.rows = append(t.rows, [5]string{what, load, figure, bare, fmt.Sprintf("%.3f", ratio)})
	t.names = append(t.names, name)
	t.ratio = append(t.ratio, ratio)
}

func (t *table) note(s string) { t.notes = append(t.notes, s) }

func (t *table) print() {
	w := tabwriter.NewWriter(t.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "comparison\tload\tconsent ledger\tbare counterpart\tratio")
	fmt.Fprintln(w, "----------\t----\t--------------\t----------------\t-----")
	for _, r := range t.rows {
		fmt.Fprintln(w, strings.Join(r[:], "\t"))
	}
	_ = w.Flush()
	fmt.Fprintln(t.out)
	for _, n := range t.notes {
		fmt.Fprintln(t.out, n)
	}
	fmt.Fprintln(t.out)
	for i, n := range t.names {
		fmt.Fprintf(t.out, "%s %.3f\n", n, t.ratio[i])
	}
}

func rate(v float64, unit string) string { return fmt.Sprintf("%.0f %s", v, unit) }

func latencies(r interface {
	Percentile(float64) time.Duration
}) string {
	return fmt.Sprintf("p50 %s p99 %s", ms(r.Percentile(50)), ms(r.Percentile(99)))
}

func ms(d time.Duration) string      { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string      { return fmt.Sprintf("%.0fus", float64(d)/float64(time.Microsecond)) }
func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
func mib(b uint64) string            { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
