package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With --signing-key, consentd appends signed checkpoints that verify with
// the public key alone, and signs receipts.
func TestConsentdSignsCheckpointsAndReceipts(t *testing.T) {
	dir := t.TempDir()
	keyFile, pubFile := filepath.Join(dir, "consent.key"), filepath.Join(dir, "consent.pub")
	_, err := audit.GenerateKeyFiles(keyFile, pubFile)
	require.NoError(t, err)
	pub, err := audit.LoadPublicKey(pubFile)
	require.NoError(t, err)

	m := NewMain()
	m.Environ = func() []string {
		return []string{"CONSENTD_SIGNING_KEY=" + keyFile, "CONSENTD_CHECKPOINT_INTERVAL=1s"}
	}
	m.Stdout, m.Stderr = &bytes.Buffer{}, testWriter{t}
	require.NoError(t, m.ParseFlags([]string{"--listen", "127.0.0.1:-1", "--data-dir", filepath.Join(dir, "data"), "--log-level", "warn"}))
	assert.Equal(t, keyFile, m.Config.SigningKey)
	assert.Equal(t, time.Second, m.Config.CheckpointInterval)
	require.NoError(t, m.Run(t.Context()))
	t.Cleanup(func() { _ = m.Close() })

	client := connectClient(t, m.ClientURL(), adminOptions(t, m.Config.DataDir)...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	who := events.Command{SubjectID: "alice@example.com", Purpose: "marketing_email"}
	_, err = client.Request(ctx, who)
	require.NoError(t, err)
	last, err := client.Grant(ctx, who)
	require.NoError(t, err)

	nc, err := nats.Connect(m.ClientURL(), serviceOptions(t, m.Config.DataDir)...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(ctx, wire.DefaultStream)
	require.NoError(t, err)
	var cp *audit.Checkpoint
	require.Eventually(t, func() bool {
		msg, err := stream.GetLastMsgForSubject(ctx, events.CheckpointSubject)
		if err != nil {
			return false
		}
		cp, err = audit.VerifyCheckpoint(msg.Data, audit.NewKeyring(pub))
		require.NoError(t, err)
		return cp.UpToSeq >= last.Seq
	}, 15*time.Second, 20*time.Millisecond, "a checkpoint covering the grant within the next window")

	_, err = client.StatusAt(ctx, wire.StatusAtQuery{SubjectID: "alice@example.com", Purpose: "marketing_email", At: time.Now()})
	require.NoError(t, err)
	r, err := audit.Verify(ctx, js, audit.VerifyOptions{Keys: audit.NewKeyring(pub), Live: func(ctx context.Context) (audit.IndexDigest, error) { return client.IndexDigest(ctx) }})
	require.NoError(t, err)
	assert.True(t, r.OK(), "problems: %v", r.Problems)
	assert.GreaterOrEqual(t, r.UpToSeq, last.Seq)
	assert.True(t, r.Live.Match)

	sr, err := client.Receipt(ctx, wire.ReceiptQuery{SubjectID: "alice@example.com", Purpose: "marketing_email"})
	require.NoError(t, err)
	receipt, err := audit.VerifyReceipt(&sr, audit.NewKeyring(pub))
	require.NoError(t, err)
	assert.Equal(t, events.StateGranted, receipt.Status.State)
}

func TestConsentdRefusesAnUnsafeSigningKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "consent.key")
	_, err := audit.GenerateKeyFiles(keyFile, filepath.Join(dir, "consent.pub"))
	require.NoError(t, err)
	require.NoError(t, os.Chmod(keyFile, 0o644))

	m := NewMain()
	m.Config.Listen, m.Config.DataDir, m.Config.SigningKey = "127.0.0.1:-1", filepath.Join(dir, "data"), keyFile
	m.Stdout, m.Stderr = &bytes.Buffer{}, testWriter{t}
	err = m.Run(t.Context())
	_ = m.Close()
	require.ErrorIs(t, err, audit.ErrKeyFile)
	assert.Contains(t, err.Error(), "--signing-key")
	assert.Contains(t, err.Error(), "chmod 600")
}

// TestConsentdRefusesAPublicSigningKey: --signing-key given the .pub file
// says it is the public key and names the private one, without the advice
// to chmod it.
func TestConsentdRefusesAPublicSigningKey(t *testing.T) {
	dir := t.TempDir()
	pubFile := filepath.Join(dir, "ledger.pub")
	_, err := audit.GenerateKeyFiles(filepath.Join(dir, "ledger.key"), pubFile)
	require.NoError(t, err)

	m := NewMain()
	m.Config.Listen, m.Config.DataDir, m.Config.SigningKey = "127.0.0.1:-1", filepath.Join(dir, "data"), pubFile
	m.Stdout, m.Stderr = &bytes.Buffer{}, testWriter{t}
	err = m.Run(t.Context())
	_ = m.Close()
	require.ErrorIs(t, err, audit.ErrKeyFile)
	assert.Contains(t, err.Error(), "--signing-key: key file: "+pubFile+" is a public key")
	assert.Contains(t, err.Error(), "consentctl audit keygen")
	assert.Contains(t, err.Error(), filepath.Join(dir, "ledger.key"))
	assert.NotContains(t, err.Error(), "chmod")
}
