package ledger_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The authenticated user set on a command (by the service) is stored in
// the event, apart from actor, and shows in history; a command without it
// stores no recorded_by.
func TestAppendStoresRecordedByAndHistoryShowsIt(t *testing.T) {
	l, stream, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	ctx := context.Background()
	cmd := events.Command{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email", Actor: "subject"}
	requested, err := l.Append(ctx, events.KindRequest, cmd)
	require.NoError(t, err)
	cmd.RecordedBy = "support-7@acme"
	granted, err := l.Append(ctx, events.KindGrant, cmd)
	require.NoError(t, err)
	assert.Equal(t, "support-7@acme", granted.Event.RecordedBy)
	assert.Equal(t, "subject", granted.Event.Actor)

	stored, err := stream.GetMsg(ctx, granted.Seq)
	require.NoError(t, err)
	assert.Contains(t, string(stored.Data), `"recorded_at":"`+granted.Event.RecordedAt.Format("2006-01-02T15:04:05.999999999Z07:00")+`","recorded_by":"support-7@acme"`)
	ev, err := events.DecodeOwnedVerified(stored.Data)
	require.NoError(t, err)
	openStored(t, keysOf(stream), ev)
	assert.Equal(t, "support-7@acme", ev.RecordedBy)
	assert.Equal(t, granted.Event, ev, "the reply carries the event as stored")

	unauthenticated, err := stream.GetMsg(ctx, requested.Seq)
	require.NoError(t, err)
	assert.NotContains(t, string(unauthenticated.Data), "recorded_by")

	h, err := l.History(ctx, wire.HistoryQuery{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email"})
	require.NoError(t, err)
	require.Len(t, h.Events, 2)
	assert.Empty(t, h.Events[0].Event.RecordedBy)
	assert.Equal(t, "support-7@acme", h.Events[1].Event.RecordedBy)
	data, err := json.Marshal(h)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(data), `"recorded_by":"support-7@acme"`), "the history reply carries it: %s", data)

	cmd.RecordedBy = strings.Repeat("u", events.MaxRecordedByLen) + "@acme"
	_, err = l.Append(ctx, events.KindGrant, cmd)
	var fe *events.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "recorded_by", fe.Field)
}

func TestSetPurposeStoresRecordedBy(t *testing.T) {
	l, stream, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{})
	ctx := context.Background()
	set, err := l.SetPurpose(ctx, events.PurposeCommand{Tenant: "acme", Purpose: "marketing_email", Actor: "legal", RecordedBy: "admin@_all"})
	require.NoError(t, err)
	stored, err := stream.GetMsg(ctx, set.Seq)
	require.NoError(t, err)
	ev, err := events.DecodePurposeEvent(stored.Data)
	require.NoError(t, err)
	assert.Equal(t, "admin@_all", ev.RecordedBy)
	assert.Equal(t, "legal", ev.Actor)
}
