package ledger_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCommandReplyIsTheStoredEvent: a command's reply carries the event
// exactly as stored: re-sealing the replied event gives the stored bytes,
// and it equals events.Decode of the stored message, for commands with
// evidence numbers, escapes and astral characters, through the ledger and
// through the service.
func TestCommandReplyIsTheStoredEvent(t *testing.T) {
	st := startStack(t, stackOptions{})
	ctx := stepCtx(t)
	evidence := json.RawMessage(` { "z": [4.50, 1E21, 0.1, 9007199254740992, -0, 1e-7, 5e-324],
		"a": {"emoji": "🎉\ud83c\udf89", "esc": "tab\tquote\"slash\/ls\u2028<&>", "é": null, "𝄞": true, "\uffff": false} } `)
	occurred := time.Now().Add(-time.Hour).Round(0)
	subject := "Zoe\u0308 🎉 <x&y>" // NFD: stored in NFC
	replies := []wire.Reply{}
	reply, err := st.client.Request(ctx, events.Command{SubjectID: subject, Purpose: "newsletter", PolicyVersion: events.MaxPolicyVersion - 1,
		Description: "line\nline 𝄞", Evidence: evidence, Actor: "svc", Method: "web", OccurredAt: &occurred})
	require.NoError(t, err)
	replies = append(replies, reply)
	reply, err = st.client.Grant(ctx, events.Command{SubjectID: subject, Purpose: "newsletter", PolicyVersion: events.MaxPolicyVersion,
		Evidence: evidence, TTL: "876000h", IdempotencyKey: "k-1"})
	require.NoError(t, err)
	replies = append(replies, reply)
	reply, err = st.client.Grant(ctx, events.Command{SubjectID: subject, Purpose: "newsletter", PolicyVersion: events.MaxPolicyVersion,
		Evidence: evidence, TTL: "876000h", IdempotencyKey: "k-1"})
	require.NoError(t, err)
	require.True(t, reply.Duplicate)
	replies = append(replies, reply)
	direct, err := st.ledger.Append(ctx, events.KindRevoke, events.Command{SubjectID: "Zo\u00eb 🎉 <x&y>", Purpose: "newsletter",
		Evidence: evidence, Reason: "changed\tmind 🎉"})
	require.NoError(t, err)
	replies = append(replies, direct)

	for _, r := range replies {
		msg, err := st.stream.GetMsg(ctx, r.Seq)
		require.NoError(t, err)
		stored, err := events.Decode(msg.Data)
		require.NoError(t, err)
		require.NoError(t, events.VerifyHash(msg.Data, stored))
		openStored(t, st.keysOrNil(), stored)
		assert.Equal(t, "Zo\u00eb 🎉 <x&y>", stored.SubjectID)

		got, err := json.Marshal(r.Event)
		require.NoError(t, err)
		want, err := json.Marshal(stored)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got), "seq %d", r.Seq)
		resealed := *r.Event
		payload, err := resealed.Seal()
		require.NoError(t, err)
		assert.Equal(t, string(msg.Data), string(payload), "seq %d: the reply re-seals to the stored bytes", r.Seq)
	}
}

// TestEveryEndpointNormalizesSubjectIDs: an id in NFD and the same id in
// NFC are one consent at every endpoint.
func TestEveryEndpointNormalizesSubjectIDs(t *testing.T) {
	st := startStack(t, stackOptions{})
	ctx := stepCtx(t)
	nfd, nfc := "cafe\u0301@example.com", "caf\u00e9@example.com"
	reply, err := st.client.Grant(ctx, events.Command{SubjectID: nfd, Purpose: "newsletter"})
	require.NoError(t, err)
	assert.Equal(t, nfc, reply.Event.SubjectID)
	assert.Equal(t, st.natsSubject(t, events.Key{Tenant: "default", SubjectID: nfc, Purpose: "newsletter"}),
		st.natsSubject(t, events.Key{Tenant: "default", SubjectID: reply.Event.SubjectID, Purpose: "newsletter"}))

	for _, id := range []string{nfd, nfc} {
		q := wire.StatusQuery{SubjectID: id, Purpose: "newsletter", MinSeq: reply.Seq}
		status, err := st.client.Check(ctx, q)
		require.NoError(t, err, "%q", id)
		assert.Equal(t, nfc, status.SubjectID)
		list, err := st.client.List(ctx, wire.ListQuery{SubjectID: id, MinSeq: reply.Seq})
		require.NoError(t, err)
		require.Len(t, list, 1)
		h, err := st.client.History(ctx, wire.HistoryQuery{SubjectID: id})
		require.NoError(t, err)
		require.Len(t, h.Events, 1)
		h, err = st.client.History(ctx, wire.HistoryQuery{SubjectID: id, Purpose: "newsletter"})
		require.NoError(t, err)
		require.Len(t, h.Events, 1)
		at, err := st.client.StatusAt(ctx, wire.StatusAtQuery{SubjectID: id, Purpose: "newsletter", At: time.Now().Add(time.Minute)})
		require.NoError(t, err)
		assert.Equal(t, events.StateGranted, at.State)
	}
	// A revoke under the other spelling withdraws the same consent.
	revoked, err := st.client.Revoke(ctx, events.Command{SubjectID: nfc, Purpose: "newsletter"})
	require.NoError(t, err)
	_, err = st.client.Check(ctx, wire.StatusQuery{SubjectID: nfd, Purpose: "newsletter", MinSeq: revoked.Seq})
	require.ErrorIs(t, err, wire.ErrConsentRequired)
}

// TestServiceRefusesUnsafeInputs: out-of-range numbers, evidence that
// would change or not fit, times out of bounds and subject ids that are
// not one visible, normalisable name get 400 naming the field, at every
// endpoint that takes them.
func TestServiceRefusesUnsafeInputs(t *testing.T) {
	st := startStack(t, stackOptions{})
	deep := strings.Repeat(`{"a":`, events.MaxEvidenceDepth) + `{}` + strings.Repeat(`}`, events.MaxEvidenceDepth)
	tests := []struct{ subj, body, field string }{
		{wire.SubjectRequest, `{"subject":"a","purpose":"p","policy_version":9223372036854775807}`, "policy_version"},
		{wire.SubjectGrant, `{"subject":"a","purpose":"p","policy_version":2147483648}`, "policy_version"},
		{wire.SubjectGrant, `{"subject":"a","purpose":"p","policy_version":0}`, "policy_version"},
		{wire.SubjectPurposeSet, `{"purpose":"p","policy_version":0}`, "policy_version"},
		{wire.SubjectPurposeSet, `{"purpose":"p","policy_version":-3}`, "policy_version"},
		{wire.SubjectStatus, `{"subject":"a","purpose":"p","min_policy_version":0}`, "min_policy_version"},
		{wire.SubjectCheck, `{"subject":"a","purpose":"p","min_policy_version":2147483648}`, "min_policy_version"},
		{wire.SubjectGrant, `{"subject":"a","purpose":"p","evidence":{"n":9007199254740993}}`, "evidence"},
		{wire.SubjectGrant, `{"subject":"a","purpose":"p","evidence":{"n":1e-400}}`, "evidence"},
		{wire.SubjectGrant, `{"subject":"a","purpose":"p","evidence":` + deep + `}`, "evidence"},
		{wire.SubjectGrant, `{"subject":"a","purpose":"p","occurred_at":"2099-01-01T00:00:00Z"}`, "occurred_at"},
		{wire.SubjectGrant, `{"subject":"a","purpose":"p","occurred_at":"0001-01-01T00:00:01Z"}`, "occurred_at"},
		{wire.SubjectGrant, `{"subject":"a","purpose":"p","ttl":"876001h"}`, "ttl"},
		{wire.SubjectGrant, `{"subject":"a","purpose":"p","expires_at":"2999-01-01T00:00:00Z"}`, "expires_at"},
	}
	for _, body := range []string{`" alice"`, `"alice "`, `"\u3000"`, `"a\u200bb"`, `"\ufeffalice"`, `"a\u202eb"`, `"alice\ud800"`, `"alice\ufffd"`} {
		for _, subj := range []string{wire.SubjectGrant, wire.SubjectRevoke, wire.SubjectStatus, wire.SubjectCheck,
			wire.SubjectStatusAt, wire.SubjectReceipt} {
			extra := ""
			if subj == wire.SubjectStatusAt {
				extra = `,"at":"2026-01-01T00:00:00Z"`
			}
			tests = append(tests, struct{ subj, body, field string }{subj, `{"subject":` + body + `,"purpose":"p"` + extra + `}`, "subject"})
		}
		tests = append(tests,
			struct{ subj, body, field string }{wire.SubjectList, `{"subject":` + body + `}`, "subject"},
			struct{ subj, body, field string }{wire.SubjectHistory, `{"subject":` + body + `}`, "subject"})
	}
	for _, tt := range tests {
		msg, code, description := rawRequest(t, st.nc, tt.subj, []byte(tt.body))
		assert.Equal(t, "400", code, "%s %s: %s", tt.subj, tt.body, description)
		assert.True(t, strings.HasPrefix(description, tt.field+": "), "%s %s: description %q should name %s", tt.subj, tt.body, description, tt.field)
		assert.Empty(t, msg.Data)
	}
	// Nothing was stored.
	info, err := st.stream.Info(stepCtx(t))
	require.NoError(t, err)
	assert.Zero(t, info.State.Msgs)
}
