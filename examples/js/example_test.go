// Package jsexample runs the JavaScript example (example.mjs) against a real
// consentd: the test builds consentd, starts it on a temporary data
// directory, issues the example's users with admin.creds and runs
// `node example.mjs`. It needs node and the packages of package-lock.json
// (`npm ci --prefix examples/js`); without them it is skipped, or fails
// when the environment variable CI is set.
package jsexample

import (
	"bufio"
	"context"
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
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireNode returns the path of node, or skips the test (fails it when
// CI is set) when node or the example's packages are missing.
func requireNode(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		msg := what + ": run `npm ci --prefix examples/js` (Node 20 or later) to run the JavaScript example"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	for _, pkg := range []string{"@nats-io/transport-node", "@nats-io/jetstream"} {
		if _, err := os.Stat(filepath.Join("node_modules", pkg, "package.json")); err != nil {
			missing("examples/js/node_modules/" + pkg + " is missing")
		}
	}
	return node
}

// startConsentd builds consentd (with -race when this test is built with
// it, so the build cache of the other packages' tests serves) and runs it
// on a fresh data directory with its embedded server on a free port. It
// returns the client URL and the data directory; consentd is stopped
// (SIGTERM) at the end of the test.
func startConsentd(t *testing.T) (url, dataDir string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "consentd")
	args := append([]string{"build"}, raceFlags...)
	args = append(args, "-o", bin, "github.com/consentledger/consent/cmd/consentd")
	out, err := exec.Command("go", args...).CombinedOutput()
	require.NoError(t, err, "go build consentd: %s", out)

	dataDir = t.TempDir()
	cmd := exec.Command(bin, "--listen", "127.0.0.1:-1", "--data-dir", dataDir, "--log-level", "warn")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSENTD_") { // consentd reads (and checks) these
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = testWriter{t}
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			assert.NoError(t, err, "consentd's exit after SIGTERM")
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("consentd did not exit within 20s of SIGTERM")
		}
	})

	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		m := regexp.MustCompile(`listening on (nats://[^\s,]+)`).FindStringSubmatch(line)
		require.NotNil(t, m, "consentd's ready line: %q", line)
		return m[1], dataDir
	case err := <-exited:
		t.Fatalf("consentd exited before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("consentd was not ready within 60s")
	}
	return "", ""
}

// testWriter sends consentd's logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// addUser issues a user of tenant with admin.creds and writes its .creds
// file (mode 0600) into dir.
func addUser(t *testing.T, admin *client.Client, dir, name, role, tenant string) string {
	t.Helper()
	u, err := admin.AddUser(t.Context(), wire.UserRequest{Name: name, Role: role, Tenant: tenant})
	require.NoError(t, err)
	path := filepath.Join(dir, name+".creds")
	require.NoError(t, os.WriteFile(path, []byte(u.Creds), 0o600))
	return path
}

// TestJavaScriptExample runs example.mjs as a writer and a subscriber of
// tenant acme: its check is refused (403 with the status) then allowed, a
// lookup in another tenant is 403 forbidden (told apart from the first), its
// grant with a stale expected_seq gets 409 and the one with the status's
// seq lands, and its durable feed sees the revocation it made, with the
// person's id opened through feed.personal, and judges the grant before it
// by a status lookup.
func TestJavaScriptExample(t *testing.T) {
	node := requireNode(t)
	url, dataDir := startConsentd(t)

	adminCreds, err := os.ReadFile(filepath.Join(dataDir, "admin.creds"))
	require.NoError(t, err)
	opts, err := auth.ConnectOptions(adminCreds)
	require.NoError(t, err)
	nc, err := nats.Connect(url, opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	admin := client.NewClient(nc, client.ClientOptions{})

	dir := t.TempDir()
	writerCreds := addUser(t, admin, dir, "signup", "writer", "acme")
	mailerCreds := addUser(t, admin, dir, "mailer", "subscriber", "acme")

	const person = "zoë@example.com"
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "example.mjs")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSENT_") && !strings.HasPrefix(kv, "NATS_") { // the example's own settings
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"NATS_URL="+url,
		"CONSENT_CREDS="+writerCreds,
		"CONSENT_FEED_CREDS="+mailerCreds,
		"CONSENT_SUBJECT="+person,
		"CONSENT_PURPOSE=marketing_email",
		"CONSENT_DURABLE=mailer",
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node example.mjs:\n%s", out)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("node example.mjs did not finish within 90s")
	}
	require.NoError(t, err, "node example.mjs")
	output := string(out)

	assert.Contains(t, output, "feed: consumer feed~acme~mailer via consent.js.API, filters consent.events.acme.marketing_email.* consent.purposes.acme.marketing_email\n")
	assert.Contains(t, output, "check: allowed=false state=none (consent required: none)\n")
	assert.Contains(t, output, `status in tenant globex: forbidden: tenant "globex": your credentials are for tenant "acme" only (403)`+"\n")
	requested := seqOf(t, output, `requested at seq (\d+)\n`)
	assert.Regexp(t, `grant with expected_seq 0: conflict \(409\): expected_seq is 0 but the consent's last event is at seq `+strconv.FormatUint(requested, 10)+"\n", output)
	granted := seqOf(t, output, `granted at seq (\d+) with expected_seq `+strconv.FormatUint(requested, 10)+`\n`)
	assert.Contains(t, output, "check: allowed=true state=granted seq="+strconv.FormatUint(granted, 10)+"\n")
	revoked := seqOf(t, output, `revoked at seq (\d+)\n`)
	// The grant is judged by a status lookup with min_seq, made after the revocation.
	assert.Contains(t, output, "feed: seq "+strconv.FormatUint(granted, 10)+" consent.granted: not mailing (now revoked) "+person+" (id from feed.personal)\n")
	assert.Contains(t, output, "feed: seq "+strconv.FormatUint(revoked, 10)+" consent.revoked: stop mailing "+person+" (id from feed.personal)\n")
	assert.Contains(t, output, "feed: 3 hashes verified\n")
	assert.True(t, strings.HasSuffix(output, "done\n"), "the example ends after the revocation")

	// What the example did is what the ledger holds.
	st, err := admin.Status(t.Context(), wire.StatusQuery{Tenant: "acme", SubjectID: person, Purpose: "marketing_email", MinSeq: revoked})
	require.NoError(t, err)
	assert.Equal(t, events.StateRevoked, st.State)
	assert.Equal(t, revoked, st.Seq)
	h, err := admin.History(t.Context(), wire.HistoryQuery{Tenant: "acme", SubjectID: person, Purpose: "marketing_email"})
	require.NoError(t, err)
	require.Len(t, h.Events, 3)
	assert.Equal(t, []uint64{requested, granted, revoked}, []uint64{h.Events[0].Seq, h.Events[1].Seq, h.Events[2].Seq})
	assert.Equal(t, "signup@acme", h.Events[1].Event.RecordedBy)
}

// seqOf returns the sequence the first group of pattern matches in output.
func seqOf(t *testing.T, output, pattern string) uint64 {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(output)
	require.NotNil(t, m, "no %q in the output", pattern)
	seq, err := strconv.ParseUint(m[1], 10, 64)
	require.NoError(t, err)
	return seq
}

// TestJavaScriptHashVectors checks hash.mjs, the JavaScript hash of
// docs/hashing.md, against docs/hashing-vectors.json.
func TestJavaScriptHashVectors(t *testing.T) {
	node := requireNode(t)
	out, err := exec.Command(node, "verify-vectors.mjs", filepath.Join("..", "..", "docs", "hashing-vectors.json")).CombinedOutput()
	require.NoError(t, err, "node verify-vectors.mjs: %s", out)
	assert.Regexp(t, `^\d+ vectors checked, 0 failed\n$`, string(out))
}
