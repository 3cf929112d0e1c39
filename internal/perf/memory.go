package perf

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/consentledger/consent/ledger"
)

// Memory is what /proc/self/status says of the process's resident memory.
type Memory struct {
	RSS  uint64 // VmRSS: resident now, bytes
	Peak uint64 // VmHWM: the most resident so far, bytes
}

// ReadMemory reads the process's resident memory (Linux only).
func ReadMemory() (Memory, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *uint64
		switch name {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.Peak
		default:
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("/proc/self/status %s: %w", name, err)
		}
		*dst = kb << 10
	}
	return m, sc.Err()
}

// HoldMode says what a memory measurement runs over a filled store.
type HoldMode string

const (
	// HoldConsentd runs what consentd runs: the embedded server fsyncing
	// every write, the ledger with group commit, the projector rebuilding
	// its index from the stream, and the consent service.
	HoldConsentd HoldMode = "consentd"
	// HoldBare runs the embedded server alone on the same store and reads
	// the stream once from start to end with a bare ordered consumer, as
	// the projector's catch-up reads it (reading loads the server's
	// per-block subject state, which it keeps for a while).
	HoldBare HoldMode = "bare"
)

// HoldOptions says how Hold measures.
type HoldOptions struct {
	// MemoryLimit is the runtime's soft memory limit for the process (as
	// consentd --memory-limit sets it); 0 leaves the default.
	MemoryLimit int64
	// AtRest is how long after the catch-up the second measurement is
	// taken; 0 takes none. Past DefaultAtRest the server has dropped the
	// per-block subject state the catch-up loaded and the duplicate window
	// of the fill has passed: what a ledger holding its consents for
	// longer than a few minutes keeps.
	AtRest time.Duration
}

// WaitOutDuplicateWindow waits until the stream's duplicate window has
// passed since lastWrite. Within it the server keeps the id of every
// message written (a million ids, some 250 MiB, right after a fill of a
// million events): the cost of recent writes, which a memory measurement
// of holding consents leaves out.
func WaitOutDuplicateWindow(ctx context.Context, lastWrite time.Time) error {
	return sleep(ctx, time.Until(lastWrite.Add(ledger.DefaultDuplicates)))
}

// sleep waits d (nothing when d is not positive), or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DefaultAtRest is past nats-server's 2-minute expiry of a message
// block's subject state and the stream's 2-minute duplicate window.
const DefaultAtRest = 150 * time.Second

// HoldResult is the process's memory once it serves every event, and at
// rest.
type HoldResult struct {
	CaughtUp Memory
	AtRest   Memory // zero without HoldOptions.AtRest
}

// Hold starts mode over the JetStream store at store (filled by
// FillStream), waits until it serves every event (for consentd, until the
// index holds them all), lets it settle and measures the process's
// memory, then again at rest. Run it in a fresh process: the memory is the
// whole process's.
func Hold(ctx context.Context, store string, mode HoldMode, opts HoldOptions) (HoldResult, error) {
	if opts.MemoryLimit > 0 {
		debug.SetMemoryLimit(opts.MemoryLimit)
	}
	var r HoldResult
	caughtUp, err := hold(ctx, store, mode, func() error {
		if opts.AtRest <= 0 {
			return nil
		}
		if err := sleep(ctx, opts.AtRest); err != nil {
			return err
		}
		atRest, err := ReadMemory()
		r.AtRest = atRest
		return err
	})
	r.CaughtUp = caughtUp
	return r, err
}

// hold measures once everything is served and settled, then runs more
// while it still runs.
func hold(ctx context.Context, store string, mode HoldMode, more func() error) (Memory, error) {
	s, err := StartServerAt(store, true)
	if err != nil {
		return Memory{}, err
	}
	defer s.Close()
	js, err := s.JetStream()
	if err != nil {
		return Memory{}, err
	}
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	if err != nil {
		return Memory{}, err
	}
	if mode == HoldConsentd {
		idx, stopIndex, err := runIndex(ctx, js, filepath.Dir(store))
		if err != nil {
			return Memory{}, err
		}
		defer stopIndex()
		svcConn, err := s.InProcess()
		if err != nil {
			return Memory{}, err
		}
		l := ledger.New(js, stream, ledger.Options{GroupCommit: &ledger.GroupCommit{}, Tips: idx})
		svc, err := ledger.NewService(svcConn, l, idx, ledger.ServiceConfig{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return Memory{}, err
		}
		defer func() { _ = svc.Stop(context.Background()) }()
	} else {
		info, err := stream.Info(ctx)
		if err != nil {
			return Memory{}, err
		}
		if last := info.State.LastSeq; last > 0 {
			if _, err := drain(ctx, stream, last); err != nil {
				return Memory{}, err
			}
		}
	}
	// Settle: let background work (block loads, index flushes) finish.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return Memory{}, err
	}
	m, err := ReadMemory()
	if err != nil {
		return m, err
	}
	return m, more()
}
