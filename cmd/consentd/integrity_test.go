package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// publishRaw stores payload on subject as something other than the ledger
// could (with the service account's credentials, which only consentd and
// whoever holds its data directory have), returning its sequence.
func publishRaw(t *testing.T, m *Main, subject, eventType string, payload []byte) uint64 {
	t.Helper()
	nc, err := nats.Connect(m.ClientURL(), serviceOptions(t, m.Config.DataDir)...)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	msg := nats.NewMsg(subject)
	msg.Data = payload
	if eventType != "" {
		msg.Header.Set(events.HeaderEventType, eventType)
	}
	ack, err := js.PublishMsg(t.Context(), msg)
	require.NoError(t, err)
	return ack.Sequence
}

// TestConsentdStartsPastABadMessage: the 7 bytes {"v":2} on
// consent.events.x.y.z and on a granted consent's subject neither stop the
// index nor a restart; the consent says integrity_violation before and
// after the restart.
func TestConsentdStartsPastABadMessage(t *testing.T) {
	dataDir := t.TempDir()
	m := startConsentd(t, dataDir)
	client := connectClient(t, m.ClientURL(), adminOptions(t, m.Config.DataDir)...)
	cmd := events.Command{SubjectID: "alice@example.com", Purpose: "marketing_email"}
	granted, err := client.Grant(t.Context(), cmd)
	require.NoError(t, err)
	publishRaw(t, m, "consent.events.x.y.z", "", []byte(`{"v":2}`))
	bad := publishRaw(t, m, granted.Event.Key().NATSSubject(), "", []byte(`{"v":2}`))

	q := wire.StatusQuery{SubjectID: cmd.SubjectID, Purpose: cmd.Purpose, MinSeq: bad}
	_, err = client.Check(t.Context(), q)
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	assert.Contains(t, err.Error(), fmt.Sprintf("integrity_violation at seq %d", bad))
	require.NoError(t, m.Close())

	m = startConsentd(t, dataDir) // not refused
	client = connectClient(t, m.ClientURL(), adminOptions(t, m.Config.DataDir)...)
	st, err := client.Status(t.Context(), q)
	require.NoError(t, err)
	assert.Equal(t, events.StateIntegrityViolation, st.State)
	assert.Equal(t, bad, st.ViolationSeq)
	h := m.projector.Health()
	assert.Equal(t, 2, h.Violations)
	assert.Empty(t, h.Err)
	assert.True(t, h.Running)
}

// TestConsentdNamesTheSeqAndVersionOfANewerEvent: an event a newer ledger
// wrote (sealed, v 2, on a consent's subject) stops the projector, and
// consentd says which sequence and which version in its log and in the
// lookups' endpoint data.
func TestConsentdNamesTheSeqAndVersionOfANewerEvent(t *testing.T) {
	m := NewMain()
	m.Config.Listen = "127.0.0.1:-1"
	m.Config.DataDir = t.TempDir()
	m.Config.LogLevel = "warn"
	logs := &lockedBuffer{} // reused from the crash tests
	m.Stdout, m.Stderr = &bytes.Buffer{}, logs
	require.NoError(t, m.Run(t.Context()))
	t.Cleanup(func() { _ = m.Close() })
	client := connectClient(t, m.ClientURL(), adminOptions(t, m.Config.DataDir)...)
	cmd := events.Command{SubjectID: "alice@example.com", Purpose: "marketing_email"}
	granted, err := client.Grant(t.Context(), cmd)
	require.NoError(t, err)

	var newer map[string]any
	raw, err := json.Marshal(granted.Event)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &newer))
	newer["v"], newer["prev_hash"], newer["channel"] = events.SchemaVersion+1, granted.Event.Hash, "sms"
	delete(newer, "hash")
	raw, err = json.Marshal(newer)
	require.NoError(t, err)
	newer["hash"], err = events.HashOf(raw)
	require.NoError(t, err)
	raw, err = json.Marshal(newer)
	require.NoError(t, err)
	seq := publishRaw(t, m, granted.Event.Key().NATSSubject(), string(events.TypeGranted), raw)

	require.Eventually(t, func() bool { return m.projector.Health().StopSeq != 0 }, 10*time.Second, 5*time.Millisecond)
	data, err := json.Marshal(m.health())
	require.NoError(t, err)
	assert.Contains(t, string(data), fmt.Sprintf(`"projector_stop_seq":%d`, seq))
	assert.Contains(t, string(data), fmt.Sprintf(`"projector_stop_event_version":%d`, events.SchemaVersion+1))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "projector stopped on a problem in the stream") }, 10*time.Second, 5*time.Millisecond)
	assert.Contains(t, logs.String(), fmt.Sprintf("seq=%d", seq))
	assert.Contains(t, logs.String(), fmt.Sprintf("event_version=%d", events.SchemaVersion+1))
}
