package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startConsentd wires what consentd runs (stream, ledger, projector,
// service) on an embedded server and returns the URL to reach it.
func startConsentd(t *testing.T) string {
	t.Helper()
	return startConsentdWith(t, nil)
}

// startConsentdWith is startConsentd on a server adjusted by serverOpts,
// which consentd's connections reach with connOpts.
func startConsentdWith(t *testing.T, serverOpts []natstest.Option, connOpts ...nats.Option) string {
	t.Helper()
	s := natstest.RunServer(t, append([]natstest.Option{natstest.SyncAlways()}, serverOpts...)...)
	runStack(t, s, connOpts, t.TempDir(), ledger.ServiceConfig{}, ledger.FeedConfig{})
	return s.ClientURL()
}

// runStack runs on s what consentd runs (stream, projector with its index
// in dataDir, service, feed), its connections made with connOpts, until
// the end of the test; it returns once the projector has caught up, as
// consentd does.
func runStack(t *testing.T, s *server.Server, connOpts []nats.Option, dataDir string, svcCfg ledger.ServiceConfig, feedCfg ledger.FeedConfig) {
	t.Helper()
	nc := natstest.Connect(t, s, connOpts...)
	js := natstest.JetStream(t, nc)
	stream, err := ledger.EnsureStream(t.Context(), js, ledger.StreamOptions{})
	require.NoError(t, err)
	quiet := slog.New(slog.DiscardHandler)
	idx, err := projector.Open(filepath.Join(dataDir, "index"), projector.IndexOptions{Logger: quiet})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- projector.New(js, idx, projector.Options{Logger: quiet}).Run(ctx) }()
	svcCfg.Logger, feedCfg.Logger = quiet, quiet
	holds, err := ledger.OpenHolds(t.Context(), js, 1)
	require.NoError(t, err)
	svc, err := ledger.NewService(natstest.Connect(t, s, connOpts...), ledger.New(js, stream, ledger.Options{Holds: holds}), idx, svcCfg)
	require.NoError(t, err)
	feed, err := ledger.ServeFeed(js, feedCfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		feed.Stop()
		_ = svc.Stop(context.Background())
		cancel()
		<-done
		_ = idx.Close()
		nc.Close()
	})
	for {
		changed := idx.Changed()
		if idx.Ready() {
			return
		}
		select {
		case <-changed:
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("projector stopped: %v", err)
		}
	}
}

// ctl runs consentctl against url and returns its exit code and output.
func ctl(t *testing.T, url string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"--server", url}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestConsentctlTour(t *testing.T) {
	url := startConsentd(t)

	code, out, errOut := ctl(t, url, "check", "alice@example.com", "marketing_email")
	assert.Equal(t, exitRequired, code)
	assert.Contains(t, out, "none")
	assert.Contains(t, errOut, "consent required: none")
	assert.Contains(t, errOut, "consentctl request alice@example.com marketing_email")

	code, out, errOut = ctl(t, url, "request", "alice@example.com", "marketing_email", "--description", "Offers by email", "--actor", "signup-form")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `^consent\.requested at seq 1 \(event \S+\)\n`, out)
	assert.Regexp(t, `(?m)^default\s+alice@example\.com\s+marketing_email\s+requested\s+no\s+1\s+\S+\s+-\s+1$`, out)

	code, _, errOut = ctl(t, url, "check", "alice@example.com", "marketing_email", "--min-seq", "1")
	assert.Equal(t, exitRequired, code)
	assert.Contains(t, errOut, "consent required: requested")

	// Flags may come before or after the arguments.
	code, out, errOut = ctl(t, url, "grant", "--ttl", "8760h", "alice@example.com", "marketing_email", "--expected-seq", "1", "--actor", "subject", "--evidence", `{"form":"v3"}`)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "consent.granted at seq 2")

	code, out, errOut = ctl(t, url, "check", "alice@example.com", "marketing_email", "--min-seq", "2")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^default\s+alice@example\.com\s+marketing_email\s+granted\s+yes\s+1\s`, out)
	assert.Empty(t, errOut)

	code, _, errOut = ctl(t, url, "check", "alice@example.com", "marketing_email", "--min-policy-version", "2")
	assert.Equal(t, exitRequired, code)
	assert.Contains(t, errOut, "consent required: granted at policy version 1, but version 2 is required")
	assert.Contains(t, errOut, "--policy-version 2")

	code, out, errOut = ctl(t, url, "status", "alice@example.com", "marketing_email", "--json")
	require.Equal(t, exitOK, code, errOut)
	var st events.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, events.StateGranted, st.State)
	assert.Equal(t, uint64(2), st.Seq)

	code, _, errOut = ctl(t, url, "deny", "alice@example.com", "marketing_email")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "use revoke")
	assert.Contains(t, errOut, "consentctl status alice@example.com marketing_email")

	code, _, errOut = ctl(t, url, "revoke", "alice@example.com", "marketing_email", "--reason", "unsubscribed")
	require.Equal(t, exitOK, code, errOut)
	code, _, errOut = ctl(t, url, "check", "alice@example.com", "marketing_email", "--min-seq", "3")
	assert.Equal(t, exitRequired, code)
	assert.Contains(t, errOut, "withdrew consent")

	code, _, errOut = ctl(t, url, "--tenant", "acme", "deny", "alice@example.com", "analytics", "--reason", "no thanks")
	require.Equal(t, exitOK, code, errOut)
	code, out, errOut = ctl(t, url, "list", "alice@example.com", "--tenant", "acme", "--min-seq", "4")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^acme\s+alice@example\.com\s+analytics\s+denied\s+no\s`, out)
	assert.NotContains(t, out, "marketing_email")

	code, out, errOut = ctl(t, url, "history", "alice@example.com")
	require.Equal(t, exitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	assert.Regexp(t, `^SEQ\s+OCCURRED\s+PURPOSE\s+TYPE`, lines[0])
	assert.Regexp(t, `^1\s+\S+\s+marketing_email\s+requested\s+1\s+signup-form\s+description: Offers by email$`, lines[1])
	assert.Regexp(t, `^2\s+\S+\s+marketing_email\s+granted\s+1\s+subject\s+expires \S+$`, lines[2])
	assert.Regexp(t, `^3\s+\S+\s+marketing_email\s+revoked\s+1\s+-\s+reason: unsubscribed$`, lines[3])

	code, out, errOut = ctl(t, url, "history", "alice@example.com", "marketing_email", "--limit", "1", "--json")
	require.Equal(t, exitOK, code, errOut)
	var h wire.History
	require.NoError(t, json.Unmarshal([]byte(out), &h))
	require.Len(t, h.Events, 1)
	assert.Equal(t, uint64(1), h.Events[0].Seq)
	code, out, _ = ctl(t, url, "history", "alice@example.com", "marketing_email", "--limit", "1")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "add --after-seq 1")
}

func TestConsentctlErrors(t *testing.T) {
	url := startConsentd(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no command", nil, exitError, "Usage: consentctl"},
		{"unknown command", []string{"allow", "a", "p"}, exitError, `unknown command "allow"`},
		{"missing argument", []string{"grant", "alice"}, exitError, "usage: consentctl grant SUBJECT PURPOSE"},
		{"flag of another command", []string{"grant", "alice", "p", "--reason", "x"}, exitError, "flag provided but not defined: --reason\nRun consentctl grant --help for the flags.\n"},
		{"invalid purpose", []string{"status", "alice", "Marketing Email"}, exitError, "purpose: "},
		{"bad expected-seq", []string{"grant", "alice", "p", "--expected-seq", "-1"}, exitError, "want a stream sequence"},
		{"bad evidence", []string{"grant", "alice", "p", "--evidence", "[1]"}, exitError, "evidence: must be a JSON object"},
		{"evidence not JSON", []string{"grant", "alice", "p", "--evidence", "{bad"}, exitError,
			"consentctl: --evidence is not valid JSON: invalid character 'b' looking for beginning of object key string at line 1, column 2 (byte offset 1)\n"},
		{"evidence cut short", []string{"grant", "alice", "p", "--evidence", "{\"form\":\n \"v3\""}, exitError,
			"consentctl: --evidence is not valid JSON: unexpected end of JSON input at line 2, column 6 (byte offset 14)\n"},
		{"evidence bad on line 2", []string{"grant", "alice", "p", "--evidence", "{\"form\":\n v3}"}, exitError,
			"invalid character 'v' looking for beginning of value at line 2, column 2 (byte offset 10)\n"},
		{"nothing to revoke", []string{"revoke", "alice", "p"}, exitError, "cannot revoke: there is no consent to revoke for this person and purpose (409)"},
		{"stale expected-seq", []string{"grant", "alice", "p", "--expected-seq", "5"}, exitError, "expected_seq is 5"},
		{"min_seq never reached", []string{"check", "alice", "p", "--min-seq", "99", "--timeout", "5s"}, exitError, "min_seq"},
		{"503 that passes", []string{"check", "alice", "p", "--min-seq", "99", "--timeout", "5s"}, exitError, "retry later (503)\n  The service is not ready; try again in a moment.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := ctl(t, url, tt.args...)
			assert.Equal(t, tt.wantCode, code)
			assert.Contains(t, errOut, tt.wantErr)
		})
	}
}

func TestConsentctlWithoutConsentd(t *testing.T) {
	// A NATS server where no consent service runs.
	s := natstest.RunServer(t)
	code, _, errOut := ctl(t, s.ClientURL(), "check", "alice", "p")
	assert.Equal(t, exitError, code, "an error, not 'consent required'")
	assert.Contains(t, errOut, "start consentd")

	// No NATS server at all.
	code, _, errOut = ctl(t, "nats://127.0.0.1:1", "status", "alice", "p", "--timeout", "500ms")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "cannot reach NATS at nats://127.0.0.1:1")
}

// TestConsentctlUnconfigured503: a 503 that lasts until consentd is
// configured otherwise (receipt without a signing key) says so, without
// the advice to try again in a moment.
func TestConsentctlUnconfigured503(t *testing.T) {
	url := startConsentd(t)
	code, out, errOut := ctl(t, url, "receipt", "alice", "p")
	assert.Equal(t, exitError, code)
	assert.Empty(t, out)
	assert.Equal(t, "consentctl: consent: receipts are not signed here: no signing key is configured (start consentd with --signing-key) (503)\n", errOut)
}
