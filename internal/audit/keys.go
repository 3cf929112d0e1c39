package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Key files are PEM, as OpenSSL writes them, so that an auditor can check
// a signature with OpenSSL alone: the private key as PKCS #8 ("PRIVATE
// KEY"), the public key as PKIX ("PUBLIC KEY").
const (
	pemPrivateKey = "PRIVATE KEY"
	pemPublicKey  = "PUBLIC KEY"
)

// ErrKeyFile is matched by every error about reading a key file.
var ErrKeyFile = errors.New("key file")

// GenerateKeyFiles writes a new ed25519 key pair: the private key to
// privPath with mode 0600, the public key to pubPath with mode 0644. It
// refuses to overwrite an existing file. It returns the key's id (KeyID).
func GenerateKeyFiles(privPath, pubPath string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate ed25519 key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: privDER}), 0o600); err != nil {
		return "", err
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: pubDER}), 0o644); err != nil {
		_ = os.Remove(privPath)
		return "", err
	}
	return KeyID(pub), nil
}

// writeNew creates path with data and mode, failing if it exists.
func writeNew(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	// The umask may have narrowed the mode; never widen it beyond mode.
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return f.Close()
}

// LoadSigningKey reads an ed25519 private key written by GenerateKeyFiles
// (or `openssl genpkey -algorithm ed25519`). It refuses a file that other
// users can read or that anyone but its owner can write, as ssh does,
// with an error matching ErrKeyFile that says how to fix it.
func LoadSigningKey(path string) (*Signer, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if perm := info.Mode().Perm(); perm&0o027 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o: other users could read or change the signing key; run chmod 600 %s",
			ErrKeyFile, path, perm, path)
	}
	block, err := readPEM(path, pemPrivateKey)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKeyFile, path, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s holds a %T, not an ed25519 key", ErrKeyFile, path, key)
	}
	return NewSigner(priv), nil
}

// LoadPublicKey reads an ed25519 public key written by GenerateKeyFiles
// (or `openssl pkey -pubout`).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	block, err := readPEM(path, pemPublicKey)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKeyFile, path, err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s holds a %T, not an ed25519 key", ErrKeyFile, path, key)
	}
	return pub, nil
}

func readPEM(path, blockType string) (*pem.Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: %s is not a PEM file", ErrKeyFile, path)
	}
	if block.Type != blockType {
		return nil, fmt.Errorf("%w: %s holds a %q block, want %q", ErrKeyFile, path, block.Type, blockType)
	}
	return block, nil
}

// KeyID names a public key in checkpoints and receipts: 16 lowercase hex
// digits, the first 8 bytes of SHA-256 over the 32-byte public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Signer signs checkpoints and receipts with one ed25519 key. It is safe
// for concurrent use.
type Signer struct {
	priv ed25519.PrivateKey
	id   string
}

// NewSigner returns a Signer for priv.
func NewSigner(priv ed25519.PrivateKey) *Signer {
	return &Signer{priv: priv, id: KeyID(priv.Public().(ed25519.PublicKey))}
}

// KeyID returns the id of the signer's public key.
func (s *Signer) KeyID() string { return s.id }

// Public returns the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

// sign returns the hex ed25519 signature of msg.
func (s *Signer) sign(msg []byte) string { return hex.EncodeToString(ed25519.Sign(s.priv, msg)) }

// Keyring holds the public keys a verifier trusts, by key id.
type Keyring map[string]ed25519.PublicKey

// NewKeyring returns a keyring of the given keys.
func NewKeyring(keys ...ed25519.PublicKey) Keyring {
	r := Keyring{}
	for _, k := range keys {
		r[KeyID(k)] = k
	}
	return r
}
