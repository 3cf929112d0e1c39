package ledger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logBuffer collects log output; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the lines that contain every one of substrs.
func (l *logBuffer) lines(substrs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for line := range strings.Lines(l.b.String()) {
		all := true
		for _, s := range substrs {
			all = all && strings.Contains(line, s)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// guardedEnv is a ledger with a running StreamGuard behind a consent
// service, and a separate JetStream client (admin) that changes the
// stream through the JetStream API, as the issue did.
type guardedEnv struct {
	ledger *ledger.Ledger
	guard  *ledger.StreamGuard
	client *client.Client
	nc     *nats.Conn // the client's
	admin  jetstream.JetStream
	logs   *logBuffer
}

// startGuarded starts a server, the stream, a guard checking every
// interval (and on advisories), a ledger and a service; it returns once
// the guard has made its first check.
func startGuarded(t *testing.T, interval time.Duration) *guardedEnv {
	t.Helper()
	s, _, js := natstest.Run(t)
	stream, err := ledger.EnsureStream(t.Context(), js, ledger.StreamOptions{})
	require.NoError(t, err)
	logs := &logBuffer{}
	guard := ledger.NewStreamGuard(js, ledger.StreamGuardOptions{Interval: interval, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ledger.RunGuard(t, guard)

	l := ledger.New(js, stream, ledger.Options{Guard: guard})
	svc, err := ledger.NewService(natstest.Connect(t, s), l, newFakeReader(0), ledger.ServiceConfig{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Stop(context.Background()) })
	nc := natstest.Connect(t, s)
	return &guardedEnv{
		ledger: l, guard: guard, logs: logs, nc: nc,
		client: client.NewClient(nc, client.ClientOptions{}),
		admin:  natstest.JetStream(t, natstest.Connect(t, s)),
	}
}

// update changes the running stream's configuration through the
// JetStream API.
func (e *guardedEnv) update(t *testing.T, change func(*jetstream.StreamConfig)) {
	t.Helper()
	stream, err := e.admin.Stream(t.Context(), wire.DefaultStream)
	require.NoError(t, err)
	cfg := stream.CachedInfo().Config
	change(&cfg)
	_, err = e.admin.UpdateStream(t.Context(), cfg)
	require.NoError(t, err)
}

func (e *guardedEnv) waitRefused(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return errors.Is(e.guard.Err(), ledger.ErrUnsafeStream) }, 10*time.Second, 2*time.Millisecond, "the guard did not notice")
}

func (e *guardedEnv) waitAllowed(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return e.guard.Err() == nil }, 10*time.Second, 2*time.Millisecond, "writes did not resume")
}

// requireRefused checks that a grant through the service gets 503 with a
// description naming want (the setting and its value).
func (e *guardedEnv) requireRefused(t *testing.T, want string) {
	t.Helper()
	_, err := e.client.Grant(t.Context(), events.Command{SubjectID: "carol", Purpose: "newsletter"})
	require.ErrorIs(t, err, wire.ErrUnavailable)
	we, ok := errors.AsType[*wire.Error](err)
	require.True(t, ok)
	assert.Contains(t, we.Description, "stream CONSENT is unsafe for the audit trail: ")
	assert.Contains(t, we.Description, want)
	assert.Contains(t, we.Description, "writes are refused until an operator restores it")
}

// streamData returns the "stream" object of every endpoint's data in
// $SRV.STATS, as `nats micro info consent` shows it, by subject.
func (e *guardedEnv) streamData(t *testing.T) map[string]map[string]any {
	t.Helper()
	msg, err := e.nc.Request("$SRV.STATS."+wire.ServiceName, nil, 5*time.Second)
	require.NoError(t, err)
	var stats micro.Stats
	require.NoError(t, json.Unmarshal(msg.Data, &stats))
	out := map[string]map[string]any{}
	for _, ep := range stats.Endpoints {
		var d struct {
			Stream map[string]any `json:"stream"`
		}
		require.NoError(t, json.Unmarshal(ep.Data, &d), ep.Subject)
		out[ep.Subject] = d.Stream
	}
	return out
}

// requireHealth checks that every endpoint's data shows the stream as
// safe or not, with a problem naming want when not.
func (e *guardedEnv) requireHealth(t *testing.T, safe bool, want string) {
	t.Helper()
	data := e.streamData(t)
	require.Contains(t, data, wire.SubjectGrant)
	for subj, h := range data {
		require.NotNil(t, h, subj)
		assert.Equal(t, "CONSENT", h["name"], subj)
		assert.Equal(t, safe, h["safe"], subj)
		if safe {
			assert.NotContains(t, h, "problems", subj)
			assert.NotContains(t, h, "writes_refused", subj)
			continue
		}
		require.Contains(t, h, "problems", subj)
		problems, _ := json.Marshal(h["problems"])
		assert.Contains(t, string(problems), want, subj)
		assert.Contains(t, h["writes_refused"], want, subj)
	}
}

func TestStreamGuardRefusesWritesWhileEventsCanBeDropped(t *testing.T) {
	// A check interval of an hour: only the advisory can tell the guard.
	e := startGuarded(t, time.Hour)
	ctx := t.Context()
	const setting = "max_msgs_per_subject is 1"

	for _, kind := range []events.Kind{events.KindRequest, events.KindGrant, events.KindRevoke, events.KindGrant} {
		_, err := e.ledger.Append(ctx, kind, events.Command{SubjectID: "alice", Purpose: "newsletter"})
		require.NoError(t, err)
	}
	e.requireHealth(t, true, "")

	// deny_delete does not stop this update, and it deletes every event
	// of alice's consent but the last.
	e.update(t, func(c *jetstream.StreamConfig) {
		c.MaxMsgsPerSubject = 1
		c.Discard = jetstream.DiscardOld
	})
	e.waitRefused(t)

	e.requireRefused(t, setting)
	_, err := e.client.SetPurpose(ctx, events.PurposeCommand{Purpose: "newsletter", PolicyVersion: 2})
	require.ErrorIs(t, err, wire.ErrUnavailable)
	assert.Contains(t, err.Error(), setting)
	expired := time.Now().Add(-time.Minute)
	_, err = e.ledger.Expire(ctx, events.Consent{Tenant: events.DefaultTenant, SubjectID: "alice", Purpose: "newsletter",
		State: events.StateGranted, PolicyVersion: 1, ExpiresAt: &expired, Seq: 4, EventID: "e4"})
	require.ErrorIs(t, err, ledger.ErrUnsafeStream)
	assert.Contains(t, err.Error(), setting)
	// An expirer does not even ask its source what is due (it has none here).
	_, err = ledger.NewExpirer(e.ledger, nil, ledger.ExpirerOptions{}).Sweep(ctx)
	require.ErrorIs(t, err, ledger.ErrUnsafeStream)
	stream, err := e.admin.Stream(ctx, wire.DefaultStream)
	require.NoError(t, err)
	state := stream.CachedInfo().State
	assert.Equal(t, uint64(4), state.LastSeq, "nothing was appended while writes were refused")
	assert.Equal(t, uint64(1), state.Msgs, "the update deleted alice's first three events")

	// Lookups still answer from the index; the health says why writes do not.
	_, err = e.client.Status(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	e.requireHealth(t, false, setting)

	// One loud line per change, not one per check.
	require.NoError(t, e.guard.Check(ctx))
	require.NoError(t, e.guard.Check(ctx))
	lines := e.logs.lines("level=ERROR", setting)
	require.Len(t, lines, 1, "%q", lines)
	assert.Contains(t, lines[0], "writes are refused until an operator restores it")

	// Restored: writes resume, and the log says so.
	e.update(t, func(c *jetstream.StreamConfig) {
		c.MaxMsgsPerSubject = -1
		c.Discard = jetstream.DiscardNew
	})
	e.waitAllowed(t)
	_, err = e.client.Grant(ctx, events.Command{SubjectID: "carol", Purpose: "newsletter"})
	require.NoError(t, err)
	e.requireHealth(t, true, "")
	assert.Len(t, e.logs.lines("writes resume"), 1)
}

func TestStreamGuardRefusesWritesToASealedStream(t *testing.T) {
	e := startGuarded(t, time.Hour)
	_, err := e.client.Grant(t.Context(), events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)

	e.update(t, func(c *jetstream.StreamConfig) { c.Sealed = true })
	e.waitRefused(t)

	// Before the guard, JetStream's own refusal was a 500 on every write.
	const setting = "sealed is true"
	e.requireRefused(t, setting)
	e.requireHealth(t, false, setting)
	assert.Len(t, e.logs.lines("level=ERROR", setting), 1)
}

func TestStreamGuardRefusesWritesOnceTheStreamIsDeleted(t *testing.T) {
	e := startGuarded(t, time.Hour)
	ctx := t.Context()
	_, err := e.client.Grant(ctx, events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)

	require.NoError(t, e.admin.DeleteStream(ctx, wire.DefaultStream))
	e.waitRefused(t)

	const problem = "does not exist (it was deleted)"
	e.requireRefused(t, problem)
	e.requireHealth(t, false, problem)
	assert.Len(t, e.logs.lines("level=ERROR", problem), 1)

	// Created again, empty, with a safe configuration: it is not the
	// stream the ledger wrote alice's grant to, so writes stay refused
	// (the created advisory tells the guard at once).
	_, err = ledger.EnsureStream(ctx, e.admin, ledger.StreamOptions{})
	require.NoError(t, err)
	const replaced = "was replaced (created at "
	require.Eventually(t, func() bool {
		err := e.guard.Err()
		return err != nil && strings.Contains(err.Error(), replaced)
	}, 10*time.Second, 2*time.Millisecond)
	e.requireRefused(t, replaced)
	assert.Len(t, e.logs.lines("level=ERROR", replaced), 1)
}

// TestStreamGuardKeepsItsVerdictWhenItCannotCheck: a check that gets no
// answer neither refuses writes nor lets them resume.
func TestStreamGuardKeepsItsVerdictWhenItCannotCheck(t *testing.T) {
	s, _, js := natstest.Run(t)
	ctx := t.Context()
	_, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	require.NoError(t, err)
	guardConn := natstest.Connect(t, s)
	logs := &logBuffer{}
	guard := ledger.NewStreamGuard(natstest.JetStream(t, guardConn), ledger.StreamGuardOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, guard.Check(ctx))

	guardConn.Close()
	require.Error(t, guard.Check(ctx))
	require.Error(t, guard.Check(ctx))
	require.NoError(t, guard.Err(), "a check without an answer must not refuse writes")
	h := guard.Health()
	assert.True(t, h.Safe)
	assert.NotEmpty(t, h.CheckError)
	assert.Len(t, logs.lines("level=WARN", "cannot check the stream; writes go on"), 1, "logged once per run of failures")

	// Unsafe, then unreachable: writes stay refused.
	cfg := ledger.StreamOptions{}.Config()
	cfg.MaxAge = time.Hour
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
	guardConn = natstest.Connect(t, s)
	guard = ledger.NewStreamGuard(natstest.JetStream(t, guardConn), ledger.StreamGuardOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, guard.Check(ctx))
	require.ErrorIs(t, guard.Err(), ledger.ErrUnsafeStream)
	guardConn.Close()
	require.Error(t, guard.Check(ctx))
	require.ErrorIs(t, guard.Err(), ledger.ErrUnsafeStream)
	assert.Contains(t, guard.Err().Error(), "max_age is 1h0m0s")
	assert.Len(t, logs.lines("level=WARN", "cannot check the stream; writes stay refused"), 1)
}

func TestWireErrorOfRefusedWritesIs503(t *testing.T) {
	err := &ledger.WritesRefusedError{Stream: "CONSENT", Problems: []string{"is sealed (sealed is true): no event can be appended"}}
	we := ledger.WireError(err)
	assert.Equal(t, 503, we.Code)
	assert.Equal(t, "stream CONSENT is unsafe for the audit trail: is sealed (sealed is true): no event can be appended; writes are refused until an operator restores it", we.Description)
}

// TestStreamGuardOnACluster: on a three-node cluster the advisories reach
// a guard connected to another node than the client that changes the
// stream (its check interval of an hour leaves them the only way to know).
func TestStreamGuardOnACluster(t *testing.T) {
	c := natstest.RunCluster(t, 3)
	ctx := t.Context()
	guardJS := natstest.JetStream(t, natstest.Connect(t, c.Node(0)))
	_, err := ledger.EnsureStream(ctx, guardJS, ledger.StreamOptions{Replicas: 3})
	require.NoError(t, err)
	guard := ledger.NewStreamGuard(guardJS, ledger.StreamGuardOptions{Interval: time.Hour, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	ledger.RunGuard(t, guard)
	require.NoError(t, guard.Err())

	admin := natstest.JetStream(t, natstest.Connect(t, c.Node(2)))
	cfg := ledger.StreamOptions{Replicas: 3}.Config()
	cfg.MaxMsgsPerSubject, cfg.Discard = 1, jetstream.DiscardOld
	_, err = admin.UpdateStream(ctx, cfg)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return errors.Is(guard.Err(), ledger.ErrUnsafeStream) }, 10*time.Second, 2*time.Millisecond)
	assert.Contains(t, guard.Err().Error(), "max_msgs_per_subject is 1")

	require.NoError(t, admin.DeleteStream(ctx, wire.DefaultStream))
	require.Eventually(t, func() bool {
		err := guard.Err()
		return err != nil && strings.Contains(err.Error(), "does not exist")
	}, 10*time.Second, 2*time.Millisecond)
}
