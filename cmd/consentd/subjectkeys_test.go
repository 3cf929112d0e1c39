package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runLogged runs consentd without authentication on dataDir (embedded
// server, so with its KEK in DATA-DIR/kek) and returns it with its log.
func runLogged(t *testing.T, dataDir string) (*Main, *lockedBuffer) {
	t.Helper()
	m := NewMain()
	m.Environ = func() []string { return nil }
	logs := &lockedBuffer{}
	m.Stdout, m.Stderr = &bytes.Buffer{}, logs
	require.NoError(t, m.ParseFlags([]string{"--data-dir", dataDir, "--listen", "127.0.0.1:-1", "--insecure-no-auth"}))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := m.Run(ctx)
	if err != nil {
		_ = m.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m, logs
}

// streamScheme returns the subject key scheme the stream records.
func streamScheme(t *testing.T, js jetstream.JetStream) events.SubjectKeyScheme {
	t.Helper()
	stream, err := js.Stream(stepContext(t), wire.DefaultStream)
	require.NoError(t, err)
	return ledger.StreamSubjectKeyScheme(stream.CachedInfo().Config)
}

// TestConsentdKeysNewStreamsWithHMAC: consentd with its KEK makes a new
// stream of keyed subject keys, says so in its log and in the stream's
// metadata, and stores events on the keyed subject (not the sha256-16
// one anyone could compute from the id).
func TestConsentdKeysNewStreamsWithHMAC(t *testing.T) {
	m, logs := runLogged(t, t.TempDir())
	assert.Contains(t, logs.String(), "subject_key_scheme=hmac-sha256-16")
	nc, err := nats.Connect(m.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	assert.Equal(t, events.SubjectKeyHMAC, streamScheme(t, js))

	client := client.NewClient(nc, client.ClientOptions{})
	granted, err := client.Grant(stepContext(t), events.Command{SubjectID: "alice@example.com", Purpose: "newsletter"})
	require.NoError(t, err)
	st, err := client.Check(stepContext(t), wire.StatusQuery{SubjectID: "alice@example.com", Purpose: "newsletter", MinSeq: granted.Seq})
	require.NoError(t, err)
	assert.Equal(t, granted.Event.SubjectKey, st.SubjectKey)
	assert.NotEqual(t, events.SubjectKey("default", "alice@example.com"), st.SubjectKey)
	msg, err := js.Stream(stepContext(t), wire.DefaultStream)
	require.NoError(t, err)
	stored, err := msg.GetMsg(stepContext(t), granted.Seq)
	require.NoError(t, err)
	assert.Equal(t, "consent.events.default.newsletter."+st.SubjectKey, stored.Subject)
}

// TestConsentdKeepsASHA256Stream: a data directory whose stream keys its
// subjects with sha256-16 (as consentd made them before keyed subject
// keys) keeps that scheme: after a restart consentd says so, answers from
// what was written and takes writes on the same subjects.
func TestConsentdKeepsASHA256Stream(t *testing.T) {
	dataDir := t.TempDir()
	m, _ := runLogged(t, dataDir)
	nc, err := nats.Connect(m.ClientURL())
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	// The stream of an older consentd: the scheme sha256-16.
	stream, err := js.Stream(stepContext(t), wire.DefaultStream)
	require.NoError(t, err)
	cfg := stream.CachedInfo().Config
	cfg.Metadata[events.SubjectKeySchemeMetadata] = string(events.SubjectKeySHA256)
	_, err = js.UpdateStream(stepContext(t), cfg)
	require.NoError(t, err)
	nc.Close()
	require.NoError(t, m.Close())

	cmd := events.Command{SubjectID: "alice@example.com", Purpose: "newsletter"}
	q := wire.StatusQuery{SubjectID: cmd.SubjectID, Purpose: cmd.Purpose}
	sha := events.SubjectKey("default", cmd.SubjectID)
	m, logs := runLogged(t, dataDir)
	assert.Contains(t, logs.String(), "subject_key_scheme=sha256-16")
	client := connectClient(t, m.ClientURL())
	granted, err := client.Grant(stepContext(t), cmd)
	require.NoError(t, err)
	assert.Equal(t, "consent.events.default.newsletter."+sha, granted.Event.Key().NATSSubject())
	require.NoError(t, m.Close())

	// The new build, restarted on that directory.
	m, logs = runLogged(t, dataDir)
	assert.Contains(t, logs.String(), "subject_key_scheme=sha256-16")
	client = connectClient(t, m.ClientURL())
	q.MinSeq = granted.Seq
	st, err := client.Check(stepContext(t), q)
	require.NoError(t, err, "answers from what was written")
	assert.Equal(t, granted.Seq, st.Seq)
	assert.Equal(t, sha, st.SubjectKey)
	revoked, err := client.Revoke(stepContext(t), cmd)
	require.NoError(t, err, "takes writes")
	assert.Equal(t, granted.Event.Hash, revoked.Event.PrevHash, "on the same consent")
	h, err := client.History(stepContext(t), wire.HistoryQuery{SubjectID: cmd.SubjectID})
	require.NoError(t, err)
	require.Len(t, h.Events, 2)
	assert.Equal(t, cmd.SubjectID, h.Events[0].Event.SubjectID)

	nc, err = nats.Connect(m.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err = jetstream.New(nc)
	require.NoError(t, err)
	assert.Equal(t, events.SubjectKeySHA256, streamScheme(t, js), "the stream keeps its scheme")
	assert.False(t, strings.Contains(logs.String(), "hmac-sha256-16"))
}
