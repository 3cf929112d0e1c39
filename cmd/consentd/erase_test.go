package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/internal/residue"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

	r, err := s.admin.Erase(ctx, wire.EraseRequest{Tenant: "acme", SubjectID: alice.SubjectID, Reason: "ticket 4711"})
	require.NoError(t, err)
	require.Len(t, r.Erased, 1)
	assert.Equal(t, "admin@_all", r.Erased[0].Event.RecordedBy)
	q := wire.StatusQuery{Tenant: "acme", SubjectID: alice.SubjectID, Purpose: "newsletter", MinSeq: r.Erased[0].Seq}
	st, err := s.admin.Check(ctx, q)
	require.ErrorIs(t, err, wire.ErrConsentRequired)
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
	w.publishRefused(t, wire.SubjectErase, []byte(`{"subject":"alice@example.com","reason":"r"}`))
}

// TestConsentdWithAKEKSealsAndErases: with --kek-file, consentd stores the
// personal fields of every event sealed under the person's data key
// (history opens them for an admin); after the person is erased and
// consentd stopped, neither the person's id nor the evidence is anywhere
// under the data directory (stream files, key bucket, Pebble tables, WAL
// and MANIFEST) nor in consentd's logs.
func TestConsentdWithAKEKSealsAndErases(t *testing.T) {
	dataDir := t.TempDir()
	kek := filepath.Join(t.TempDir(), "consent.kek")
	m := NewMain()
	m.Config.Listen, m.Config.DataDir, m.Config.KEKFile, m.Config.LogLevel = "127.0.0.1:-1", dataDir, kek, "debug"
	logs := &lockedBuffer{}
	m.Stdout, m.Stderr = io.Discard, logs
	require.NoError(t, m.Run(t.Context()))
	t.Cleanup(func() { _ = m.Close() })
	info, err := os.Stat(kek)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the KEK is made private")

	const id, ip = "residue-7f3a@example.com", "203.0.113.77"
	admin := connectClient(t, m.ClientURL(), adminOptions(t, dataDir)...)
	ctx := secCtx(t)
	granted, err := admin.Grant(ctx, events.Command{SubjectID: id, Purpose: "newsletter", Actor: "subject", Evidence: []byte(`{"ip":"` + ip + `"}`)})
	require.NoError(t, err)
	assert.Equal(t, events.SchemaVersion, granted.Event.V, "sealed")
	h, err := admin.History(ctx, wire.HistoryQuery{SubjectID: id, Purpose: "newsletter"})
	require.NoError(t, err)
	require.Len(t, h.Events, 1)
	assert.Equal(t, id, h.Events[0].Event.SubjectID, "an admin's history opens it")
	svc, err := nats.Connect(m.ClientURL(), serviceOptions(t, dataDir)...)
	require.NoError(t, err)
	defer svc.Close()
	js, err := jetstream.New(svc)
	require.NoError(t, err)
	stream, err := js.Stream(ctx, wire.DefaultStream)
	require.NoError(t, err)
	raw, err := stream.GetMsg(ctx, granted.Seq)
	require.NoError(t, err)
	assert.NotContains(t, string(raw.Data), id)
	assert.NotContains(t, string(raw.Data), ip)

	r, err := admin.Erase(ctx, wire.EraseRequest{SubjectID: id, Reason: "ticket 4711"})
	require.NoError(t, err)
	assert.True(t, r.KeyDestroyed)
	h, err = admin.History(ctx, wire.HistoryQuery{SubjectID: id, Purpose: "newsletter"})
	require.NoError(t, err)
	require.Len(t, h.Events, 2)
	assert.Empty(t, h.Events[0].Event.SubjectID, "sealed for good")
	svc.Close()
	require.NoError(t, m.Close())

	for _, f := range residue.Scan(t, dataDir, []byte(id), []byte(ip)) {
		t.Errorf("found after the erasure: %s", f)
	}
	assert.NotContains(t, logs.String(), id)
	assert.NotContains(t, logs.String(), ip)
}

// TestSubscriberReadsSealedEvents: with --kek-file, a subscriber of acme
// watching through the service gets the person's id of each sealed
// change (the service opens it: feed.personal), not another tenant's; after
// the person is erased it gets consent.erased, and the earlier changes,
// read again, stay sealed.
func TestSubscriberReadsSealedEvents(t *testing.T) {
	dataDir := t.TempDir()
	m := NewMain()
	m.Config.Listen, m.Config.DataDir, m.Config.KEKFile, m.Config.LogLevel = "127.0.0.1:-1", dataDir, filepath.Join(t.TempDir(), "kek"), "warn"
	m.Stdout, m.Stderr = io.Discard, testWriter{t}
	require.NoError(t, m.Run(t.Context()))
	t.Cleanup(func() { _ = m.Close() })
	s := &secured{m: m, admin: connectClient(t, m.ClientURL(), adminOptions(t, dataDir)...)}
	ctx := secCtx(t)
	granted, err := s.admin.Grant(ctx, events.Command{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "newsletter", Evidence: []byte(`{"ip":"198.51.100.7"}`)})
	require.NoError(t, err)
	_, err = s.admin.Grant(ctx, events.Command{Tenant: "globex", SubjectID: "zoe", Purpose: "newsletter"})
	require.NoError(t, err)

	sub := s.dial(t, "mailer", auth.Subscriber, "acme")
	w, err := sub.client.Watch(ctx, client.WatchOptions{StartSeq: 1})
	require.NoError(t, err)
	defer w.Stop()
	ch, err := w.Next(ctx)
	require.NoError(t, err)
	require.NotNil(t, ch.Event)
	assert.Equal(t, granted.Seq, ch.Seq)
	assert.True(t, ch.Event.IsSealed())
	assert.Equal(t, "alice@example.com", ch.Event.SubjectID)
	assert.JSONEq(t, `{"ip":"198.51.100.7"}`, string(ch.Event.Evidence))
	assert.Equal(t, "alice@example.com", ch.Status.SubjectID)
	assert.True(t, ch.Status.Allowed)

	// Another tenant's event is not for it, whatever it asks.
	_, err = sub.client.Watch(ctx, client.WatchOptions{Tenant: "globex", StartSeq: 1})
	require.ErrorIs(t, err, wire.ErrForbidden)

	// An auditor's export opens them through the service too.
	auditor := s.dial(t, "dpo", auth.Auditor, "acme")
	exportAcme := func() string {
		t.Helper()
		source, err := auditor.client.AuditSource(ctx, wire.AuditOpenRequest{})
		require.NoError(t, err)
		var out strings.Builder
		_, err = audit.Export(ctx, nil, &out, audit.ExportOptions{Source: source, Tenant: "acme", Open: auditor.client.OpenSealed(ctx)})
		require.NoError(t, err)
		return out.String()
	}
	exported := exportAcme()
	assert.Contains(t, exported, `"personal":{`)
	assert.Contains(t, exported, "alice@example.com")

	r, err := s.admin.Erase(ctx, wire.EraseRequest{Tenant: "acme", SubjectID: "alice@example.com", Reason: "ticket 4711"})
	require.NoError(t, err)
	exported = exportAcme()
	assert.Contains(t, exported, `"erased":true`)
	assert.NotContains(t, exported, "alice@example.com")
	ch, err = w.Next(ctx)
	require.NoError(t, err)
	require.NotNil(t, ch.Event)
	assert.Equal(t, r.Erased[0].Seq, ch.Seq)
	assert.Equal(t, events.TypeErased, ch.Event.Type)
	assert.Equal(t, events.StateErased, ch.Status.State)

	again, err := sub.client.Watch(ctx, client.WatchOptions{StartSeq: 1})
	require.NoError(t, err)
	defer again.Stop()
	ch, err = again.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, granted.Seq, ch.Seq)
	assert.Empty(t, ch.Event.SubjectID, "erased: sealed for good")
	assert.Empty(t, ch.Event.Evidence)
}
