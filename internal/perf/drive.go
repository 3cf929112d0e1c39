// Package perf measures Consent Ledger against the bare NATS and Pebble
// operations it is built on, in one process: each comparison runs the
// ledger's operation and its bare counterpart on the same server and
// returns both with their ratio. cmd/consentbench prints them; the
// packages' go test benchmarks use the same drivers.
package perf

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Run is the outcome of a timed run: every call's latency, sorted, the
// wall time from the first call to the last answer, and the CPU time the
// whole process used meanwhile (every goroutine: the in-process servers'
// too; zero where the platform does not tell).
type Run struct {
	Latencies []time.Duration
	Elapsed   time.Duration
	CPU       time.Duration
}

// CPUPer returns the process's CPU time per one of n operations.
func (r Run) CPUPer(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return r.CPU / time.Duration(n)
}

// Busy returns the share of cores the process kept busy during the run:
// 1 when it used all of them the whole time.
func (r Run) Busy(cores int) float64 {
	if r.Elapsed <= 0 || cores <= 0 {
		return 0
	}
	return r.CPU.Seconds() / (r.Elapsed.Seconds() * float64(cores))
}

// Rate is calls per second.
func (r Run) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(len(r.Latencies)) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile latency (0 < p <= 100).
func (r Run) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies))*p/100+0.999999) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// Drive makes n calls from callers goroutines, call(i) for i in [0, n),
// each goroutine taking the next i as soon as its previous call returns.
// It stops early at the first error and returns it.
func Drive(callers, n int, call func(i int) error) (Run, error) {
	var next atomic.Int64
	var failed atomic.Bool
	var firstErr error
	var once sync.Once
	lat := make([][]time.Duration, callers)
	var wg sync.WaitGroup
	start, cpu := time.Now(), processCPU()
	for c := range callers {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := call(i); err != nil {
					once.Do(func() { firstErr = err })
					failed.Store(true)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	r := Run{Latencies: slices.Concat(lat...), Elapsed: time.Since(start), CPU: processCPU() - cpu}
	slices.Sort(r.Latencies)
	return r, firstErr
}

// merge returns the runs as one: their latencies together and their wall
// times added.
func (r Run) merge(o Run) Run {
	m := Run{Latencies: slices.Concat(r.Latencies, o.Latencies), Elapsed: r.Elapsed + o.Elapsed, CPU: r.CPU + o.CPU}
	slices.Sort(m.Latencies)
	return m
}
