package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/consentledger/consent/internal/auth"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// adminOptions are the connect options of the administrator's
// credentials that consentd wrote into dataDir.
func adminOptions(t *testing.T, dataDir string) []nats.Option {
	t.Helper()
	creds, err := os.ReadFile(filepath.Join(dataDir, AdminCredsFile))
	require.NoError(t, err)
	opts, err := auth.ConnectOptions(creds)
	require.NoError(t, err)
	return opts
}

// serviceCredsFile writes credentials of the service account, the one
// that holds the stream, minted from the authority in dataDir/auth, into
// a file of the test's and returns its path: what only consentd's own
// connections (and an operator who holds the data directory) may use.
func serviceCredsFile(t *testing.T, dataDir string) string {
	t.Helper()
	a, err := auth.Open(filepath.Join(dataDir, "auth"))
	require.NoError(t, err)
	creds, err := a.ServiceUser()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "consentd.creds")
	require.NoError(t, os.WriteFile(path, creds, 0o600))
	return path
}

// serviceOptions are the connect options of the service account (see
// serviceCredsFile), for tests that read or damage the stream directly.
func serviceOptions(t *testing.T, dataDir string) []nats.Option {
	t.Helper()
	return []nats.Option{nats.UserCredentials(serviceCredsFile(t, dataDir))}
}

func TestConsentdRefusesCredentialsOthersMayRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "consentd.creds")
	require.NoError(t, os.WriteFile(path, []byte("not read"), 0o644))
	m := NewMain()
	m.Config.NATSURL, m.Config.NATSCreds, m.Config.DataDir = "nats://127.0.0.1:1", path, t.TempDir()
	m.Stdout, m.Stderr = io.Discard, io.Discard
	err := m.Run(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--nats-creds "+path+": mode 0644 lets other users read these credentials; run chmod 600")
	require.NoError(t, m.Close())
}
