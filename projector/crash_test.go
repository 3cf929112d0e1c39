package projector

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The crash test re-executes the test binary as a projector process
// selected by these variables.
const (
	childDirEnv = "PROJECTOR_CRASH_CHILD_DIR"
	childURLEnv = "PROJECTOR_CRASH_CHILD_URL"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		os.Exit(runCrashChild(dir, os.Getenv(childURLEnv)))
	}
	os.Exit(m.Run())
}

// runCrashChild projects the stream at url into the index in dir,
// printing "checkpoint N" after every commit, until SIGTERM.
func runCrashChild(dir, url string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	idx, err := Open(dir, IndexOptions{Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer idx.Close()
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}

	// Small batches make many commits, so the kill lands between and
	// inside them.
	p := New(js, idx, Options{MaxBatch: 16, Logger: logger})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	last := idx.Checkpoint()
	fmt.Printf("checkpoint %d\n", last)
	for {
		changed := idx.Changed()
		if cp := idx.Checkpoint(); cp != last {
			last = cp
			fmt.Printf("checkpoint %d\n", cp)
		}
		select {
		case <-changed:
		case err := <-done:
			if err != nil {
				fmt.Fprintln(os.Stderr, "child:", err)
				return 1
			}
			return 0
		}
	}
}

func TestProjectorSurvivesSIGKILL(t *testing.T) {
	s := natstest.RunServer(t)
	js := natstest.JetStream(t, natstest.Connect(t, s))
	createStream(t, js, testStreamConfig())
	h := newHistory(9, 2, 10, 3)
	h.add(t, 2500)
	h.queueBad(h.keys[0].NATSSubject(), string(events.TypeGranted), []byte(`{"forged":true}`))
	h.add(t, 2500)
	h.queueBad("consent.events.x.y.z", "", []byte(`[]`))
	h.add(t, 1000)
	h.publish(t, js)
	total := h.seq
	dir := t.TempDir()

	// First run: kill it mid catch-up.
	child := startCrashChild(t, dir, s.ClientURL())
	cp := child.waitFor(t, func(cp uint64) bool { return cp >= total/3 })
	require.Less(t, cp, total, "the child caught up before the kill; make the stream longer")
	_, err := Open(dir, IndexOptions{})
	require.ErrorIs(t, err, ErrLocked, "another process holds the index")
	child.kill(t)

	idx, err := Open(dir, IndexOptions{ReadyOnOpen: true})
	require.NoError(t, err)
	killedAt := idx.Checkpoint()
	t.Logf("killed at checkpoint %d of %d (last printed %d)", killedAt, total, cp)
	assert.Less(t, killedAt, total)
	assert.Positive(t, killedAt, "the restart resumes from a checkpoint, not from scratch")
	require.NoError(t, idx.Close())

	// Second run: it resumes from what survived and catches up.
	child = startCrashChild(t, dir, s.ClientURL())
	child.waitFor(t, func(cp uint64) bool { return cp == total })
	child.terminate(t)

	idx = openIndex(t, dir, IndexOptions{ReadyOnOpen: true})
	assert.Equal(t, total, idx.Checkpoint())
	assertMatchesModel(t, idx, h)
	violations, err := idx.Violations()
	require.NoError(t, err)
	require.Len(t, violations, 2, "each violation recorded exactly once")
	assert.Equal(t, uint64(2), idx.ViolationCount())
	assert.Equal(t, uint64(2501), violations[0].Seq)
	assert.Equal(t, uint64(5002), violations[1].Seq)
}

type crashChild struct {
	cmd    *exec.Cmd
	lines  chan uint64
	stderr *bytes.Buffer
}

func startCrashChild(t *testing.T, dir, url string) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childURLEnv+"="+url)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	c := &crashChild{cmd: cmd, lines: make(chan uint64, 1024), stderr: new(bytes.Buffer)}
	cmd.Stderr = c.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "checkpoint "); ok {
				if cp, err := strconv.ParseUint(n, 10, 64); err == nil {
					c.lines <- cp
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	return c
}

// waitFor reads progress lines until one satisfies ok and returns it.
func (c *crashChild) waitFor(t *testing.T, ok func(uint64) bool) uint64 {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case cp, open := <-c.lines:
			if !open {
				_ = c.cmd.Wait()
				t.Fatalf("child exited (%v) before the checkpoint was reached; stderr:\n%s", c.cmd.ProcessState, c.stderr)
			}
			if ok(cp) {
				return cp
			}
		case <-timeout:
			t.Fatalf("child made no progress in 60s; stderr:\n%s", c.stderr)
		}
	}
}

func (c *crashChild) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	err := c.cmd.Wait()
	require.Error(t, err)
	status := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, status.Signaled() && status.Signal() == syscall.SIGKILL, "child ended with %v", c.cmd.ProcessState)
}

func (c *crashChild) terminate(t *testing.T) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, c.cmd.Wait(), "child stderr:\n%s", c.stderr)
}
