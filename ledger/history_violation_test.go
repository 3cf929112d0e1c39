package ledger_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHistoryStatusAtReceiptWithViolation: a message on a consent's
// subject that fails decoding, its hash or its link is listed by history
// as a violation record in its place (no event), also on a page after
// after_seq; status_at says granted before it, integrity_violation with
// its seq after it, and after the quarantine the resumed state; receipt
// is a 409 naming the seq until the quarantine, then a verified receipt
// of the events.
func TestHistoryStatusAtReceiptWithViolation(t *testing.T) {
	dir := t.TempDir()
	_, err := audit.GenerateKeyFiles(filepath.Join(dir, "k"), filepath.Join(dir, "k.pub"))
	require.NoError(t, err)
	signer, err := audit.LoadSigningKey(filepath.Join(dir, "k"))
	require.NoError(t, err)
	pub, err := audit.LoadPublicKey(filepath.Join(dir, "k.pub"))
	require.NoError(t, err)

	for _, bad := range badMessages {
		t.Run(bad.check, func(t *testing.T) {
			e := startAuditEnv(t, signer)
			ctx := stepCtx(t)
			who := events.Command{SubjectID: "alice@example.com", Purpose: "marketing_email"}
			hq := wire.HistoryQuery{SubjectID: who.SubjectID, Purpose: who.Purpose}
			requested := e.do(t, events.KindRequest, who)
			granted := e.do(t, events.KindGrant, who) // recorded at testNow+1m

			// The stream stamps the bad message with the real clock,
			// well after testNow.
			eventType, payload := bad.make(t, granted.Event)
			badSeq := publishBad(t, e.js, who.Key().NATSSubject(), eventType, payload)
			stored := time.Now()

			h, err := e.client.History(ctx, hq)
			require.NoError(t, err)
			require.Len(t, h.Events, 3)
			assert.Equal(t, requested.Seq, h.Events[0].Seq)
			assert.Equal(t, granted.Event.ID, h.Events[1].Event.ID)
			v := h.Events[2]
			assert.Equal(t, badSeq, v.Seq)
			assert.Nil(t, v.Event)
			require.NotNil(t, v.Violation)
			assert.Equal(t, bad.check, v.Violation.Check)
			assert.NotEmpty(t, v.Violation.Reason)

			statusAt := func(at time.Time) wire.StatusAt {
				t.Helper()
				st, err := e.client.StatusAt(ctx, wire.StatusAtQuery{SubjectID: who.SubjectID, Purpose: who.Purpose, At: at})
				require.NoError(t, err)
				return st
			}
			before := statusAt(testNow.Add(90 * time.Second))
			assert.Equal(t, events.StateGranted, before.State)
			assert.True(t, before.Allowed)
			after := statusAt(stored.Add(time.Second))
			assert.Equal(t, events.StateIntegrityViolation, after.State)
			assert.Equal(t, badSeq, after.ViolationSeq)
			assert.False(t, after.Allowed)

			_, err = e.client.Receipt(ctx, wire.ReceiptQuery{SubjectID: who.SubjectID, Purpose: who.Purpose})
			var we *wire.Error
			require.True(t, errors.As(err, &we), "%v", err)
			assert.Equal(t, 409, we.Code)
			assert.Contains(t, we.Description, fmt.Sprintf("seq %d", badSeq))

			// Quarantine it (recorded a minute after it was stored), then revoke.
			e.clock.Advance(stored.Add(time.Minute).Sub(e.clock.Now()))
			quarantined, err := e.l.Quarantine(ctx, events.Quarantine{Seq: badSeq, Reason: "published by a test", Actor: "ops", RecordedBy: "ops-1@acme"})
			require.NoError(t, err)
			e.clock.Advance(time.Minute)
			revoked := e.do(t, events.KindRevoke, who)

			h, err = e.client.History(ctx, hq)
			require.NoError(t, err)
			require.Len(t, h.Events, 5)
			assert.NotNil(t, h.Events[2].Violation)
			require.NotNil(t, h.Events[3].Event, "%+v", h.Events[3].Violation)
			assert.Equal(t, events.TypeQuarantined, h.Events[3].Event.Type)
			assert.Equal(t, "ops-1@acme", h.Events[3].Event.RecordedBy, "the authenticated user who quarantined it")
			require.NotNil(t, h.Events[4].Event, "%+v", h.Events[4].Violation)
			assert.Equal(t, revoked.Event.ID, h.Events[4].Event.ID)

			// A page after the grant judges links as a read from the start.
			page := hq
			page.AfterSeq, page.Limit = granted.Seq, 2
			h, err = e.client.History(ctx, page)
			require.NoError(t, err)
			require.Len(t, h.Events, 2)
			assert.Equal(t, badSeq, h.Events[0].Seq)
			assert.NotNil(t, h.Events[0].Violation)
			require.NotNil(t, h.Events[1].Event, "%+v", h.Events[1].Violation)
			assert.Equal(t, quarantined.Seq, h.Events[1].Seq)

			assert.Equal(t, events.StateIntegrityViolation, statusAt(stored.Add(time.Second)).State)
			resumed := statusAt(stored.Add(90 * time.Second))
			assert.Equal(t, events.StateGranted, resumed.State)
			assert.Zero(t, resumed.ViolationSeq)
			assert.Equal(t, events.StateRevoked, statusAt(stored.Add(150*time.Second)).State)

			sr, err := e.client.Receipt(ctx, wire.ReceiptQuery{SubjectID: who.SubjectID, Purpose: who.Purpose})
			require.NoError(t, err)
			r, err := audit.VerifyReceipt(&sr, audit.NewKeyring(pub))
			require.NoError(t, err)
			assert.Equal(t, events.StateRevoked, r.Status.State)
			require.Len(t, r.History, 4)
			assert.Equal(t, quarantined.Seq, r.History[2].Seq)
		})
	}
}
