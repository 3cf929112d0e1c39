//go:build !unix

package perf

import "time"

// processCPU returns zero: the platform's CPU time is not read.
func processCPU() time.Duration { return 0 }
