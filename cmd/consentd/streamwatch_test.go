package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logCapture keeps what consentd logs, for the test to read while it runs.
type logCapture struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Write(p)
}

// count returns how many lines hold every one of substrs.
func (c *logCapture) count(substrs ...string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for line := range strings.Lines(c.b.String()) {
		all := true
		for _, s := range substrs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// endpointHealth returns, per endpoint subject, the "stream" and "index"
// objects of its data in $SRV.STATS, as `nats micro info consent` shows
// them.
func endpointHealth(t *testing.T, nc *nats.Conn) map[string]struct{ Stream, Index map[string]any } {
	t.Helper()
	msg, err := nc.Request("$SRV.STATS."+wire.ServiceName, nil, 5*time.Second)
	require.NoError(t, err)
	var stats micro.Stats
	require.NoError(t, json.Unmarshal(msg.Data, &stats))
	out := map[string]struct{ Stream, Index map[string]any }{}
	for _, e := range stats.Endpoints {
		var d struct {
			Stream map[string]any `json:"stream"`
			Index  map[string]any `json:"index"`
		}
		require.NoError(t, json.Unmarshal(e.Data, &d), e.Subject)
		// consent.v1.*.grant, where the client accounts' imports put their tenant
		subject := strings.Replace(e.Subject, "consent.v1.*.", "consent.v1.", 1)
		out[subject] = struct{ Stream, Index map[string]any }{d.Stream, d.Index}
	}
	return out
}

// streamSafe reports the "safe" of the grant endpoint's stream health.
func streamSafe(t *testing.T, nc *nats.Conn) bool {
	t.Helper()
	h := endpointHealth(t, nc)[wire.SubjectGrant].Stream
	require.NotNil(t, h, "the grant endpoint shows no stream health")
	return h["safe"] == true
}

// TestConsentdRefusesWritesWhileTheStreamIsUnsafe changes the running
// stream through the JetStream API, as a client of the NATS server can,
// and checks that consentd stops taking writes (503 naming the setting),
// logs it once, shows it in every endpoint's data, and still answers
// lookups from its index.
func TestConsentdRefusesWritesWhileTheStreamIsUnsafe(t *testing.T) {
	tests := []struct {
		name    string
		change  func(t *testing.T, js jetstream.JetStream)
		problem string
		restore func(t *testing.T, js jetstream.JetStream) // nil: cannot be undone
	}{
		{"max_msgs_per_subject with discard old",
			updateStream(func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject, c.Discard = 1, jetstream.DiscardOld }),
			"max_msgs_per_subject is 1",
			updateStream(func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject, c.Discard = -1, jetstream.DiscardNew })},
		{"sealed",
			updateStream(func(c *jetstream.StreamConfig) { c.Sealed = true }),
			"sealed is true", nil},
		{"deleted",
			func(t *testing.T, js jetstream.JetStream) {
				require.NoError(t, js.DeleteStream(t.Context(), wire.DefaultStream))
			},
			"does not exist (it was deleted)", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logCapture{}
			m := NewMain()
			m.Config.Listen = "127.0.0.1:-1"
			m.Config.DataDir = t.TempDir()
			m.Config.LogLevel = "warn"
			m.Stdout, m.Stderr = io.Discard, io.MultiWriter(testWriter{t}, logs)
			err := m.Run(t.Context())
			if err != nil {
				_ = m.Close()
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = m.Close() })

			client := connectClient(t, m.ClientURL(), adminOptions(t, m.Config.DataDir)...)
			admin, err := nats.Connect(m.ClientURL(), serviceOptions(t, m.Config.DataDir)...)
			require.NoError(t, err)
			t.Cleanup(admin.Close)
			js, err := jetstream.New(admin)
			require.NoError(t, err)
			ctx := t.Context()
			alice := events.Command{SubjectID: "alice@example.com", Purpose: "marketing_email"}
			granted, err := client.Grant(ctx, alice)
			require.NoError(t, err)
			require.True(t, streamSafe(t, admin))

			tt.change(t, js)
			// The advisory tells consentd at once; its periodic check
			// (every 10s by default) would tell it later.
			require.Eventually(t, func() bool { return !streamSafe(t, admin) }, 10*time.Second, 5*time.Millisecond)

			_, err = client.Revoke(ctx, alice)
			require.ErrorIs(t, err, wire.ErrUnavailable)
			we, ok := errors.AsType[*wire.Error](err)
			require.True(t, ok)
			assert.Contains(t, we.Description, "stream CONSENT is unsafe for the audit trail: ")
			assert.Contains(t, we.Description, tt.problem)
			assert.Contains(t, we.Description, "writes are refused until an operator restores it")
			_, err = client.SetPurpose(ctx, events.PurposeCommand{Purpose: "marketing_email", PolicyVersion: 2})
			require.ErrorIs(t, err, wire.ErrUnavailable)

			// Every endpoint says so; status still answers from the index.
			for subj, h := range endpointHealth(t, admin) {
				require.NotNil(t, h.Stream, subj)
				assert.Equal(t, false, h.Stream["safe"], subj)
				assert.Contains(t, h.Stream["writes_refused"], tt.problem, subj)
			}
			assert.NotNil(t, endpointHealth(t, admin)[wire.SubjectStatus].Index, "the index health is still shown")
			st, err := client.Status(ctx, wire.StatusQuery{SubjectID: alice.SubjectID, Purpose: alice.Purpose, MinSeq: granted.Seq})
			require.NoError(t, err)
			assert.Equal(t, events.StateGranted, st.State)

			assert.Equal(t, 1, logs.count("level=ERROR", "component=stream-guard", tt.problem), "one loud line")

			if tt.restore == nil {
				return
			}
			tt.restore(t, js)
			require.Eventually(t, func() bool { return streamSafe(t, admin) }, 10*time.Second, 5*time.Millisecond)
			_, err = client.Revoke(ctx, alice)
			require.NoError(t, err)
			assert.Equal(t, 1, logs.count("component=stream-guard", "writes resume"))
			assert.Equal(t, 1, logs.count("level=ERROR", "component=stream-guard", tt.problem), "still one loud line")
		})
	}
}

// updateStream returns a step that changes the running stream's
// configuration through the JetStream API.
func updateStream(change func(*jetstream.StreamConfig)) func(t *testing.T, js jetstream.JetStream) {
	return func(t *testing.T, js jetstream.JetStream) {
		t.Helper()
		stream, err := js.Stream(t.Context(), wire.DefaultStream)
		require.NoError(t, err)
		cfg := stream.CachedInfo().Config
		change(&cfg)
		_, err = js.UpdateStream(t.Context(), cfg)
		require.NoError(t, err)
	}
}
