package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ctlAsync runs consentctl in the background; the result arrives on the
// returned channel.
func ctlAsync(t *testing.T, url string, args ...string) <-chan [3]any {
	t.Helper()
	done := make(chan [3]any, 1)
	go func() {
		var out, errOut bytes.Buffer
		code := run(append([]string{"--server", url}, args...), &out, &errOut)
		done <- [3]any{code, out.String(), errOut.String()}
	}()
	return done
}

func TestConsentctlWatch(t *testing.T) {
	url := startConsentd(t)
	steps := [][]string{
		{"grant", "alice@example.com", "newsletter", "--ttl", "1h"},
		{"grant", "bob", "analytics"}, // another purpose: filtered out
		{"purpose", "set", "newsletter", "--policy-version", "2", "--default-ttl", "720h", "--retention", "17520h"},
		{"revoke", "alice@example.com", "newsletter", "--reason", "too many"},
		{"grant", "carol", "newsletter", "--policy-version", "1"},
	}
	for _, s := range steps {
		code, _, errOut := ctl(t, url, s...)
		require.Equal(t, exitOK, code, errOut)
	}

	code, out, errOut := ctl(t, url, "watch", "newsletter", "--from-seq", "1", "--count", "4", "--for", "10s")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, errOut, "Watching changes from seq 1 of newsletter in tenant default (Ctrl-C to stop).\nSEQ RECORDED TENANT SUBJECT PURPOSE CHANGE -> STATE, ALLOWED\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	assert.Regexp(t, `^1 \S+ default alice@example\.com newsletter granted -> granted, allowed$`, lines[0])
	assert.Regexp(t, `^3 \S+ default purpose newsletter set: policy version 2, default ttl 720h, retention 17520h$`, lines[1])
	assert.Regexp(t, `^4 \S+ default alice@example\.com newsletter revoked -> revoked, not allowed$`, lines[2])
	assert.Regexp(t, `^5 \S+ default carol newsletter granted -> granted, not allowed: outdated, policy version 2 is required$`, lines[3])

	// --json: one object per line.
	code, out, errOut = ctl(t, url, "watch", "--json", "--from-seq", "2", "--count", "2", "--for", "10s")
	require.Equal(t, exitOK, code, errOut)
	sc := bufio.NewScanner(strings.NewReader(out))
	var changes []changeJSON
	for sc.Scan() {
		var c changeJSON
		require.NoError(t, json.Unmarshal(sc.Bytes(), &c), sc.Text())
		changes = append(changes, c)
	}
	require.Len(t, changes, 2)
	assert.Equal(t, uint64(2), changes[0].Seq)
	require.NotNil(t, changes[0].Status)
	assert.True(t, changes[0].Status.Allowed)
	assert.Equal(t, "bob", changes[0].Event.SubjectID)
	require.NotNil(t, changes[1].Purpose)
	assert.Equal(t, 2, changes[1].Purpose.PolicyVersion)

	// --for ends a watch that has nothing more to print, cleanly.
	code, out, _ = ctl(t, url, "watch", "nothing_here", "--for", "200ms")
	assert.Equal(t, exitOK, code)
	assert.Empty(t, out)
}

// TestPrintChangeShowsRecordedBy: a change recorded by an authenticated
// user names it; one recorded without authentication prints as before.
func TestPrintChangeShowsRecordedBy(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	grant := &events.Event{Type: events.TypeGranted, Tenant: "acme", SubjectID: "alice@example.com", Purpose: "newsletter", RecordedBy: "support-7@acme"}
	granted := events.Status{State: events.StateGranted, Allowed: true}
	set := &events.PurposeEvent{Type: events.TypePurposeSet, Tenant: "acme", Purpose: "newsletter", PolicyVersion: 2, RecordedBy: "admin@_all"}
	var out bytes.Buffer
	e := &env{stdout: &out}
	printChange(e, &client.Change{Seq: 7, Time: at, Event: grant, Status: granted})
	printChange(e, &client.Change{Seq: 8, Time: at, PurposeEvent: set, Purpose: events.Purpose{Tenant: "acme", Purpose: "newsletter", PolicyVersion: 2}})
	unauthenticated := *grant
	unauthenticated.RecordedBy = ""
	printChange(e, &client.Change{Seq: 9, Time: at, Event: &unauthenticated, Status: granted})
	paper := *grant
	paper.OccurredAt, paper.RecordedAt = at.AddDate(0, -2, 0), at
	printChange(e, &client.Change{Seq: 10, Time: at, Event: &paper, Status: granted})
	assert.Equal(t, "7 2026-03-01T12:00:00Z acme alice@example.com newsletter granted (recorded by support-7@acme) -> granted, allowed\n"+
		"8 2026-03-01T12:00:00Z acme purpose newsletter set: policy version 2 (recorded by admin@_all)\n"+
		"9 2026-03-01T12:00:00Z acme alice@example.com newsletter granted -> granted, allowed\n"+
		"10 2026-03-01T12:00:00Z acme alice@example.com newsletter granted (occurred 2026-01-01T12:00:00Z) (recorded by support-7@acme) -> granted, allowed\n",
		out.String(), "the time is the recorded one; a backdated event says when it occurred")
}

// TestConsentctlDurableWatch: a durable watch picks up after the last
// change it printed, across runs.
func TestConsentctlDurableWatch(t *testing.T) {
	// Each run of consentctl creates its consumer, or (--service-feed)
	// consentd opens it (consent.v1.feed.open).
	for _, mode := range []string{"--service-feed=false", "--service-feed"} {
		t.Run(mode, func(t *testing.T) {
			url := startConsentd(t)
			for _, who := range []string{"a", "b", "c"} {
				code, _, errOut := ctl(t, url, "grant", who, "newsletter")
				require.Equal(t, exitOK, code, errOut)
			}
			code, out, errOut := ctl(t, url, "watch", mode, "--durable", "mailer", "--from-seq", "1", "--count", "2", "--for", "10s")
			require.Equal(t, exitOK, code, errOut)
			assert.Equal(t, 2, strings.Count(out, "\n"))
			assert.Contains(t, errOut, "(durable watch mailer)")

			running := ctlAsync(t, url, "watch", mode, "--durable", "mailer", "--count", "2", "--for", "10s")
			code, _, errOut = ctl(t, url, "revoke", "a", "newsletter")
			require.Equal(t, exitOK, code, errOut)
			r := <-running
			require.Equal(t, exitOK, r[0], r[2])
			lines := strings.Split(strings.TrimSpace(r[1].(string)), "\n")
			require.Len(t, lines, 2)
			assert.Regexp(t, `^3 \S+ default c newsletter granted`, lines[0], "resumes after the last printed change")
			assert.Regexp(t, `^4 \S+ default a newsletter revoked`, lines[1])
		})
	}
}

func TestConsentctlWatchRefusesBadFlags(t *testing.T) {
	url := startConsentd(t)
	code, _, errOut := ctl(t, url, "watch", "--from-seq", "3", "--since", "2026-01-01T00:00:00Z")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "start")
	code, _, errOut = ctl(t, url, "watch", "Bad.Purpose")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "purpose")
}

func TestConsentctlPurpose(t *testing.T) {
	url := startConsentd(t)
	code, out, errOut := ctl(t, url, "purpose", "get", "newsletter")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "Purpose newsletter is not registered in tenant default")
	code, out, _ = ctl(t, url, "purpose", "list")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "No purposes are registered in tenant default.")

	code, out, errOut = ctl(t, url, "purpose", "set", "newsletter", "--description", "Monthly news", "--default-ttl", "8760h", "--actor", "legal")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `^purpose\.set at seq 1 \(event \S+\)\n`, out)
	assert.Regexp(t, `(?m)^default\s+newsletter\s+1\s+8760h\s+-\s+\S+\s+1\s+Monthly news$`, out)

	code, out, errOut = ctl(t, url, "purpose", "set", "newsletter", "--policy-version", "2")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^default\s+newsletter\s+2\s+8760h\s+-\s+\S+\s+2\s+Monthly news$`, out, "description and ttl kept")

	code, _, errOut = ctl(t, url, "purpose", "set", "newsletter", "--policy-version", "1")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "policy versions only go up")
	assert.Contains(t, errOut, "consentctl purpose get newsletter")

	code, out, errOut = ctl(t, url, "purpose", "get", "newsletter", "--min-seq", "2", "--json")
	require.Equal(t, exitOK, code, errOut)
	var p events.Purpose
	require.NoError(t, json.Unmarshal([]byte(out), &p))
	assert.Equal(t, 2, p.PolicyVersion)
	assert.True(t, p.Registered)

	code, out, errOut = ctl(t, url, "purpose", "list", "--min-seq", "2")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^default\s+newsletter\s+2\s+`, out)

	// A grant now gets version 2 and the default ttl; one at version 1 is
	// outdated and check says so.
	code, out, errOut = ctl(t, url, "grant", "alice", "newsletter")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^default\s+alice\s+newsletter\s+granted\s+yes\s+2\s+\S+\s+\d{4}-`, out)
	code, _, errOut = ctl(t, url, "grant", "bob", "newsletter", "--policy-version", "1")
	require.Equal(t, exitOK, code, errOut)
	code, out, errOut = ctl(t, url, "check", "bob", "newsletter", "--min-seq", "4")
	assert.Equal(t, exitRequired, code)
	assert.Regexp(t, `(?m)^default\s+bob\s+newsletter\s+granted\s+no \(outdated: v2 required\)\s+1\s+`, out)
	assert.Contains(t, errOut, "granted at policy version 1, but version 2 is required")

	for _, bad := range [][]string{
		{"purpose", "get"},
		{"purpose", "rename", "x"},
		{"purpose", "list", "extra"},
		{"purpose", "get", "newsletter", "--policy-version", "3"},
		{"purpose", "set", "newsletter", "--min-seq", "3"},
	} {
		code, _, _ := ctl(t, url, bad...)
		assert.Equal(t, exitError, code, "%v", bad)
	}
}
