package main

import (
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/ledger"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConsentdErasesAPerson: an admin erases a person through
// consent.v1.admin.erase; check then refuses with "consent required:
// erased", the erasure is recorded by the admin, a new consent starts a
// fresh chain, and a writer may not erase.
func TestConsentdErasesAPerson(t *testing.T) {
	s := startSecured(t)
	ctx := secCtx(t)
	alice := events.Command{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "newsletter"}
	_, err := s.admin.Grant(ctx, alice)
	require.NoError(t, err)

	r, err := s.admin.Erase(ctx, ledger.EraseRequest{Tenant: "acme", SubjectID: alice.SubjectID, Reason: "ticket 4711"})
	require.NoError(t, err)
	require.Len(t, r.Erased, 1)
	assert.Equal(t, "admin@_all", r.Erased[0].Event.RecordedBy)
	q := ledger.StatusQuery{Tenant: "acme", SubjectID: alice.SubjectID, Purpose: "newsletter", MinSeq: r.Erased[0].Seq}
	st, err := s.admin.Check(ctx, q)
	require.ErrorIs(t, err, ledger.ErrConsentRequired)
	assert.Contains(t, err.Error(), "consent required: erased")
	assert.Equal(t, events.StateErased, st.State)
	assert.Equal(t, alice.SubjectID, st.SubjectID, "the answer names the person it was asked about")

	fresh, err := s.admin.Grant(ctx, alice)
	require.NoError(t, err)
	assert.Empty(t, fresh.Event.PrevHash, "a fresh chain")
	q.MinSeq = fresh.Seq
	_, err = s.admin.Check(ctx, q)
	require.NoError(t, err)

	w := s.dial(t, "writer", auth.Writer, "acme")
	w.publishRefused(t, ledger.SubjectErase, []byte(`{"subject":"alice@example.com","reason":"r"}`))
}
