package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"github.com/consentledger/consent/internal/perf"
)

// serverCore and clientCore are the cores the r3apart comparison gives
// the cluster and the client.
const serverCore, clientCore = 0, 1

// replicatedApart runs the R3 grant comparison with the three servers in
// a child process pinned to one core and this process, the client
// (ledgers, projector, bare publishers), pinned to the other, as consentd
// runs on machines of its own beside a NATS cluster: the servers then get
// the same CPU for the grants as for the bare operations.
func replicatedApart(ctx context.Context, c config, t *table) error {
	if runtime.NumCPU() < 2 {
		return fmt.Errorf("needs 2 cores, this machine has %d", runtime.NumCPU())
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("needs taskset (util-linux) to pin the processes to cores: %w", err)
	}
	dir, err := os.MkdirTemp(c.dir, "consentbench-r3apart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	url, stop, err := serveReplicatedInChild(ctx, taskset, dir)
	if err != nil {
		return err
	}
	defer stop()

	unpin, err := pinTo(taskset, clientCore)
	if err != nil {
		return err
	}
	rounds := 5
	if c.quick {
		rounds = 3
	}
	r, err := perf.ReplicatedOn(ctx, url, perf.ReplicatedConfig{Dir: dir, Callers: c.callers, Grants: c.grants, Rounds: rounds})
	if uerr := unpin(); err == nil {
		err = uerr
	}
	if err != nil {
		return err
	}
	printReplicated(t, r, rounds, "R3 apart", "r3apart_grant_")
	m := r.Merged()
	t.note(fmt.Sprintf("R3 apart: the three servers in a process on core %d, the client on core %d; the client's CPU per grant with group commit %s (ledger, projector and NATS client: %s on one core)",
		serverCore, clientCore, us(m.GroupCPUPerGrant()), rate(cpuBound(1, m.GroupCPUPerGrant()), "grants/s")))
	return nil
}

// serveReplicatedInChild starts this program with -serve-r3 on core
// serverCore (GOMAXPROCS 1) and returns the URL of the node that leads
// its streams, and a func that stops it.
func serveReplicatedInChild(ctx context.Context, taskset, dir string) (url string, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, taskset, "-c", strconv.Itoa(serverCore), exe, "-serve-r3", dir)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() {
		_ = stdin.Close() // the child stops when its stdin closes
		_ = cmd.Wait()
	}
	var hello struct{ URL string }
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &hello)
	}
	if err != nil || hello.URL == "" {
		stop()
		return "", nil, fmt.Errorf("the servers' process said %q: %w", line, errors.Join(err, errors.New("no URL")))
	}
	return hello.URL, stop, nil
}

// serveReplicated is the child of serveReplicatedInChild: it serves the
// cluster and its streams, prints {"URL": ...} and stops when its stdin
// closes.
func serveReplicated(ctx context.Context, dir string, out io.Writer) error {
	servers, err := perf.StartReplicatedServers(ctx, dir)
	if err != nil {
		return err
	}
	defer servers.Close()
	if err := json.NewEncoder(out).Encode(struct{ URL string }{servers.URL}); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// pinTo pins every thread of this process to core (threads made later
// inherit it) with GOMAXPROCS 1, and returns a func that gives the
// process every core and its GOMAXPROCS back.
func pinTo(taskset string, core int) (unpin func() error, err error) {
	pid := strconv.Itoa(os.Getpid())
	if out, err := exec.Command(taskset, "-a", "-p", "-c", strconv.Itoa(core), pid).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("taskset: %w: %s", err, out)
	}
	procs := runtime.GOMAXPROCS(1)
	return func() error {
		runtime.GOMAXPROCS(procs)
		all := fmt.Sprintf("0-%d", runtime.NumCPU()-1)
		if out, err := exec.Command(taskset, "-a", "-p", "-c", all, pid).CombinedOutput(); err != nil {
			return fmt.Errorf("taskset: %w: %s", err, out)
		}
		return nil
	}, nil
}
