package main

import (
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConsentdErasesByRetention: consentd's retainer (--retention-interval)
// erases a person whose consent ended longer ago than its purpose's
// retention, with a reason naming the retention; a person on legal hold
// (set by an admin through consent.v1.admin.hold.set) and a person with a
// live grant are kept; a writer may not set a hold.
func TestConsentdErasesByRetention(t *testing.T) {
	dir := t.TempDir()
	m := runMain(t, dir, "--listen", "127.0.0.1:-1", "--retention-interval", "20ms")
	admin := connectClient(t, m.ClientURL(), adminOptions(t, dir)...)
	ctx := secCtx(t)
	retention := "720h"
	_, err := admin.SetPurpose(ctx, events.PurposeCommand{Tenant: "acme", Purpose: "newsletter", Retention: &retention})
	require.NoError(t, err)

	hold, err := admin.SetHold(ctx, wire.HoldRequest{Tenant: "acme", SubjectID: "bob", Reason: "litigation hold, case 17"})
	require.NoError(t, err)
	assert.Equal(t, "admin@_all", hold.Hold.SetBy)
	granted, revoked := time.Now().Add(-40*24*time.Hour), time.Now().Add(-31*24*time.Hour)
	for _, who := range []string{"alice@example.com", "bob"} {
		_, err := admin.Grant(ctx, events.Command{Tenant: "acme", SubjectID: who, Purpose: "newsletter", OccurredAt: &granted})
		require.NoError(t, err)
		_, err = admin.Revoke(ctx, events.Command{Tenant: "acme", SubjectID: who, Purpose: "newsletter", OccurredAt: &revoked})
		require.NoError(t, err)
	}
	_, err = admin.Grant(ctx, events.Command{Tenant: "acme", SubjectID: "carol", Purpose: "newsletter", OccurredAt: &granted})
	require.NoError(t, err)

	last := func(who string) events.Event {
		h, err := admin.History(ctx, wire.HistoryQuery{Tenant: "acme", SubjectID: who, Purpose: "newsletter"})
		require.NoError(t, err)
		return *h.Events[len(h.Events)-1].Event
	}
	require.Eventually(t, func() bool { return last("alice@example.com").Type == events.TypeErased }, 10*time.Second, 10*time.Millisecond)
	erased := last("alice@example.com")
	assert.True(t, strings.HasPrefix(erased.Reason, "retention: every consent of the person ended; the last to pass its retention: newsletter revoked "), erased.Reason)
	assert.Contains(t, erased.Reason, "retention 720h")
	assert.Empty(t, erased.RecordedBy, "consentd erased")
	require.Eventually(t, func() bool { return m.retainer.Stats().Held > 0 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, events.TypeRevoked, last("bob").Type, "bob is on hold")
	assert.Equal(t, events.TypeGranted, last("carol").Type, "carol's grant is live")

	holds, err := admin.ListHolds(ctx, wire.HoldListQuery{Tenant: "acme"})
	require.NoError(t, err)
	require.Len(t, holds.Holds, 1)
	assert.Equal(t, "litigation hold, case 17", holds.Holds[0].Reason)

	s := &secured{m: m, admin: admin}
	w := s.dial(t, "writer", auth.Writer, "acme")
	w.publishRefused(t, wire.SubjectHoldSet, []byte(`{"subject":"bob","reason":"r"}`))
	w.publishRefused(t, wire.SubjectHoldRelease, []byte(`{"subject":"bob"}`))

	_, err = admin.ReleaseHold(ctx, wire.HoldRequest{Tenant: "acme", SubjectID: "bob"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return last("bob").Type == events.TypeErased }, 10*time.Second, 10*time.Millisecond)
}
