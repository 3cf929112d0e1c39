package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// crashChild is consentd running as a child process (the test binary
// re-executed with BE_CONSENTD=1, see TestMain), so that it can be killed
// with SIGKILL or stopped with SIGSTOP.
type crashChild struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{}
}

// startCrashChild starts consentd on dataDir, its embedded server fsyncing
// every write (--sync always) and listening on 127.0.0.1:port (the same port each time, so that clients reconnect by
// themselves), with env added to its environment, and waits until it
// prints that it listens: its index has caught up with its stream.
func startCrashChild(t *testing.T, dataDir string, port int, env ...string) *crashChild {
	t.Helper()
	return startChildProcess(t, append([]string{"CONSENTD_DATA_DIR=" + dataDir, "CONSENTD_SYNC=always",
		fmt.Sprintf("CONSENTD_LISTEN=127.0.0.1:%d", port)}, env...)...)
}

// startChildProcess starts consentd configured by the CONSENTD_ variables
// in env and waits until it prints its start-up line.
func startChildProcess(t *testing.T, env ...string) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BE_CONSENTD=1", "CONSENTD_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	c := &crashChild{t: t, cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(c.kill)

	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, r) // keep the pipe drained
	}()
	select {
	case line := <-lines:
		require.True(t, strings.HasPrefix(line, "consentd: listening on ") || strings.HasPrefix(line, "consentd: serving through NATS at "),
			"consentd said %q; stderr: %s", line, c.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("consentd did not start within 60s; stderr: %s", c.stderr)
	}
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	return c
}

// kill sends SIGKILL and waits for the process to be gone. It is safe to
// call more than once.
func (c *crashChild) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// pause stops the process with SIGSTOP, as a frozen machine would be: its
// connections stay open, nothing in it runs. resume sends SIGCONT.
func (c *crashChild) pause() {
	c.t.Helper()
	require.NoError(c.t, c.cmd.Process.Signal(syscall.SIGSTOP))
}

func (c *crashChild) resume() {
	c.t.Helper()
	require.NoError(c.t, c.cmd.Process.Signal(syscall.SIGCONT))
}

// stop sends SIGTERM and waits for a clean exit.
func (c *crashChild) stop() {
	c.t.Helper()
	require.NoError(c.t, c.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("consentd did not stop within 30s of SIGTERM; stderr: %s", c.stderr)
	}
	require.True(c.t, c.cmd.ProcessState.Success(), "consentd exit: %s; stderr: %s", c.cmd.ProcessState, c.stderr)
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
