package ledger_test

import (
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPolicyBumpMakesGrantsOutdated: a check without min_policy_version
// uses the purpose's current version, so raising it turns an allowed check
// into 403 (the status says outdated) until the person consents again.
func TestPolicyBumpMakesGrantsOutdated(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := st.client
	const alice = "alice@example.com"
	q := func(minSeq uint64) wire.StatusQuery {
		return wire.StatusQuery{SubjectID: alice, Purpose: "newsletter", MinSeq: minSeq}
	}

	set, err := c.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: "newsletter", Description: ptr("Monthly news"), Actor: "legal"})
	require.NoError(t, err)
	assert.Equal(t, 1, set.Purpose.PolicyVersion)
	granted, err := c.Grant(stepCtx(t), events.Command{SubjectID: alice, Purpose: "newsletter", Actor: "subject"})
	require.NoError(t, err)
	assert.Equal(t, 1, granted.Event.PolicyVersion, "a grant without policy_version is about the version in force")
	status, err := c.Check(stepCtx(t), q(granted.Seq))
	require.NoError(t, err)
	assert.True(t, status.Allowed)
	assert.False(t, status.Outdated)
	assert.Equal(t, 1, status.RequiredPolicyVersion)

	// The policy changes: version 2. Alice's grant is outdated.
	bump, err := c.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: "newsletter", PolicyVersion: 2, Actor: "legal"})
	require.NoError(t, err)
	assert.Equal(t, "Monthly news", bump.Purpose.Description, "kept")
	status, err = c.Check(stepCtx(t), q(bump.Seq))
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	assert.Contains(t, err.Error(), "consent required: granted at policy version 1, but policy version 2 is required")
	assert.Equal(t, events.StateGranted, status.State)
	assert.False(t, status.Allowed)
	assert.True(t, status.Outdated)
	assert.Equal(t, 2, status.RequiredPolicyVersion)
	list, err := c.List(stepCtx(t), wire.ListQuery{SubjectID: alice, MinSeq: bump.Seq})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.True(t, list[0].Outdated, "list judges by the purpose too")

	// An explicit min_policy_version still wins over the purpose's.
	status, err = c.Check(stepCtx(t), wire.StatusQuery{SubjectID: alice, Purpose: "newsletter", MinPolicyVersion: 1})
	require.NoError(t, err)
	assert.True(t, status.Allowed)

	// Asked again (re-consent): a request needs no version, it gets 2.
	requested, err := c.Request(stepCtx(t), events.Command{SubjectID: alice, Purpose: "newsletter"})
	require.NoError(t, err)
	assert.Equal(t, 2, requested.Event.PolicyVersion)
	regranted, err := c.Grant(stepCtx(t), events.Command{SubjectID: alice, Purpose: "newsletter", Actor: "subject"})
	require.NoError(t, err)
	status, err = c.Check(stepCtx(t), q(regranted.Seq))
	require.NoError(t, err)
	assert.True(t, status.Allowed)
	assert.Equal(t, 2, status.PolicyVersion)
	assert.False(t, status.Outdated)

	// A purpose nobody registered works as before: no minimum.
	other, err := c.Grant(stepCtx(t), events.Command{SubjectID: alice, Purpose: "analytics", PolicyVersion: 1})
	require.NoError(t, err)
	status, err = c.Check(stepCtx(t), wire.StatusQuery{SubjectID: alice, Purpose: "analytics", MinSeq: other.Seq})
	require.NoError(t, err)
	assert.Zero(t, status.RequiredPolicyVersion)
}

func TestPurposeRegistry(t *testing.T) {
	now := time.Now().UTC()
	st := startStack(t, stackOptions{})
	c := st.client

	none, err := c.GetPurpose(stepCtx(t), wire.PurposeQuery{Purpose: "newsletter"})
	require.NoError(t, err)
	assert.False(t, none.Registered)
	assert.Equal(t, events.DefaultTenant, none.Tenant)
	purposes, err := c.ListPurposes(stepCtx(t), wire.PurposeListQuery{})
	require.NoError(t, err)
	assert.Empty(t, purposes)

	first, err := c.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: "newsletter", Description: ptr("News"),
		DefaultTTL: ptr("720h"), PolicyVersion: 3, IdempotencyKey: "setup-1", ExpectedSeq: ptr(uint64(0))})
	require.NoError(t, err)
	assert.False(t, first.Duplicate)
	again, err := c.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: "newsletter", Description: ptr("News"),
		DefaultTTL: ptr("720h"), PolicyVersion: 3, IdempotencyKey: "setup-1", ExpectedSeq: ptr(uint64(0))})
	require.NoError(t, err)
	assert.True(t, again.Duplicate, "the same idempotency key appends nothing")
	assert.Equal(t, first.Seq, again.Seq)
	assert.Equal(t, first.Event, again.Event)

	_, err = c.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: "newsletter", ExpectedSeq: ptr(uint64(0))})
	require.ErrorIs(t, err, wire.ErrConflict, "stale expected_seq")
	_, err = c.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: "newsletter", PolicyVersion: 2})
	require.ErrorIs(t, err, wire.ErrConflict)
	assert.Contains(t, err.Error(), "policy versions only go up")
	_, err = c.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: "newsletter", DefaultTTL: ptr("forever")})
	require.ErrorIs(t, err, wire.ErrBadRequest)
	assert.Contains(t, err.Error(), "default_ttl")
	second, err := c.SetPurpose(stepCtx(t), events.PurposeCommand{Tenant: "acme", Purpose: "analytics"})
	require.NoError(t, err)

	got, err := c.GetPurpose(stepCtx(t), wire.PurposeQuery{Purpose: "newsletter", MinSeq: second.Seq})
	require.NoError(t, err)
	assert.True(t, got.Registered)
	assert.Equal(t, "News", got.Description)
	assert.Equal(t, 3, got.PolicyVersion)
	assert.Equal(t, "720h", got.DefaultTTL)
	assert.Equal(t, first.Seq, got.Seq)
	assert.Equal(t, first.Event.ID, got.EventID)
	assert.GreaterOrEqual(t, got.IndexSeq, second.Seq)
	purposes, err = c.ListPurposes(stepCtx(t), wire.PurposeListQuery{Tenant: "acme"})
	require.NoError(t, err)
	require.Len(t, purposes, 1)
	assert.Equal(t, "analytics", purposes[0].Purpose)

	// The default ttl applies to a grant without ttl or expires_at.
	granted, err := c.Grant(stepCtx(t), events.Command{SubjectID: "bob", Purpose: "newsletter"})
	require.NoError(t, err)
	require.NotNil(t, granted.Event.ExpiresAt)
	assert.WithinDuration(t, now.Add(720*time.Hour), *granted.Event.ExpiresAt, time.Minute)
	assert.Equal(t, 3, granted.Event.PolicyVersion)
	explicit, err := c.Grant(stepCtx(t), events.Command{SubjectID: "carol", Purpose: "newsletter", TTL: "1h"})
	require.NoError(t, err)
	assert.WithinDuration(t, now.Add(time.Hour), *explicit.Event.ExpiresAt, time.Minute)

	// In the stream: one chained history per purpose, like a consent's.
	bump, err := c.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: "newsletter", PolicyVersion: 4})
	require.NoError(t, err)
	assert.Equal(t, first.Event.Hash, bump.Event.PrevHash)
	msg, err := st.stream.GetLastMsgForSubject(stepCtx(t), "consent.purposes.default.newsletter")
	require.NoError(t, err)
	assert.Equal(t, bump.Seq, msg.Sequence)
	assert.Equal(t, string(events.TypePurposeSet), msg.Header.Get(events.HeaderEventType))
	stored, err := events.DecodePurposeEvent(msg.Data)
	require.NoError(t, err)
	assert.Equal(t, bump.Event, stored)
	sum, err := events.HashOf(msg.Data)
	require.NoError(t, err)
	assert.Equal(t, stored.Hash, sum)
}
