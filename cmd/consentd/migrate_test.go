package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serviceAccountKey is the public key of the service account of the
// authority in dataDir/auth (consentd stopped).
func serviceAccountKey(t *testing.T, dataDir string) string {
	t.Helper()
	a, err := auth.Open(filepath.Join(dataDir, "auth"))
	require.NoError(t, err)
	return a.ServiceAccountKey()
}

// recordWithoutAuth runs consentd without authentication on dataDir,
// records a grant and a revocation of alice's newsletter consent and stops
// it; it returns the two events' sequences.
func recordWithoutAuth(t *testing.T, dataDir string) []uint64 {
	t.Helper()
	m := runMain(t, dataDir, "--listen", "127.0.0.1:-1", "--insecure-no-auth")
	client := connectClient(t, m.ClientURL())
	granted, err := client.Grant(stepContext(t), events.Command{SubjectID: "alice", Purpose: "newsletter", Actor: "form"})
	require.NoError(t, err)
	revoked, err := client.Revoke(stepContext(t), events.Command{SubjectID: "alice", Purpose: "newsletter", Reason: "moved"})
	require.NoError(t, err)
	require.NoError(t, m.Close())
	return []uint64{granted.Seq, revoked.Seq}
}

// TestAuthenticationKeepsTheStreamOfAnUnauthenticatedDataDir: consentd
// with its default (authentication) on a data directory that consentd
// without authentication wrote moves the stream from the global account's
// store (jetstream/$G) into the service account's: every event is still
// there, read with the admin's credentials.
func TestAuthenticationKeepsTheStreamOfAnUnauthenticatedDataDir(t *testing.T) {
	dataDir := t.TempDir()
	seqs := recordWithoutAuth(t, dataDir)
	global := filepath.Join(dataDir, "jetstream", "$G")
	require.DirExists(t, filepath.Join(global, "streams", wire.DefaultStream))

	m := runMain(t, dataDir, "--listen", "127.0.0.1:-1")
	admin := connectClient(t, m.ClientURL(), adminOptions(t, dataDir)...)
	h, err := admin.History(stepContext(t), wire.HistoryQuery{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	require.Len(t, h.Events, 2)
	for i, want := range []events.Type{events.TypeGranted, events.TypeRevoked} {
		assert.Equal(t, seqs[i], h.Events[i].Seq)
		assert.Equal(t, want, h.Events[i].Event.Type)
		assert.Empty(t, h.Events[i].Event.RecordedBy, "recorded without authentication")
	}
	st, err := admin.Status(stepContext(t), wire.StatusQuery{SubjectID: "alice", Purpose: "newsletter", MinSeq: seqs[1]})
	require.NoError(t, err)
	assert.Equal(t, events.StateRevoked, st.State)
	// The trail goes on from there, now with the recorder's name.
	again, err := admin.Grant(stepContext(t), events.Command{SubjectID: "alice", Purpose: "newsletter"})
	require.NoError(t, err)
	assert.Equal(t, seqs[1]+1, again.Seq)
	assert.Equal(t, "admin@_all", again.Event.RecordedBy)
	require.NoError(t, m.Close())

	assert.NoDirExists(t, global)
	assert.DirExists(t, filepath.Join(dataDir, "jetstream", serviceAccountKey(t, dataDir), "streams", wire.DefaultStream))
}

// TestAuthenticationRefusesADataDirWithBothStores: a data directory
// holding a stream in the global account's store and one in the service
// account's (consentd ran with and without authentication on it) is
// refused, naming both directories; nothing is moved.
func TestAuthenticationRefusesADataDirWithBothStores(t *testing.T) {
	dataDir := t.TempDir()
	m := runMain(t, dataDir, "--listen", "127.0.0.1:-1")
	admin := connectClient(t, m.ClientURL(), adminOptions(t, dataDir)...)
	_, err := admin.Grant(stepContext(t), events.Command{SubjectID: "bob", Purpose: "newsletter"})
	require.NoError(t, err)
	require.NoError(t, m.Close())
	// A stream from a consentd without authentication lands beside it.
	other := t.TempDir()
	recordWithoutAuth(t, other)
	global := filepath.Join(dataDir, "jetstream", "$G")
	require.NoError(t, os.Rename(filepath.Join(other, "jetstream", "$G"), global))

	service := filepath.Join(dataDir, "jetstream", serviceAccountKey(t, dataDir))
	again := NewMain()
	again.Environ = func() []string { return nil }
	again.Stdout, again.Stderr = io.Discard, testWriter{t}
	require.NoError(t, again.ParseFlags([]string{"--data-dir", dataDir, "--listen", "127.0.0.1:-1", "--log-level", "error"}))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = again.Run(ctx)
	_ = again.Close()
	require.Error(t, err)
	assert.ErrorContains(t, err, global+" and "+service+" both hold a JetStream store")
	assert.ErrorContains(t, err, "move one away")
	assert.DirExists(t, global)
	assert.DirExists(t, filepath.Join(service, "streams", wire.DefaultStream))
}
