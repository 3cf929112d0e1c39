package keystore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

// kekPEMType is the PEM block type of a KEK file.
const kekPEMType = "CONSENT LEDGER KEK"

// KEK is a key-encryption key: every key in the store is wrapped under it
// with AES-256-GCM. It lives in a file outside NATS (GenerateKEK, LoadKEK),
// so a copy of the JetStream store alone reveals no key.
type KEK struct {
	id   string
	aead cipher.AEAD
}

// NewKEK makes a KEK of 32 bytes of key. It returns an error if key has
// another length. The KEK keeps no reference to key.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != KEKSize {
		return nil, fmt.Errorf("keystore: a KEK has %d bytes, not %d", KEKSize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(key)
	return &KEK{id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// ID names the KEK in the records wrapped under it: lowercase hex of the
// first 8 bytes of SHA-256 of the key. It reveals nothing useful about the
// key and tells KEKs apart during a rotation.
func (k *KEK) ID() string { return k.id }

// ErrKEKExists is matched by the error GenerateKEK returns when path
// exists: a KEK that is replaced loses every key wrapped under it.
var ErrKEKExists = errors.New("KEK file exists; a new KEK goes to a new file")

// GenerateKEK writes a new random KEK to path, mode 0600, and returns it.
// The file is PEM: a block of type "CONSENT LEDGER KEK" holding the 32 key
// bytes. It is written whole beside path and then linked into place, so
// that whoever sees path sees the whole KEK, and two processes racing to
// make it get one KEK: it refuses to overwrite an existing file, with an
// error matching ErrKEKExists.
func GenerateKEK(path string) (*KEK, error) {
	key := make([]byte, KEKSize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	defer clear(key)
	kek, err := NewKEK(key)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("keystore: %s: %w", path, ErrKEKExists)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("keystore: KEK file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	data := pem.EncodeToMemory(&pem.Block{Type: kekPEMType, Bytes: key})
	defer clear(data)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: write KEK file %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("keystore: %s: %w", path, ErrKEKExists)
		}
		return nil, fmt.Errorf("keystore: KEK file: %w", err)
	}
	return kek, nil
}

// LoadKEK reads the KEK file that GenerateKEK wrote. It refuses a file that
// group or others may read or write (naming the file and `chmod 600`), one
// that is not a single PEM block of type "CONSENT LEDGER KEK", and a key
// that is not 32 bytes.
func LoadKEK(path string) (*KEK, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: KEK file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("keystore: KEK file %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("keystore: KEK file %s has mode %04o, open to group or others; run chmod 600 %s", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: KEK file: %w", err)
	}
	defer clear(data)
	block, rest := pem.Decode(data)
	if block == nil || block.Type != kekPEMType {
		return nil, fmt.Errorf("keystore: KEK file %s holds no PEM block of type %q", path, kekPEMType)
	}
	defer clear(block.Bytes)
	if len(block.Bytes) != KEKSize {
		return nil, fmt.Errorf("keystore: KEK file %s holds %d bytes, not %d", path, len(block.Bytes), KEKSize)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("keystore: KEK file %s has data after its PEM block", path)
	}
	return NewKEK(block.Bytes)
}

// wrap seals plain under the KEK: a random 12-byte nonce followed by the
// AES-256-GCM ciphertext and tag. aad binds the result to its record.
func (k *KEK) wrap(plain, aad []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	_, _ = rand.Read(nonce) // never fails: crypto/rand crashes the program instead (Go 1.24+)
	return k.aead.Seal(nonce, nonce, plain, aad)
}

// unwrap opens what wrap sealed under the same aad.
func (k *KEK) unwrap(wrapped, aad []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(wrapped) < n+k.aead.Overhead() {
		return nil, errors.New("wrapped key too short")
	}
	return k.aead.Open(nil, wrapped[:n], wrapped[n:], aad)
}
