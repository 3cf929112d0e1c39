package keystore

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGenerateAndLoadKEK(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.pem")
	kek, err := GenerateKEK(path)
	require.NoError(t, err)
	assert.Regexp(t, `^[0-9a-f]{16}$`, kek.ID())

	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	block, rest := pem.Decode(raw)
	require.NotNil(t, block)
	assert.Equal(t, "CONSENT LEDGER KEK", block.Type)
	assert.Len(t, block.Bytes, KEKSize)
	assert.Empty(t, rest)

	loaded, err := LoadKEK(path)
	require.NoError(t, err)
	assert.Equal(t, kek.ID(), loaded.ID())
	wrapped := kek.wrap([]byte("data key"), []byte("aad"))
	plain, err := loaded.unwrap(wrapped, []byte("aad"))
	require.NoError(t, err)
	assert.Equal(t, []byte("data key"), plain)
	_, err = loaded.unwrap(wrapped, []byte("other aad"))
	assert.Error(t, err, "the additional data binds the wrapped key")

	other, err := GenerateKEK(filepath.Join(t.TempDir(), "kek.pem"))
	require.NoError(t, err)
	assert.NotEqual(t, kek.ID(), other.ID())
}

func TestGenerateKEKRefusesExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.pem")
	first, err := GenerateKEK(path)
	require.NoError(t, err)
	_, err = GenerateKEK(path)
	require.ErrorIs(t, err, ErrKEKExists)
	assert.ErrorContains(t, err, path+": KEK file exists")
	loaded, err := LoadKEK(path)
	require.NoError(t, err)
	assert.Equal(t, first.ID(), loaded.ID(), "the first KEK is kept")
}

func TestLoadKEKRefusesOpenModes(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o602} {
		path := filepath.Join(t.TempDir(), "kek.pem")
		_, err := GenerateKEK(path)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(path, mode))
		_, err = LoadKEK(path)
		require.Error(t, err, "%04o", mode)
		assert.Contains(t, err.Error(), path, "%04o", mode)
		assert.Contains(t, err.Error(), "chmod 600 "+path, "%04o", mode)
	}
	path := filepath.Join(t.TempDir(), "kek.pem")
	_, err := GenerateKEK(path)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(path, 0o400))
	_, err = LoadKEK(path)
	assert.NoError(t, err, "read-only for the owner is fine")
}

func TestLoadKEKRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, data, 0o600))
		return path
	}
	short := pem.EncodeToMemory(&pem.Block{Type: kekPEMType, Bytes: make([]byte, 16)})
	otherType := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: make([]byte, 32)})
	good := pem.EncodeToMemory(&pem.Block{Type: kekPEMType, Bytes: make([]byte, 32)})
	for _, c := range []struct {
		path string
		want string
	}{
		{filepath.Join(dir, "missing.pem"), "no such file"},
		{dir, "is not a regular file"},
		{write("empty.pem", nil), `no PEM block of type "CONSENT LEDGER KEK"`},
		{write("base64.txt", []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")), "no PEM block"},
		{write("type.pem", otherType), "no PEM block"},
		{write("short.pem", short), "holds 16 bytes, not 32"},
		{write("trailing.pem", append(good, "junk"...)), "data after its PEM block"},
	} {
		_, err := LoadKEK(c.path)
		require.Error(t, err, c.path)
		assert.Contains(t, err.Error(), c.path)
		assert.Contains(t, err.Error(), c.want)
	}
	_, err := NewKEK(make([]byte, 31))
	assert.ErrorContains(t, err, "32 bytes, not 31")
}

func TestLoadKEKUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	path := filepath.Join(t.TempDir(), "kek.pem")
	_, err := GenerateKEK(path)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(path, 0o000))
	_, err = LoadKEK(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), "permission denied")
}

// Processes racing to make one KEK file get one KEK, and nobody ever sees
// a file partly written.
func TestGenerateKEKRaceMakesOneKEK(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.pem")
	var wg sync.WaitGroup
	made := make(chan *KEK, 8)
	for range 8 {
		wg.Go(func() {
			kek, err := GenerateKEK(path)
			if err != nil {
				assert.ErrorIs(t, err, ErrKEKExists)
				loaded, err := LoadKEK(path)
				if assert.NoError(t, err, "the file is whole once it is there") {
					made <- loaded
				}
				return
			}
			made <- kek
		})
	}
	wg.Wait()
	close(made)
	var ids []string
	for kek := range made {
		ids = append(ids, kek.ID())
	}
	require.Len(t, ids, 8)
	for _, id := range ids {
		assert.Equal(t, ids[0], id)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left")
}
