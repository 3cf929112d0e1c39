package main

import (
	"bufio"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/auth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConsentdLogsJSONWithRequestContext: with --log-format json every
// line consentd writes is one JSON object; a refused request is logged
// with its endpoint, tenant and user, and no line names the person the
// requests were about.
func TestConsentdLogsJSONWithRequestContext(t *testing.T) {
	dataDir := t.TempDir()
	m := NewMain()
	m.Config.Listen, m.Config.DataDir, m.Config.KEKFile = "127.0.0.1:-1", dataDir, filepath.Join(t.TempDir(), "kek")
	m.Config.LogLevel, m.Config.LogFormat = "debug", "json"
	logs := &lockedBuffer{}
	m.Stdout, m.Stderr = io.Discard, logs
	require.NoError(t, m.Run(t.Context()))
	t.Cleanup(func() { _ = m.Close() })

	const id = "logged-4b2d@example.com"
	s := &secured{m: m, admin: connectClient(t, m.ClientURL(), adminOptions(t, dataDir)...)}
	ctx := secCtx(t)
	_, err := s.admin.Grant(ctx, events.Command{Tenant: "acme", SubjectID: id, Purpose: "newsletter"})
	require.NoError(t, err)
	writer := s.dial(t, "gw", auth.Writer, "globex")
	_, err = writer.client.Revoke(ctx, events.Command{Tenant: "acme", SubjectID: id, Purpose: "newsletter"})
	forbidden(t, err, `tenant "acme"`)
	require.NoError(t, m.Close())

	var refused []map[string]any
	lines := bufio.NewScanner(strings.NewReader(logs.String()))
	for lines.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(lines.Bytes(), &line), "not JSON: %s", lines.Text())
		assert.Contains(t, line, "level")
		if line["msg"] == "consent service: request refused" {
			refused = append(refused, line)
		}
	}
	require.Len(t, refused, 1, "the refusal is logged once")
	assert.Equal(t, "revoke", refused[0]["endpoint"])
	assert.Equal(t, "globex", refused[0]["tenant"], "the caller's tenant")
	assert.Equal(t, "gw@globex", refused[0]["user"])
	assert.NotContains(t, logs.String(), id, "no log line names the person")
}

// TestConfigRefusesAnUnknownLogFormat: --log-format is text or json.
func TestConfigRefusesAnUnknownLogFormat(t *testing.T) {
	c := DefaultConfig()
	c.LogFormat = "yaml"
	assert.EqualError(t, c.Validate(), `--log-format "yaml": want text or json`)
}
