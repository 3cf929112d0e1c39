package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func verify(t *testing.T, js jetstream.JetStream, opts audit.VerifyOptions) *audit.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if opts.Idle == 0 {
		opts.Idle = 100 * time.Millisecond
	}
	r, err := audit.Verify(ctx, js, opts)
	require.NoError(t, err)
	var text strings.Builder
	require.NoError(t, r.WriteText(&text))
	t.Logf("report:\n%s", text.String())
	return r
}

func TestVerifyCleanLedger(t *testing.T) {
	tl := newTestLedger(t)
	tl.history(20)
	// Purpose registry records share the stream: hash-chained per purpose.
	for _, version := range []int{1, 2} {
		_, err := tl.l.SetPurpose(context.Background(), events.PurposeCommand{Purpose: "marketing_email", PolicyVersion: version})
		require.NoError(t, err)
	}
	last := tl.history(20)

	r := verify(t, tl.js, audit.VerifyOptions{})
	assert.True(t, r.OK(), "problems: %v", r.Problems)
	assert.Equal(t, uint64(1), r.FirstSeq)
	assert.Equal(t, last, r.LastSeq)
	assert.Equal(t, last, r.Messages)
	assert.Equal(t, uint64(2), r.Records)
	assert.Equal(t, last-2, r.Events)
	assert.Equal(t, uint64(10), r.Consents, "5 people x 2 purposes")
	assert.Equal(t, last, r.ChainSeq)
	assert.Len(t, r.Chain, 64)
	assert.Nil(t, r.First())
}

// A purpose record changed after it was written is found like an event.
func TestVerifyNamesAlteredPurposeRecord(t *testing.T) {
	tl := newTestLedger(t)
	tl.history(3)
	set, err := tl.l.SetPurpose(context.Background(), events.PurposeCommand{Purpose: "analytics", PolicyVersion: 3})
	require.NoError(t, err)
	stored, err := tl.stream.GetMsg(context.Background(), set.Seq)
	require.NoError(t, err)
	tl.publishRaw(stored.Subject, "", []byte(strings.Replace(string(stored.Data), `"policy_version":3`, `"policy_version":1`, 1)))

	r := verify(t, tl.js, audit.VerifyOptions{})
	require.False(t, r.OK())
	assert.Equal(t, audit.CheckHash, r.First().Check)
	assert.Equal(t, set.Seq+1, r.First().Seq)
	assert.Equal(t, stored.Subject, r.First().Subject)
}

func TestVerifyEmptyStream(t *testing.T) {
	tl := newTestLedger(t)
	r := verify(t, tl.js, audit.VerifyOptions{})
	assert.True(t, r.OK())
	assert.Zero(t, r.Messages)
	assert.Empty(t, r.Chain)
}

// A forger with publish rights puts an event straight onto the stream,
// sealed with a correct hash of its own but linked to an older event of
// the consent (erasing the revocation in between from the chain).
func TestVerifyNamesForgedLink(t *testing.T) {
	tl := newTestLedger(t)
	tl.history(12)
	granted := tl.append(events.KindGrant, "alice@example.com", "marketing_email")
	tl.append(events.KindRevoke, "alice@example.com", "marketing_email")
	tl.history(5)

	cur := events.Evolve(events.NewConsent(granted.Event.Key()), granted.Event, granted.Seq)
	forged, err := events.Decide(cur, events.KindGrant, events.Command{SubjectID: "alice@example.com", Purpose: "marketing_email", Actor: "subject"}, t0.Add(time.Hour))
	require.NoError(t, err)
	forged.ID = "019d0000-0000-7000-8000-000000000001"
	require.Equal(t, granted.Event.Hash, forged.PrevHash, "linked past the revocation")
	payload, err := forged.Seal()
	require.NoError(t, err)
	forgedSeq := tl.publishRaw(forged.Key().NATSSubject(), string(forged.Type), payload)
	tl.history(5)

	r := verify(t, tl.js, audit.VerifyOptions{})
	require.False(t, r.OK())
	first := r.First()
	assert.Equal(t, forgedSeq, first.Seq)
	assert.Equal(t, audit.CheckLink, first.Check)
	assert.Equal(t, &audit.ConsentRef{Tenant: "default", SubjectID: "alice@example.com", Purpose: "marketing_email"}, first.Consent)
	assert.Equal(t, forged.ID, first.EventID)
	assert.Contains(t, first.Reason, granted.Event.Hash)
}

// An operator with access to the server's files edits an event in a copy
// of the JetStream store (same length) and starts a server on the copy.
// Left with its old checksum, the record fails the server's check on load
// and the server skips it: verify sees a gap at its sequence and names
// the consent from the next event that links to it. With the checksum
// recomputed, the server serves the edited event: the hash gives it away.
func TestVerifyCopiedDataDirectoryWithAlteredEvent(t *testing.T) {
	for _, tt := range []struct {
		name        string
		fixChecksum bool
		check       string
	}{
		{"record checksum left stale", false, audit.CheckGap},
		{"record checksum recomputed", true, audit.CheckHash},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tl := newTestLedger(t)
			tl.history(10)
			target := tl.append(events.KindGrant, "bob@example.com", "analytics", func(c *events.Command) { c.Actor = "web-form" })
			tl.history(10)
			tl.append(events.KindRevoke, "bob@example.com", "analytics")
			last := tl.history(5)
			tl.stop()

			copied := t.TempDir()
			copyDir(t, tl.dir, copied)
			alterStoredPayload(t, copied, "CONSENT", target.Seq, `"actor":"web-form"`, `"actor":"web-farm"`, tt.fixChecksum)
			_, _, js := natstest.Run(t, natstest.StoreDir(copied))

			r := verify(t, js, audit.VerifyOptions{})
			require.False(t, r.OK())
			first := r.First()
			assert.Equal(t, target.Seq, first.Seq)
			assert.Equal(t, tt.check, first.Check)
			assert.Equal(t, &audit.ConsentRef{Tenant: "default", SubjectID: "bob@example.com", Purpose: "analytics"}, first.Consent)
			assert.Equal(t, last, r.LastSeq)
			if tt.check == audit.CheckGap {
				assert.Empty(t, r.Chain, "no chain value past a gap")
			}
		})
	}
}
