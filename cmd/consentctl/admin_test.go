package main

import (
	"fmt"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdminQuarantine: a message published straight onto a granted
// consent's subject makes check say integrity_violation and refuse a
// revoke, both naming the seq, as audit verify does; admin quarantine
// records the operator's decision, after which verify passes with the
// violation explained and the consent takes writes again.
func TestAdminQuarantine(t *testing.T) {
	url := startConsentd(t)
	code, _, errOut := ctl(t, url, "grant", "alice@example.com", "marketing_email")
	require.Equal(t, exitOK, code, errOut)
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	key := events.Key{Tenant: events.DefaultTenant, SubjectID: "alice@example.com", Purpose: "marketing_email"}
	ack, err := js.Publish(t.Context(), key.NATSSubject(), []byte(`{"v":2}`))
	require.NoError(t, err)
	seq := fmt.Sprint(ack.Sequence)

	code, out, errOut := ctl(t, url, "check", "alice@example.com", "marketing_email", "--min-seq", seq)
	assert.Equal(t, exitRequired, code)
	assert.Contains(t, out, "integrity_violation")
	assert.Contains(t, errOut, "consent required: integrity_violation at seq "+seq)
	assert.Contains(t, errOut, "consentctl admin quarantine "+seq)

	code, _, errOut = ctl(t, url, "revoke", "alice@example.com", "marketing_email")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "integrity violation at seq "+seq)

	code, out, _ = ctl(t, url, "audit", "verify", "--no-live")
	assert.Equal(t, exitProblems, code)
	assert.Contains(t, out, "seq "+seq+": decode")
	assert.Contains(t, out, key.NATSSubject())

	code, _, errOut = ctl(t, url, "admin", "quarantine", seq)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "reason: is required")

	code, out, errOut = ctl(t, url, "admin", "quarantine", seq, "--reason", "published by hand during a test", "--actor", "ops")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "consent.quarantined at seq")
	assert.Contains(t, out, "granted")

	code, out, errOut = ctl(t, url, "audit", "verify", "--no-live")
	assert.Equal(t, exitOK, code, out+errOut)
	assert.Contains(t, out, "explained: 1 integrity violation(s) quarantined")
	assert.Contains(t, out, "quarantined at seq")

	code, _, errOut = ctl(t, url, "revoke", "alice@example.com", "marketing_email")
	assert.Equal(t, exitOK, code, errOut)
}
