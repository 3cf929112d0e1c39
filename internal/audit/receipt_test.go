package audit_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chained returns events of k sealed with their prev_hash links, stored at
// seqs 3, 6, 9...
func chained(k events.Key, types ...events.Type) []audit.ReceiptEvent {
	var out []audit.ReceiptEvent
	prev := ""
	for i, typ := range types {
		ev := &events.Event{V: 1, ID: "ev-" + string(rune('a'+i)), Type: typ, Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose,
			OccurredAt: t0.Add(time.Duration(i) * time.Hour), RecordedAt: t0.Add(time.Duration(i) * time.Hour), PolicyVersion: 1,
			Actor: "subject", Method: "dialog", PrevHash: prev}
		if typ == events.TypeRequested {
			ev.Description = "May we email you\nabout offers?"
		}
		if typ == events.TypeRevoked {
			ev.Reason = "too many emails"
		}
		if typ == events.TypeGranted {
			ev.RecordedBy = "support-7@acme" // recorded by an authenticated user
		}
		if _, err := ev.Seal(); err != nil {
			panic(err)
		}
		prev = ev.Hash
		out = append(out, audit.ReceiptEvent{Seq: uint64(3 * (i + 1)), Event: ev})
	}
	return out
}

func TestReceiptSignVerifyRender(t *testing.T) {
	signer, pub := newSigner(t)
	keys := audit.NewKeyring(pub)
	k := events.Key{Tenant: "default", SubjectID: "zoë@example.com", Purpose: "marketing_email"}
	history := chained(k, events.TypeRequested, events.TypeGranted, events.TypeRevoked)
	cp := &audit.CheckpointRef{Seq: 12, UpToSeq: 10, Chain: strings.Repeat("ab", 32), Time: t0.Add(3 * time.Hour), KeyID: signer.KeyID()}

	r := audit.NewReceipt("CONSENT", k, history, cp, t0.Add(4*time.Hour))
	assert.Equal(t, events.StateRevoked, r.Status.State)
	assert.Equal(t, uint64(9), r.Status.Seq)
	require.NotNil(t, r.Checkpoint, "the checkpoint covers seq 9")
	sr, err := signer.SignReceipt(r)
	require.NoError(t, err)

	got, err := audit.VerifyReceipt(sr, keys)
	require.NoError(t, err)
	assert.Equal(t, signer.KeyID(), got.KeyID)
	assert.Len(t, got.History, 3)

	for _, want := range []string{
		"CONSENT RECEIPT", "Person:    zoë@example.com (tenant default)", "Status:    revoked, policy version 1",
		"seq 3  requested", "asked: May we email you about offers?", "reason: too many emails",
		"hash " + history[1].Event.Hash, "recorded by user: support-7@acme", "commits to every event of the ledger up to seq 10", "signed with key " + signer.KeyID(),
	} {
		assert.Contains(t, sr.Text, want)
	}

	// Through JSON, as a person would keep it.
	data, err := json.Marshal(sr)
	require.NoError(t, err)
	var kept audit.SignedReceipt
	require.NoError(t, json.Unmarshal(data, &kept))
	_, err = audit.VerifyReceipt(&kept, keys)
	require.NoError(t, err)

	t.Run("altered receipt", func(t *testing.T) {
		forged := kept
		forged.Receipt = json.RawMessage(strings.Replace(string(kept.Receipt), `"state":"revoked"`, `"state":"granted"`, 1))
		require.NotEqual(t, string(kept.Receipt), string(forged.Receipt))
		_, err := audit.VerifyReceipt(&forged, keys)
		require.ErrorIs(t, err, audit.ErrBadSignature)
	})
	t.Run("altered recorded_by", func(t *testing.T) {
		require.Contains(t, string(kept.Receipt), `"recorded_by":"support-7@acme"`, "the signed receipt names the user")
		forged := kept
		forged.Receipt = json.RawMessage(strings.Replace(string(kept.Receipt), `"recorded_by":"support-7@acme"`, `"recorded_by":"mallory@acme"`, 1))
		_, err := audit.VerifyReceipt(&forged, keys)
		require.ErrorIs(t, err, audit.ErrBadSignature)
	})
	t.Run("another key", func(t *testing.T) {
		_, other := newSigner(t)
		_, err := audit.VerifyReceipt(&kept, audit.NewKeyring(other))
		require.ErrorIs(t, err, audit.ErrUnknownKey)
	})
	t.Run("altered text", func(t *testing.T) {
		forged := kept
		forged.Text = strings.Replace(kept.Text, "revoked", "granted", 1)
		_, err := audit.VerifyReceipt(&forged, keys)
		require.ErrorIs(t, err, audit.ErrBadReceipt)
	})
	t.Run("signed but not holding together", func(t *testing.T) {
		broken := chained(k, events.TypeRequested, events.TypeGranted)
		broken[1].Event.PrevHash = strings.Repeat("0", 64)
		_, err := broken[1].Event.Seal()
		require.NoError(t, err)
		sr, err := signer.SignReceipt(audit.NewReceipt("CONSENT", k, broken, nil, t0))
		require.NoError(t, err)
		_, err = audit.VerifyReceipt(sr, keys)
		require.ErrorIs(t, err, audit.ErrBadReceipt)
		assert.Contains(t, err.Error(), "does not link")
	})
}

func TestReceiptCheckpointOnlyWhenItCovers(t *testing.T) {
	k := events.Key{Tenant: "default", SubjectID: "a", Purpose: "p"}
	history := chained(k, events.TypeGranted, events.TypeRevoked) // seqs 3, 6
	early := &audit.CheckpointRef{Seq: 5, UpToSeq: 4}
	assert.Nil(t, audit.NewReceipt("CONSENT", k, history, early, t0).Checkpoint)
	assert.Equal(t, "none", string(audit.NewReceipt("CONSENT", k, nil, early, t0).Status.State))

	r := audit.NewReceipt("CONSENT", k, nil, nil, t0)
	assert.NotNil(t, r.History, "an empty history is [] in JSON")
	assert.Contains(t, r.Text(), "nothing is recorded for this consent")
}
