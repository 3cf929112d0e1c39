package audit_test

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"

	"github.com/consentledger/consent/internal/audit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newSigner writes a key pair under t.TempDir and loads both halves.
func newSigner(t testing.TB) (*audit.Signer, ed25519.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "consent.key"), filepath.Join(dir, "consent.pub")
	_, err := audit.GenerateKeyFiles(priv, pub)
	require.NoError(t, err)
	s, err := audit.LoadSigningKey(priv)
	require.NoError(t, err)
	p, err := audit.LoadPublicKey(pub)
	require.NoError(t, err)
	return s, p
}

func TestGenerateKeyFiles(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "consent.key"), filepath.Join(dir, "consent.pub")
	id, err := audit.GenerateKeyFiles(priv, pub)
	require.NoError(t, err)
	assert.Regexp(t, `^[0-9a-f]{16}$`, id)

	info, err := os.Stat(priv)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the private key is the owner's only")
	info, err = os.Stat(pub)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), info.Mode().Perm())

	s, err := audit.LoadSigningKey(priv)
	require.NoError(t, err)
	p, err := audit.LoadPublicKey(pub)
	require.NoError(t, err)
	assert.Equal(t, id, s.KeyID())
	assert.Equal(t, id, audit.KeyID(p))
	assert.True(t, p.Equal(s.Public()))

	_, err = audit.GenerateKeyFiles(priv, filepath.Join(dir, "other.pub"))
	require.Error(t, err, "an existing key is never overwritten")
	kept, err := audit.LoadSigningKey(priv)
	require.NoError(t, err)
	assert.Equal(t, id, kept.KeyID())
}

func TestLoadKeyRefusals(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "consent.key"), filepath.Join(dir, "consent.pub")
	_, err := audit.GenerateKeyFiles(priv, pub)
	require.NoError(t, err)

	require.NoError(t, os.Chmod(priv, 0o644))
	_, err = audit.LoadSigningKey(priv)
	require.ErrorIs(t, err, audit.ErrKeyFile)
	assert.Contains(t, err.Error(), "chmod 600")
	require.NoError(t, os.Chmod(priv, 0o640))
	_, err = audit.LoadSigningKey(priv)
	require.NoError(t, err, "group-readable is allowed (a secret mounted for a group)")

	_, err = audit.LoadSigningKey(pub)
	require.ErrorIs(t, err, audit.ErrKeyFile, "a public key is not a signing key")
	_, err = audit.LoadPublicKey(priv)
	require.ErrorIs(t, err, audit.ErrKeyFile)

	junk := filepath.Join(dir, "junk")
	require.NoError(t, os.WriteFile(junk, []byte("not pem"), 0o600))
	_, err = audit.LoadPublicKey(junk)
	require.ErrorIs(t, err, audit.ErrKeyFile)
	_, err = audit.LoadSigningKey(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, audit.ErrKeyFile)
	require.ErrorIs(t, err, os.ErrNotExist)
}
