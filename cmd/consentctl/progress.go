package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressBar draws one line on a terminal: done/total, rate and time
// left, redrawn at most five times a second. On anything but a terminal it
// draws nothing, so that logs and pipes stay clean.
type progressBar struct {
	w       io.Writer
	what    string
	started time.Time

	mu   sync.Mutex
	last time.Time
	drew bool
}

// newProgressBar returns a bar for w, or nil when w is not a terminal.
// The test is the standard library's: a character device (a terminal, or
// /dev/null, where drawing costs nothing), so consentctl needs no terminal
// package.
func newProgressBar(w io.Writer, what string) *progressBar {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	info, err := f.Stat()
	if err != nil || info.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return &progressBar{w: w, what: what, started: time.Now()}
}

// update redraws the bar; it is safe on a nil bar.
func (p *progressBar) update(done, total uint64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 200*time.Millisecond && done < total {
		return
	}
	p.last, p.drew = now, true
	fmt.Fprint(p.w, "\r"+renderProgress(p.what, done, total, now.Sub(p.started)))
}

// finish ends the bar's line; it is safe on a nil bar.
func (p *progressBar) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drew {
		fmt.Fprintln(p.w)
	}
}

// renderProgress is one line of the bar.
func renderProgress(what string, done, total uint64, elapsed time.Duration) string {
	const width = 30
	total = max(total, done)
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	rate := float64(done) / max(elapsed.Seconds(), 1e-3)
	line := fmt.Sprintf("%s %3.0f%% [%s] %d/%d  %.0f/s", what, 100*frac, bar, done, total, rate)
	if rate > 0 && done < total {
		left := time.Duration(float64(total-done) / rate * float64(time.Second))
		line += fmt.Sprintf("  %s left", left.Round(time.Second))
	}
	return line + "   "
}
