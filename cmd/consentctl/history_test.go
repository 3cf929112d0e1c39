package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHistoryShowsBackdatedEvents: an event recorded more than the
// allowed clock skew after it occurred (a paper form entered later) says
// so in the DETAILS column, with its recorded time.
func TestHistoryShowsBackdatedEvents(t *testing.T) {
	recorded := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	onTime := &events.Event{Type: events.TypeGranted, Purpose: "p", PolicyVersion: 1,
		OccurredAt: recorded.Add(-events.MaxFutureSkew), RecordedAt: recorded}
	paper := &events.Event{Type: events.TypeGranted, Purpose: "p", PolicyVersion: 1,
		OccurredAt: recorded.AddDate(0, -2, 0), RecordedAt: recorded}
	var out bytes.Buffer
	printHistory(&out, wire.History{Events: []wire.Record{{Seq: 1, Event: onTime}, {Seq: 2, Event: paper}}})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, out.String())
	assert.Regexp(t, `^1\s+2026-03-01T11:55:00Z\s+p\s+granted\s+1\s+-\s+-$`, lines[1])
	assert.Regexp(t, `^2\s+2026-01-01T12:00:00Z\s+p\s+granted\s+1\s+-\s+backdated, recorded 2026-03-01T12:00:00Z$`, lines[2])
}

// TestHistoryShowsRecordedBy: the authenticated user who recorded an
// event shows in DETAILS, apart from the actor, with the recorded time
// when the event is backdated.
func TestHistoryShowsRecordedBy(t *testing.T) {
	recorded := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	onTime := &events.Event{Type: events.TypeGranted, Purpose: "p", PolicyVersion: 1, Actor: "subject", RecordedBy: "alice@acme",
		Method: "dialog", OccurredAt: recorded, RecordedAt: recorded}
	paper := &events.Event{Type: events.TypeRevoked, Purpose: "p", PolicyVersion: 1, Actor: "subject", RecordedBy: "admin@_all",
		OccurredAt: recorded.AddDate(0, -2, 0), RecordedAt: recorded}
	var out bytes.Buffer
	printHistory(&out, wire.History{Events: []wire.Record{{Seq: 1, Event: onTime}, {Seq: 2, Event: paper}}})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, out.String())
	assert.Regexp(t, `^1\s+2026-03-01T12:00:00Z\s+p\s+granted\s+1\s+subject\s+recorded by alice@acme; method dialog$`, lines[1])
	assert.Regexp(t, `^2\s+2026-01-01T12:00:00Z\s+p\s+revoked\s+1\s+subject\s+backdated, recorded 2026-03-01T12:00:00Z by admin@_all$`, lines[2])
}

func TestHistoryShowsBackdatedEventsEndToEnd(t *testing.T) {
	url := startConsentd(t)
	occurred := time.Now().UTC().AddDate(0, 0, -3).Truncate(time.Second)
	code, _, errOut := ctl(t, url, "grant", "bob", "newsletter", "--occurred-at", occurred.Format(time.RFC3339))
	require.Equal(t, exitOK, code, errOut)
	code, out, errOut := ctl(t, url, "history", "bob")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, occurred.Format(time.RFC3339)+" ")
	assert.Regexp(t, `granted\s+1\s+-\s+backdated, recorded \S+Z\n`, out)

	code, _, errOut = ctl(t, url, "grant", "bob", "newsletter", "--occurred-at", time.Now().UTC().AddDate(1, 0, 0).Format(time.RFC3339))
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "occurred_at: must not be more than 5 minutes after the ledger's clock")
}

// TestHistoryShowsViolation: a message on the consent's subject that
// fails the integrity checks (here it does not decode) is a row of TYPE
// violation, between the consent's events, with the check and why.
func TestHistoryShowsViolation(t *testing.T) {
	url := startConsentd(t)
	code, _, errOut := ctl(t, url, "grant", "bob", "newsletter")
	require.Equal(t, exitOK, code, errOut)

	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js := natstest.JetStream(t, nc)
	msg := nats.NewMsg(events.Key{Tenant: events.DefaultTenant, SubjectID: "bob", Purpose: "newsletter"}.NATSSubject())
	msg.Data = []byte(`{"v":2}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, msg)
	require.NoError(t, err)

	code, out, errOut := ctl(t, url, "history", "bob", "newsletter")
	require.Equal(t, exitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	assert.Regexp(t, `\sgranted\s`, lines[1])
	assert.Regexp(t, `^`+strconv.FormatUint(ack.Sequence, 10)+`\s+-\s+-\s+violation\s+-\s+-\s+check decode: \S.*$`, lines[2])
}
