package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hotLoad is the nemesis load: writers granting and revoking a few
// hot consents that all of them write, each command with an idempotency
// key of its own, sent again with it (after a timeout, a 503, no
// responders) until it is answered: stored, or refused with 409 (a
// transition the consent's state forbids, or contention with the other
// instance). Every answer is timed.
type hotLoad struct {
	consents    []events.Key
	callTimeout time.Duration

	mu       sync.Mutex
	answers  []time.Time // when each command was answered, stored or refused
	acks     []ack       // the stored ones
	failures map[string]int
}

func newHotLoad(consents int) *hotLoad {
	l := &hotLoad{failures: map[string]int{}, callTimeout: 2 * time.Second}
	for n := range consents {
		l.consents = append(l.consents, events.Key{Tenant: events.DefaultTenant,
			SubjectID: fmt.Sprintf("hot-%d@example.com", n), Purpose: "newsletter"})
	}
	return l
}

// start runs writers, writer w on clients[w % len(clients)], until stop.
func (l *hotLoad) start(ctx context.Context, writers int, clients []*client.Client) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range writers {
		client := clients[w%len(clients)]
		wg.Go(func() { l.write(ctx, w, client) })
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

func (l *hotLoad) write(ctx context.Context, w int, client *client.Client) {
	rng := rand.New(rand.NewPCG(uint64(w), 20))
	for op := 0; ctx.Err() == nil; op++ {
		key := l.consents[rng.IntN(len(l.consents))]
		kind := events.KindGrant
		if rng.IntN(2) == 0 {
			kind = events.KindRevoke
		}
		cmd := events.Command{SubjectID: key.SubjectID, Purpose: key.Purpose, Actor: "load",
			IdempotencyKey: fmt.Sprintf("hot-w%d-op%d", w, op)}
		firstSent := time.Now()
		for attempts := 1; ; attempts++ {
			sent := time.Now()
			callCtx, cancel := context.WithTimeout(ctx, l.callTimeout)
			var reply wire.Reply
			var err error
			if kind == events.KindGrant {
				reply, err = client.Grant(callCtx, cmd)
			} else {
				reply, err = client.Revoke(callCtx, cmd)
			}
			cancel()
			var we *wire.Error
			if err == nil || (errors.As(err, &we) && we.Code == 409) {
				l.mu.Lock()
				l.answers = append(l.answers, time.Now())
				if err == nil {
					l.acks = append(l.acks, ack{writer: w, kind: kind, consent: key, idempotencyKey: cmd.IdempotencyKey,
						seq: reply.Seq, eventID: reply.Event.ID, duplicate: reply.Duplicate, firstSent: firstSent, sent: sent,
						at: time.Now(), attempts: attempts})
				}
				l.mu.Unlock()
				break
			}
			if ctx.Err() != nil {
				// The command may still land; its key is in the stream
				// then, and the audit finds it as an unacknowledged event.
				return
			}
			reason := "timeout"
			if we != nil {
				reason = fmt.Sprintf("%d %s", we.Code, we.Description)
			} else if !errors.Is(err, context.DeadlineExceeded) {
				reason = err.Error()
			}
			l.mu.Lock()
			l.failures[reason]++
			l.mu.Unlock()
			t := time.NewTimer(20 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

func (l *hotLoad) snapshot() (answers []time.Time, acks []ack, failures map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	answers = slices.Clone(l.answers)
	slices.SortFunc(answers, func(a, b time.Time) int { return a.Compare(b) })
	return answers, slices.Clone(l.acks), copyCounts(l.failures)
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// count returns how many answers came in [from, to).
func countIn(answers []time.Time, from, to time.Time) int {
	i, _ := slices.BinarySearchFunc(answers, from, func(a, b time.Time) int { return a.Compare(b) })
	j, _ := slices.BinarySearchFunc(answers, to, func(a, b time.Time) int { return a.Compare(b) })
	return j - i
}

// lookupProbe asks for a consent's status without min_seq, again and
// again, and records the longest time without an answer.
type lookupProbe struct {
	mu       sync.Mutex
	last     time.Time
	longest  time.Duration
	answered int
	failed   map[string]int
}

func (p *lookupProbe) run(ctx context.Context, client *client.Client, key events.Key) {
	p.mu.Lock()
	p.last, p.failed = time.Now(), map[string]int{}
	p.mu.Unlock()
	for ctx.Err() == nil {
		callCtx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		_, err := client.Status(callCtx, wire.StatusQuery{SubjectID: key.SubjectID, Purpose: key.Purpose})
		cancel()
		now := time.Now()
		p.mu.Lock()
		if err == nil {
			p.longest = max(p.longest, now.Sub(p.last))
			p.last = now
			p.answered++
		} else if ctx.Err() == nil {
			p.failed[err.Error()]++
		}
		p.mu.Unlock()
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// TestClusterFailoverAfterSIGKILLOfTheStreamLeader is the nemesis
// in small: a three-node cluster of nats-server processes (fsync always),
// two consentd, 16 writers granting and revoking 8 hot consents, and the
// stream leader killed with SIGKILL, then restarted. It measures the time
// from the kill to JetStream's new stream leader, from the new leader to
// the first answered write and to writes at full rate again, the longest
// wait for a lookup without min_seq, and when each index applies the
// first event stored under the new leader; then checks that every
// acknowledged write is in the stream once, every chain intact, both
// indexes equal to a fresh fold.
func TestClusterFailoverAfterSIGKILLOfTheStreamLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a nats-server process and waits for a Raft election (about 10s)")
	}
	c := startProcessCluster(t)
	instances := []*Main{runOnProcessCluster(t, c, t.TempDir()), runOnProcessCluster(t, c, t.TempDir())}
	admin := c.connect(0, "admin")
	js, _ := ledgerStream(t, admin)
	leader := c.streamLeader(admin, wire.DefaultStream)
	survivor := (leader + 1) % 3
	watch := c.connect(survivor, "watch")
	elected := leaderElected(t, watch, wire.DefaultStream)

	load := newHotLoad(8)
	var clients []*client.Client
	for w := range 4 {
		clients = append(clients, client.NewClient(c.connect(w%3, fmt.Sprintf("writer-%d", w)), client.ClientOptions{}))
	}
	stopLoad := load.start(t.Context(), 16, clients)
	defer stopLoad()
	probe := &lookupProbe{}
	probeCtx, stopProbe := context.WithCancel(t.Context())
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		probe.run(probeCtx, client.NewClient(c.connect(survivor, "lookups"), client.ClientOptions{}), load.consents[0])
	}()
	defer func() {
		stopProbe()
		<-probeDone
	}()

	// Pre-kill rate over 2s of steady load.
	require.Eventually(t, func() bool { a, _, _ := load.snapshot(); return len(a) >= 50 }, 30*time.Second, 10*time.Millisecond)
	steadyFrom := time.Now()
	require.Eventually(t, func() bool { return time.Since(steadyFrom) >= 2*time.Second }, 5*time.Second, 10*time.Millisecond)
	killedAt := time.Now()
	answers, acks, _ := load.snapshot()
	preRate := float64(countIn(answers, steadyFrom, killedAt)) / killedAt.Sub(steadyFrom).Seconds()
	acksAtKill := len(acks)
	c.Kill(leader)

	var newLeader electedLeader
	select {
	case newLeader = <-elected:
	case <-time.After(30 * time.Second):
		t.Fatal("no new stream leader 30s after the kill")
	}
	require.NotEqual(t, c.names[leader], newLeader.name)
	// Each index's checkpoint, sampled until the end of the load.
	type sample struct {
		at  time.Time
		seq uint64
	}
	samples := make([][]sample, len(instances))
	sampleCtx, stopSampling := context.WithCancel(t.Context())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for sampleCtx.Err() == nil {
			for i, in := range instances {
				if cp := in.index.Checkpoint(); len(samples[i]) == 0 || samples[i][len(samples[i])-1].seq != cp {
					samples[i] = append(samples[i], sample{time.Now(), cp})
				}
			}
			select {
			case <-sampleCtx.Done():
			case <-tick.C:
			}
		}
	}()
	defer func() {
		stopSampling()
		<-sampled
	}()

	// Let the load run 4s under the new leader, then restart the killed node.
	require.Eventually(t, func() bool { return time.Since(newLeader.at) >= 4*time.Second }, 10*time.Second, 10*time.Millisecond)
	c.Start(leader)
	restartedAt := time.Now()
	require.Eventually(t, func() bool { a, _, _ := load.snapshot(); return countIn(a, restartedAt, time.Now()) >= 50 }, 30*time.Second, 10*time.Millisecond)
	stopLoad()
	stopProbe()
	<-probeDone
	stopSampling()
	<-sampled
	for _, in := range instances {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		require.NoError(t, in.service.Stop(ctx))
		cancel()
	}

	answers, acks, failures := load.snapshot()
	var firstAnswer time.Time
	answeredBetween := countIn(answers, killedAt, newLeader.at)
	if i, _ := slices.BinarySearchFunc(answers, newLeader.at, func(a, b time.Time) int { return a.Compare(b) }); i < len(answers) {
		firstAnswer = answers[i]
	}
	require.False(t, firstAnswer.IsZero(), "no write answered after the new leader")
	// Full rate: the end of the first 250ms window after the new leader
	// with at least 80% of the rate the cluster sustains: the pre-kill
	// rate, or, when lower, the rate of the last second before the
	// restart, with one node of three down: on this 2-core machine a
	// cluster missing a node sustained 0.45 to 0.64 of its healthy rate,
	// with or without the failover's own work, so that rate is the full
	// rate it can come back to.
	const window = 250 * time.Millisecond
	postRate := float64(countIn(answers, restartedAt.Add(-time.Second), restartedAt))
	want := int(0.8 * min(preRate, postRate) * window.Seconds())
	var fullRate time.Time
	for from := newLeader.at; from.Before(restartedAt); from = from.Add(10 * time.Millisecond) {
		if countIn(answers, from, from.Add(window)) >= want {
			fullRate = from.Add(window)
			break
		}
	}
	toElection := newLeader.at.Sub(killedAt)
	toFirst := firstAnswer.Sub(newLeader.at)
	toFull := fullRate.Sub(newLeader.at)
	// The first event stored under the new leader, and when each index
	// applied it.
	var first ack
	for _, a := range acks {
		if !a.duplicate && a.at.After(newLeader.at) && (first.seq == 0 || a.seq < first.seq) {
			first = a
		}
	}
	require.NotZero(t, first.seq, "nothing stored under the new leader")
	indexed := make([]time.Time, len(instances))
	for i := range instances {
		for _, s := range samples[i] {
			if s.seq >= first.seq {
				indexed[i] = s.at
				break
			}
		}
		require.False(t, indexed[i].IsZero(), "index %d never applied seq %d; its checkpoints: %v; projector: %+v", i, first.seq, samples[i], instances[i].projector.Health())
	}
	t.Logf("killed %s (stream leader) with SIGKILL at %d acks; JetStream elected %s %s later", c.names[leader], acksAtKill, newLeader.name, toElection.Round(time.Millisecond))
	t.Logf("writes: %.0f answered/s before the kill, %.0f/s in the last second before the restart; %d answered between the kill and the new leader; first answered %s after the new leader; full rate (>= %d answers in %s) %s after it",
		preRate, postRate, answeredBetween, toFirst.Round(time.Millisecond), want, window, toFull.Round(time.Millisecond))
	for i, at := range indexed {
		t.Logf("index %d applied the first event stored under the new leader (seq %d) %s after the new leader, %s after its reply",
			i, first.seq, at.Sub(newLeader.at).Round(time.Millisecond), at.Sub(first.at).Round(time.Millisecond))
	}
	t.Logf("lookups without min_seq: %d answered, longest wait between two answers %s, failed: %v", probe.answered, probe.longest.Round(time.Millisecond), probe.failed)
	t.Logf("%d stored, %d answered in all; failed attempts: %v", len(acks), len(answers), failures)

	// The bounds, doubled for a noisy 2-core CI machine.
	assert.Less(t, toFirst, 2*1500*time.Millisecond, "first answered write after the new leader")
	assert.False(t, fullRate.IsZero(), "writes never came back to full rate before the restart")
	assert.Less(t, toFull, 2*3*time.Second, "full rate after the new leader")
	for i, at := range indexed {
		assert.Less(t, at.Sub(first.at), 2*time.Second, "index %d: consumer resumed late", i)
	}
	assert.Less(t, probe.longest, time.Second, "lookups without min_seq stopped")

	audit := auditStream(t, js)
	audit.assertAcknowledged(t, acks)
	for i, in := range instances {
		audit.assertIndexMatches(t, fmt.Sprintf("consentd %d", i), in.index)
	}
}

// TestConsentdStartsWhileTheStreamHasNoLeader: consentd restarted on its
// data directory while two of the three nodes are dead (SIGKILL), so the
// stream has no leader. With an index that holds everything the surviving
// replica holds, it serves lookups at once, with the right state, and
// takes commands as soon as the stream has a leader again. With an index
// behind the stream (a write made through another instance while it was
// down) it serves no lookup until it has caught up, which needs the
// leader.
func TestConsentdStartsWhileTheStreamHasNoLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("kills two nats-server processes and waits for Raft elections")
	}
	c := startProcessCluster(t)
	dataDir := t.TempDir()
	first := runOnProcessCluster(t, c, dataDir)
	cli := client.NewClient(c.connect(0, "writer"), client.ClientOptions{Timeout: time.Second})
	cmd := events.Command{SubjectID: "restart@example.com", Purpose: "newsletter", Actor: "test"}
	key := wire.StatusQuery{SubjectID: cmd.SubjectID, Purpose: cmd.Purpose}
	_, err := cli.Grant(t.Context(), cmd)
	require.NoError(t, err)
	revoked, err := cli.Revoke(t.Context(), cmd)
	require.NoError(t, err)
	waitIndex(t, first.index, revoked.Seq)
	require.NoError(t, first.Close())

	// Round 1: the index is current. Kill the leader and another node.
	admin := c.connect(0, "admin")
	kept := killQuorum(t, c, admin)
	watch := c.connect(kept, "watch")
	keptConn := c.connect(kept, "writer-kept")
	cli = client.NewClient(keptConn, client.ClientOptions{Timeout: time.Second})

	// A replica answers direct gets once nats-server finds it current,
	// on a 2s tick from the stream's creation (seconds ago here) or the
	// node's start: lookups are measured from then.
	begun := time.Now()
	replicaAnswers := make(chan time.Time, 1)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if r, _ := probeIndex(t.Context(), watch, wire.DefaultStream, revoked.Seq); r == probeCurrent {
				replicaAnswers <- time.Now()
				return
			}
			select {
			case <-tick.C:
			case <-t.Context().Done():
				return
			}
		}
	}()
	m, _ := startNoLeader(t, c, dataDir)
	var st events.Status
	require.Eventually(t, func() bool {
		st, err = cli.Status(t.Context(), key)
		return err == nil
	}, 10*time.Second, time.Millisecond, "lookups are served from the index")
	servedAt := time.Now()
	require.NoError(t, <-m.started, "consentd starts while the stream has no leader")
	var answeredAt time.Time
	select {
	case answeredAt = <-replicaAnswers:
	case <-time.After(10 * time.Second):
		t.Fatal("the surviving replica answers no direct get")
	}
	assert.Equal(t, events.StateRevoked, st.State)
	assert.Equal(t, revoked.Seq, st.IndexSeq)
	_, err = cli.Check(t.Context(), key)
	require.ErrorIs(t, err, wire.ErrConsentRequired, "a revoked consent is not allowed")
	cmd.IdempotencyKey = "after-restart"
	_, err = cli.Grant(t.Context(), cmd)
	require.ErrorIs(t, err, nats.ErrNoResponders, "no commands without a leader")
	waitCtx, cancel := context.WithTimeout(t.Context(), 2*ledger.DefaultMinSeqTimeout)
	defer cancel()
	_, err = cli.Status(waitCtx, wire.StatusQuery{SubjectID: cmd.SubjectID, Purpose: cmd.Purpose, MinSeq: revoked.Seq + 1})
	require.ErrorIs(t, err, wire.ErrUnavailable, "a min_seq beyond the index is not answered without a leader")

	newLeader := restartAll(t, c, watch)
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(m.service.Info().Endpoints, func(e micro.EndpointInfo) bool { return e.Subject == wire.SubjectGrant })
	}, 30*time.Second, time.Millisecond, "commands not served")
	commandsServed := time.Since(newLeader.at)
	// A command's reply carries its status, judged once the index has
	// applied it (waiting up to --min-seq-timeout, 2s): the client waits
	// longer, so that a stored write is answered rather than retried.
	slowClient := client.NewClient(keptConn, client.ClientOptions{Timeout: 2 * ledger.DefaultMinSeqTimeout})
	granted := writeUntilAnswered(t, slowClient, cmd)
	firstWrite := time.Since(newLeader.at)
	assert.Equal(t, revoked.Seq+1, granted.Seq)
	t.Logf("current index, no leader: lookups served %s after start, %s after the surviving replica first answered a direct get (%s after start); commands served %s and the first write answered %s after the stream's new leader",
		servedAt.Sub(begun).Round(time.Millisecond), servedAt.Sub(answeredAt).Round(time.Millisecond),
		answeredAt.Sub(begun).Round(time.Millisecond), commandsServed.Round(time.Millisecond), firstWrite.Round(time.Millisecond))
	assert.Less(t, servedAt.Sub(answeredAt), time.Second, "lookups served after the replica answers")
	assert.Less(t, commandsServed, 1500*time.Millisecond, "commands served after the new leader")
	// The first write also needs the index to apply it, through the
	// projector's consumer, which JetStream creates only once it has a
	// meta leader again, at times seconds after the stream's leader.
	assert.Less(t, firstWrite, 3*ledger.DefaultMinSeqTimeout, "first write after the new leader")
	waitIndex(t, m.Main.index, granted.Seq)
	require.NoError(t, m.Main.Close())

	// Round 2: the index is behind. Another instance revokes while this
	// one is down; then the quorum is lost again.
	other := runOnProcessCluster(t, c, t.TempDir())
	cmd.IdempotencyKey = ""
	revokedAgain, err := cli.Revoke(t.Context(), cmd)
	require.NoError(t, err)
	waitStreamCurrent(t, admin, revokedAgain.Seq)
	require.NoError(t, other.Close())
	kept = killQuorum(t, c, admin)
	watch = c.connect(kept, "watch-2")
	cli = client.NewClient(c.connect(kept, "writer-kept-2"), client.ClientOptions{Timeout: time.Second})

	m, logs := startNoLeader(t, c, dataDir)
	require.Eventually(t, func() bool { return logs.count("the index is behind the stream") == 1 }, 30*time.Second, 5*time.Millisecond)
	_, err = cli.Status(t.Context(), key)
	require.ErrorIs(t, err, nats.ErrNoResponders, "an index behind the stream serves no lookup")
	select {
	case err := <-m.started:
		t.Fatalf("consentd started with an index behind the stream and no leader: %v", err)
	default:
	}
	// Start-up given up while there is no leader: Run returns ctx's
	// error, and Close stops what it started (the look for the stream,
	// the probe, the service) without waiting for a leader.
	stopped, stoppedLogs := NewMain(), &logCapture{}
	stopped.Environ = func() []string { return nil }
	stopped.Stdout, stopped.Stderr = io.Discard, io.MultiWriter(testWriter{t}, stoppedLogs)
	require.NoError(t, stopped.ParseFlags([]string{"--nats-url", c.URLs(), "--replicas", "3", "--data-dir", t.TempDir(), "--log-level", "warn"}))
	runCtx, cancelRun := context.WithCancel(t.Context())
	runErr := make(chan error, 1)
	go func() { runErr <- stopped.Run(runCtx) }()
	require.Eventually(t, func() bool { return stoppedLogs.count("stream not ready yet; retrying") > 0 }, 10*time.Second, time.Millisecond)
	cancelRun()
	require.ErrorIs(t, <-runErr, context.Canceled)
	closing := time.Now()
	require.NoError(t, stopped.Close())
	assert.Less(t, time.Since(closing), 2*time.Second, "Close does not wait for a leader")

	newLeader = restartAll(t, c, watch)
	require.NoError(t, <-m.started)
	caughtUp := time.Since(newLeader.at)
	st, err = cli.Status(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, events.StateRevoked, st.State, "the state the stream holds, not the index's older one")
	assert.GreaterOrEqual(t, st.IndexSeq, revokedAgain.Seq)
	t.Logf("index behind: lookups and commands served %s after the stream's new leader", caughtUp.Round(time.Millisecond))
}

// noLeaderStart is a consentd started in the background: started gets
// Run's result.
type noLeaderStart struct {
	*Main
	started chan error
}

// startNoLeader runs consentd on dataDir in the background, logging at
// info level into the returned capture; it is closed at the end of the
// test.
func startNoLeader(t *testing.T, c *processCluster, dataDir string) (*noLeaderStart, *logCapture) {
	t.Helper()
	logs := &logCapture{}
	m := &noLeaderStart{Main: NewMain(), started: make(chan error, 1)}
	m.Environ = func() []string { return nil }
	m.Stdout, m.Stderr = io.Discard, io.MultiWriter(testWriter{t}, logs)
	require.NoError(t, m.ParseFlags([]string{"--nats-url", c.URLs(), "--replicas", "3", "--data-dir", dataDir, "--log-level", "info"}))
	t.Cleanup(func() { _ = m.Close() })
	go func() { m.started <- m.Run(t.Context()) }()
	return m, logs
}

// killQuorum waits until every replica of the stream is current, then
// kills its leader and one other node, and returns the node left.
func killQuorum(t *testing.T, c *processCluster, admin *nats.Conn) int {
	t.Helper()
	waitStreamCurrent(t, admin, 0)
	leader := c.streamLeader(admin, wire.DefaultStream)
	kept := (leader + 1) % 3
	for i := range 3 {
		if i != kept {
			c.Kill(i)
		}
	}
	return kept
}

// waitStreamCurrent waits until the stream holds lastSeq (when not 0) and
// every replica is current with its leader.
func waitStreamCurrent(t *testing.T, nc *nats.Conn, lastSeq uint64) {
	t.Helper()
	_, s := ledgerStream(t, nc)
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil || len(info.Cluster.Replicas) != 2 || info.State.LastSeq < lastSeq {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Lag > 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "replicas not current")
}

// restartAll starts the dead nodes again and waits for the stream's new
// leader (the LEADER_ELECTED advisory, through watch).
func restartAll(t *testing.T, c *processCluster, watch *nats.Conn) electedLeader {
	t.Helper()
	elected := leaderElected(t, watch, wire.DefaultStream)
	for i := range 3 {
		if c.procs[i] == nil {
			c.Start(i)
		}
	}
	select {
	case l := <-elected:
		t.Logf("stream leader %s elected at %s", l.name, l.at.UTC().Format("15:04:05.000"))
		return l
	case <-time.After(30 * time.Second):
		t.Fatal("no stream leader 30s after the nodes came back")
	}
	return electedLeader{}
}

// writeUntilAnswered sends cmd as a grant (with its idempotency key, so a
// retry lands once) until it is answered.
func writeUntilAnswered(t *testing.T, client *client.Client, cmd events.Command) wire.Reply {
	t.Helper()
	var reply wire.Reply
	require.Eventually(t, func() bool {
		var err error
		reply, err = client.Grant(t.Context(), cmd)
		return err == nil
	}, 30*time.Second, 5*time.Millisecond, "no write answered")
	return reply
}

// TestClusterSIGKILLOfAConsentd kills one of two consentd (a child
// process) with SIGKILL under the hot load. The NATS server drops its
// queue subscriptions with its connection, so new requests go to the
// other instance at once; the commands it had in flight are answered on
// their caller's retry (after the caller's timeout, 2s here). It measures
// the longest pause in answers and when writes are back at full rate, and
// checks that every acknowledged write is in the stream once.
func TestClusterSIGKILLOfAConsentd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node cluster of nats-server processes")
	}
	c := startProcessCluster(t)
	kept := runOnProcessCluster(t, c, t.TempDir())
	killed := startChildProcess(t, "CONSENTD_NATS_URL="+c.URLs(), "CONSENTD_REPLICAS=3", "CONSENTD_DATA_DIR="+t.TempDir())
	admin := c.connect(0, "admin")
	js, _ := ledgerStream(t, admin)

	load := newHotLoad(8)
	var clients []*client.Client
	for w := range 4 {
		clients = append(clients, client.NewClient(c.connect(w%3, fmt.Sprintf("writer-%d", w)), client.ClientOptions{}))
	}
	stopLoad := load.start(t.Context(), 16, clients)
	defer stopLoad()
	require.Eventually(t, func() bool { a, _, _ := load.snapshot(); return len(a) >= 50 }, 30*time.Second, 10*time.Millisecond)
	steadyFrom := time.Now()
	require.Eventually(t, func() bool { return time.Since(steadyFrom) >= 2*time.Second }, 5*time.Second, 10*time.Millisecond)
	killedAt := time.Now()
	killed.kill()
	require.Eventually(t, func() bool { return time.Since(killedAt) >= 4*time.Second }, 10*time.Second, 10*time.Millisecond)
	stopLoad()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	require.NoError(t, kept.service.Stop(ctx))
	cancel()

	answers, acks, failures := load.snapshot()
	preRate := float64(countIn(answers, steadyFrom, killedAt)) / killedAt.Sub(steadyFrom).Seconds()
	const window = 250 * time.Millisecond
	want := int(0.8 * preRate * window.Seconds())
	var fullRate time.Time
	for from := killedAt; from.Before(killedAt.Add(4 * time.Second)); from = from.Add(10 * time.Millisecond) {
		if countIn(answers, from, from.Add(window)) >= want {
			fullRate = from.Add(window)
			break
		}
	}
	var longest time.Duration
	for i := 1; i < len(answers); i++ {
		if answers[i].After(killedAt) {
			longest = max(longest, answers[i].Sub(answers[i-1]))
		}
	}
	var slowestAfter time.Duration
	for _, a := range acks {
		if a.at.After(killedAt) {
			slowestAfter = max(slowestAfter, a.at.Sub(a.firstSent))
		}
	}
	t.Logf("writes: %.0f answered/s before the kill; longest pause between two answers after it %s; full rate (>= %d in %s) %s after it; slowest stored command %s; failed attempts: %v",
		preRate, longest.Round(time.Millisecond), want, window, fullRate.Sub(killedAt).Round(time.Millisecond), slowestAfter.Round(time.Millisecond), failures)
	assert.False(t, fullRate.IsZero(), "writes never came back to full rate")
	assert.Less(t, longest, time.Second, "writes stopped")

	audit := auditStream(t, js)
	audit.assertAcknowledged(t, acks)
	audit.assertIndexMatches(t, "the consentd kept", kept.index)
}
