package audit_test

import (
	"context"
	"strings"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVerifyExplainsAQuarantinedViolation: verify names every message that
// fails the integrity checks with its seq and consent; once an operator
// quarantines one (consent.quarantined, in the consent's chain), verify
// reports it as explained, not as a problem, and a quarantine that names
// no violation is a problem itself.
func TestVerifyExplainsAQuarantinedViolation(t *testing.T) {
	tl := newTestLedger(t)
	tl.history(6)
	alice := tl.append(events.KindGrant, "alice@example.com", "marketing_email")
	bob := tl.append(events.KindGrant, "bob", "analytics")
	undecodable := tl.publishRaw(alice.Event.Key().NATSSubject(), "", []byte(`{"v":2}`))
	tampered := strings.Replace(string(mustStored(t, tl, bob.Seq)), `"policy_version":1`, `"policy_version":7`, 1)
	altered := tl.publishRaw(bob.Event.Key().NATSSubject(), string(events.TypeGranted), []byte(tampered))
	tl.history(4)

	r := verify(t, tl.js, audit.VerifyOptions{})
	require.Equal(t, uint64(2), r.ProblemCount)
	assert.Equal(t, undecodable, r.Problems[0].Seq)
	assert.Equal(t, audit.CheckDecode, r.Problems[0].Check)
	assert.Equal(t, alice.Event.Key().NATSSubject(), r.Problems[0].Subject)
	assert.Equal(t, altered, r.Problems[1].Seq)
	assert.Equal(t, audit.CheckHash, r.Problems[1].Check)
	assert.Equal(t, &audit.ConsentRef{Tenant: "default", SubjectID: "bob", Purpose: "analytics"}, r.Problems[1].Consent)

	ctx := context.Background()
	q, err := tl.l.Quarantine(ctx, events.Quarantine{Seq: undecodable, Reason: "a stray publish", Actor: "ops"})
	require.NoError(t, err)
	r = verify(t, tl.js, audit.VerifyOptions{})
	require.Equal(t, uint64(1), r.ProblemCount, "%v", r.Problems)
	assert.Equal(t, altered, r.First().Seq, "the unexplained one is still named")
	require.Len(t, r.Explained, 1)
	x := r.Explained[0]
	assert.Equal(t, undecodable, x.Seq)
	assert.Equal(t, q.Seq, x.QuarantineSeq)
	assert.Equal(t, "ops", x.QuarantineActor)
	assert.Equal(t, "a stray publish", x.QuarantineReason)
	assert.Equal(t, &audit.ConsentRef{Tenant: "default", SubjectID: "alice@example.com", Purpose: "marketing_email"}, x.Consent)
	var text strings.Builder
	require.NoError(t, r.WriteText(&text))
	assert.Contains(t, text.String(), "explained: 1 integrity violation(s) quarantined")

	_, err = tl.l.Quarantine(ctx, events.Quarantine{Seq: altered, Reason: "restored from backup", Actor: "ops"})
	require.NoError(t, err)
	r = verify(t, tl.js, audit.VerifyOptions{})
	assert.True(t, r.OK(), "%v", r.Problems)
	assert.Len(t, r.Explained, 2)

	// A quarantine that names a good event explains nothing.
	cur := events.Evolve(events.NewConsent(q.Event.Key()), q.Event, q.Seq)
	bogus := events.DecideQuarantine(cur, events.Quarantine{Seq: alice.Seq, Reason: "cover-up", Actor: "mallory"}, t0)
	bogus.ID = "019d0000-0000-7000-8000-0000000000aa"
	payload, err := bogus.Seal()
	require.NoError(t, err)
	bogusSeq := tl.publishRaw(bogus.Key().NATSSubject(), string(bogus.Type), payload)
	r = verify(t, tl.js, audit.VerifyOptions{})
	require.False(t, r.OK())
	assert.Equal(t, bogusSeq, r.First().Seq)
	assert.Equal(t, audit.CheckQuarantine, r.First().Check)
}

func mustStored(t *testing.T, tl *testLedger, seq uint64) []byte {
	t.Helper()
	m, err := tl.stream.GetMsg(context.Background(), seq)
	require.NoError(t, err)
	return m.Data
}
