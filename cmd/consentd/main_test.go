package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/projector"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary stand in for consentd in a child process
// (BE_CONSENTD=1), configured through its CONSENTD_ variables.
func TestMain(m *testing.M) {
	if os.Getenv("BE_CONSENTD") == "1" {
		os.Args = []string{"consentd"}
		main()
		os.Exit(0)
	}
	code := m.Run()
	if natsServerBin != "" {
		_ = os.RemoveAll(filepath.Dir(natsServerBin)) // built by natsServerBinary
	}
	os.Exit(code)
}

// startConsentd runs the whole daemon in-process on dataDir, with an
// embedded server on a free port, closed at the end of the test.
func startConsentd(t *testing.T, dataDir string) *Main {
	t.Helper()
	m := NewMain()
	m.Config.Listen = "127.0.0.1:-1"
	m.Config.DataDir = dataDir
	m.Config.LogLevel = "warn"
	var stdout bytes.Buffer
	m.Stdout, m.Stderr = &stdout, testWriter{t}
	err := m.Run(t.Context())
	if err != nil {
		_ = m.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })

	assert.Regexp(t, `^consentd: listening on nats://127\.0\.0\.1:\d+ \(pid `+strconv.Itoa(os.Getpid())+`, embedded NATS with JetStream, sync always\), data in `+regexp.QuoteMeta(dataDir)+`, admin credentials in `+regexp.QuoteMeta(filepath.Join(dataDir, AdminCredsFile))+"\n$", stdout.String())
	return m
}

// testWriter sends the daemon's logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// connectClient connects to consentd over TCP, as an outside service does,
// with opts (adminOptions: the administrator's credentials).
func connectClient(t *testing.T, url string, opts ...nats.Option) *client.Client {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return client.NewClient(nc, client.ClientOptions{ServiceFeed: true})
}

func TestConsentdEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	m := startConsentd(t, dataDir)
	client := connectClient(t, m.ClientURL(), adminOptions(t, m.Config.DataDir)...)
	ctx := t.Context()
	const alice = "alice@example.com"
	marketing := wire.StatusQuery{SubjectID: alice, Purpose: "marketing_email"}

	// Nothing recorded yet.
	st, err := client.Status(ctx, marketing)
	require.NoError(t, err)
	assert.Equal(t, events.StateNone, st.State)
	assert.False(t, st.Allowed)
	_, err = client.Check(ctx, marketing)
	require.ErrorIs(t, err, wire.ErrConsentRequired)

	// request, then grant with the expected sequence.
	requested, err := client.Request(ctx, events.Command{SubjectID: alice, Purpose: "marketing_email",
		Description: "Offers by email, about once a month", Actor: "signup-form", IdempotencyKey: "signup-42"})
	require.NoError(t, err)
	assert.Equal(t, events.StateRequested, requested.Status.State)
	retried, err := client.Request(ctx, events.Command{SubjectID: alice, Purpose: "marketing_email",
		Description: "Offers by email, about once a month", Actor: "signup-form", IdempotencyKey: "signup-42"})
	require.NoError(t, err)
	assert.True(t, retried.Duplicate)
	assert.Equal(t, requested.Seq, retried.Seq)

	granted, err := client.Grant(ctx, events.Command{SubjectID: alice, Purpose: "marketing_email", Actor: "subject",
		Method: "dialog", Evidence: json.RawMessage(`{"ip":"198.51.100.7"}`), TTL: "8760h", ExpectedSeq: &requested.Seq})
	require.NoError(t, err)
	require.NotNil(t, granted.Event.ExpiresAt)
	assert.Equal(t, requested.Event.Hash, granted.Event.PrevHash)

	// Read your writes: with min_seq the index has the grant.
	st, err = client.Check(ctx, wire.StatusQuery{SubjectID: alice, Purpose: "marketing_email", MinSeq: granted.Seq})
	require.NoError(t, err)
	assert.True(t, st.Allowed)
	assert.Equal(t, events.StateGranted, st.State)
	assert.Equal(t, granted.Seq, st.Seq)
	assert.Equal(t, granted.Event.ID, st.EventID)
	assert.GreaterOrEqual(t, st.IndexSeq, granted.Seq)

	// A newer policy needs a new grant: 403 carrying the status.
	st, err = client.Check(ctx, wire.StatusQuery{SubjectID: alice, Purpose: "marketing_email", MinPolicyVersion: 2})
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	assert.Equal(t, events.StateGranted, st.State)
	assert.False(t, st.Allowed)
	we, ok := errors.AsType[*wire.Error](err)
	require.True(t, ok)
	require.NotNil(t, we.Status)
	assert.True(t, strings.HasPrefix(we.Description, "consent required: granted"), we.Description)

	// 409: deny a grant; a stale expected_seq.
	_, err = client.Deny(ctx, events.Command{SubjectID: alice, Purpose: "marketing_email"})
	require.ErrorIs(t, err, wire.ErrConflict)
	_, err = client.Revoke(ctx, events.Command{SubjectID: alice, Purpose: "marketing_email", ExpectedSeq: &requested.Seq})
	require.ErrorIs(t, err, wire.ErrConflict)

	revoked, err := client.Revoke(ctx, events.Command{SubjectID: alice, Purpose: "marketing_email", Reason: "unsubscribed", ExpectedSeq: &granted.Seq})
	require.NoError(t, err)
	st, err = client.Check(ctx, wire.StatusQuery{SubjectID: alice, Purpose: "marketing_email", MinSeq: revoked.Seq})
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	assert.Equal(t, events.StateRevoked, st.State)
	assert.Equal(t, revoked.Seq, st.Seq)

	denied, err := client.Deny(ctx, events.Command{SubjectID: alice, Purpose: "analytics", Reason: "no thanks"})
	require.NoError(t, err)
	other, err := client.Grant(ctx, events.Command{Tenant: "acme", SubjectID: alice, Purpose: "analytics"})
	require.NoError(t, err)

	// 400 naming the field; 413.
	_, err = client.Status(ctx, wire.StatusQuery{SubjectID: alice, Purpose: "Marketing Email"})
	require.ErrorIs(t, err, wire.ErrBadRequest)
	assert.Contains(t, err.Error(), "purpose")
	_, err = client.Grant(ctx, events.Command{SubjectID: alice, Purpose: "analytics", Evidence: json.RawMessage(`{"scan":"` + strings.Repeat("A", wire.MaxRequestSize) + `"}`)})
	require.ErrorIs(t, err, wire.ErrTooLarge)

	// list, with min_seq; tenants are apart.
	statuses, err := client.List(ctx, wire.ListQuery{SubjectID: alice, MinSeq: other.Seq})
	require.NoError(t, err)
	require.Len(t, statuses, 2)
	assert.Equal(t, "analytics", statuses[0].Purpose)
	assert.Equal(t, events.StateDenied, statuses[0].State)
	assert.Equal(t, denied.Seq, statuses[0].Seq)
	assert.Equal(t, "marketing_email", statuses[1].Purpose)
	assert.Equal(t, events.StateRevoked, statuses[1].State)
	acme, err := client.List(ctx, wire.ListQuery{Tenant: "acme", SubjectID: alice, MinSeq: other.Seq})
	require.NoError(t, err)
	require.Len(t, acme, 1)
	assert.True(t, acme[0].Allowed)

	// history: the person's events oldest first, one consent's, paged.
	history, err := client.History(ctx, wire.HistoryQuery{SubjectID: alice})
	require.NoError(t, err)
	var seqs []uint64
	for _, r := range history.Events {
		seqs = append(seqs, r.Seq)
	}
	assert.Equal(t, []uint64{requested.Seq, granted.Seq, revoked.Seq, denied.Seq}, seqs)
	page, err := client.History(ctx, wire.HistoryQuery{SubjectID: alice, Purpose: "marketing_email", AfterSeq: requested.Seq, Limit: 1})
	require.NoError(t, err)
	require.Len(t, page.Events, 1)
	assert.Equal(t, granted.Seq, page.Events[0].Seq)
	assert.Equal(t, granted.Event.Hash, page.Events[0].Event.Hash)

	// Restart on the same data directory: the same statuses and history.
	require.NoError(t, m.Close())
	m = startConsentd(t, dataDir)
	client = connectClient(t, m.ClientURL(), adminOptions(t, m.Config.DataDir)...)

	statusesAfter, err := client.List(ctx, wire.ListQuery{SubjectID: alice})
	require.NoError(t, err)
	assert.Equal(t, statuses, statusesAfter)
	historyAfter, err := client.History(ctx, wire.HistoryQuery{SubjectID: alice})
	require.NoError(t, err)
	assert.Equal(t, history, historyAfter)

	// And the chain goes on where it stopped.
	regranted, err := client.Grant(ctx, events.Command{SubjectID: alice, Purpose: "marketing_email", ExpectedSeq: &revoked.Seq})
	require.NoError(t, err)
	assert.Equal(t, other.Seq+1, regranted.Seq)
	assert.Equal(t, revoked.Event.Hash, regranted.Event.PrevHash)
	st, err = client.Check(ctx, wire.StatusQuery{SubjectID: alice, Purpose: "marketing_email", MinSeq: regranted.Seq})
	require.NoError(t, err)
	assert.True(t, st.Allowed)
}

func TestConsentdRefusesASecondInstanceOnItsDataDir(t *testing.T) {
	dataDir := t.TempDir()
	first := startConsentd(t, dataDir)

	second := NewMain()
	second.Config.Listen = "127.0.0.1:-1"
	second.Config.DataDir = dataDir
	second.Stdout, second.Stderr = io.Discard, io.Discard
	err := second.Run(t.Context())
	require.ErrorIs(t, err, errDataDirInUse)
	assert.Contains(t, err.Error(), "pid "+strconv.Itoa(os.Getpid()))
	assert.Contains(t, err.Error(), "--data-dir")
	require.NoError(t, second.Close())

	// Once the first has stopped, the directory is free again.
	require.NoError(t, first.Close())
	startConsentd(t, dataDir)
}

// child is consentd running as a separate process.
type child struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
}

func startChild(t *testing.T, dataDir string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"BE_CONSENTD=1", "CONSENTD_LISTEN=127.0.0.1:-1", "CONSENTD_DATA_DIR=" + dataDir}, env...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	c := &child{cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = c.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "consentd printed nothing; stderr: %s", c.stderr)
	match := regexp.MustCompile(`^consentd: listening on (nats://\S+) \(pid (\d+), `).FindStringSubmatch(line)
	require.NotNil(t, match, line)
	c.url = match[1]
	// The pid on the ready line is the daemon's own, the one to signal.
	require.Equal(t, strconv.Itoa(cmd.Process.Pid), match[2], line)
	return c
}

func TestConsentdShutsDownCleanlyOnSIGTERM(t *testing.T) {
	dataDir := t.TempDir()
	c := startChild(t, dataDir)
	client := connectClient(t, c.url, adminOptions(t, dataDir)...)
	granted, err := client.Grant(t.Context(), events.Command{SubjectID: "bob", Purpose: "newsletter"})
	require.NoError(t, err)

	// A second consentd on the same directory fails at once, saying why.
	second := exec.Command(os.Args[0], "-test.run=^$")
	second.Env = append(os.Environ(), "BE_CONSENTD=1", "CONSENTD_LISTEN=127.0.0.1:-1", "CONSENTD_DATA_DIR="+dataDir)
	out, err := second.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, string(out), "belongs to another consentd (pid "+strconv.Itoa(c.cmd.Process.Pid)+")")

	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, c.cmd.Wait(), "stderr: %s", c.stderr)
	assert.Contains(t, c.stderr.String(), "stopped cleanly")

	// The checkpoint was committed: the index has the grant without
	// replaying anything.
	idx, err := projector.Open(filepath.Join(dataDir, "index"), projector.IndexOptions{ReadyOnOpen: true})
	require.NoError(t, err)
	assert.Equal(t, granted.Seq, idx.Checkpoint())
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	cons, _, err := idx.Consent(ctx, granted.Event.Key(), 0) // by its subject key
	require.NoError(t, err)
	assert.Equal(t, events.StateGranted, cons.State)
	require.NoError(t, idx.Close())
}

func TestConsentdFailsAtOnceWhenItsPortIsTaken(t *testing.T) {
	first := startConsentd(t, t.TempDir())

	second := NewMain()
	second.Config.Listen = strings.TrimPrefix(first.ClientURL(), "nats://")
	second.Config.DataDir = t.TempDir()
	second.Stdout, second.Stderr = io.Discard, io.Discard
	err := second.Run(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "address already in use")
	require.NoError(t, second.Close())
}
