package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/consentledger/consent/internal/keystore"
	"github.com/nats-io/nats.go/jetstream"
)

// KEKFile is the name, in the data directory, of the key-encryption key
// the embedded server's consentd uses without --kek-file.
const KEKFile = "kek"

// openKeys opens the key store of the persons' data keys in the stream's
// account, under the KEK of --kek-file (with the embedded server, by
// default DATA-DIR/kek), made there (mode 0600) when the file does not
// exist. It returns nil with --nats-url and without --kek-file: events are
// then written with personal fields in the clear (schema version 1).
func (m *Main) openKeys(ctx context.Context, js jetstream.JetStream) (*keystore.Store, error) {
	path := m.Config.KEKFile
	if path == "" && m.Config.Embedded() {
		path = filepath.Join(absDir(m.Config.DataDir), KEKFile)
	}
	if path == "" {
		m.log.Warn("no --kek-file: events are written with personal data in the clear, and erasing a person cannot make it unreadable")
		return nil, nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		// Instances sharing the file may race to make it: one does, the
		// others load it.
		_, err := keystore.GenerateKEK(path)
		switch {
		case err == nil:
			m.log.Info("made the key-encryption key; keep a copy apart from the data directory, or every encrypted personal field is lost with it", "file", path)
		case !errors.Is(err, keystore.ErrKEKExists):
			return nil, fmt.Errorf("--kek-file: %w", err)
		}
	}
	kek, err := keystore.LoadKEK(path)
	if err != nil {
		return nil, fmt.Errorf("--kek-file: %w", err)
	}
	store, err := keystore.Open(ctx, js, keystore.Config{KEK: kek, Replicas: m.replicas})
	if err != nil {
		return nil, fmt.Errorf("key store: %w", err)
	}
	return store, nil
}
