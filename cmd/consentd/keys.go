package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/keystore"
	"github.com/consentledger/consent/ledger"
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
	path := m.kekPath()
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
	var store *keystore.Store
	err = m.retryUnanswered(ctx, "key store", func(ctx context.Context) (err error) {
		store, err = keystore.Open(ctx, js, keystore.Config{KEK: kek, Replicas: m.replicas})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("key store: %w", err)
	}
	return store, nil
}

// kekPath is the KEK file openKeys uses: --kek-file, or with the embedded
// server DATA-DIR/kek; "" for none.
func (m *Main) kekPath() string {
	if m.Config.KEKFile == "" && m.Config.Embedded() {
		return filepath.Join(absDir(m.Config.DataDir), KEKFile)
	}
	return m.Config.KEKFile
}

// subjectKeyScheme is the subject key scheme of a stream consentd
// creates: keyed (events.SubjectKeyHMAC, under each tenant's secret in the
// key store) when it has a KEK, else events.SubjectKeySHA256. An existing
// stream keeps its own (ledger.EnsureStream).
func (m *Main) subjectKeyScheme() events.SubjectKeyScheme {
	if m.kekPath() != "" {
		return events.SubjectKeyHMAC
	}
	return events.SubjectKeySHA256
}

// lookupSubjectKeys are the subject keys lookups use before the stream is
// found (while it has no leader, see leaderless.go): without a KEK,
// consentd can serve only a stream of sha256-16 keys (it refuses another
// once it finds it, and exits), so lookups use that scheme at once. With a
// KEK the scheme is the stream's, known once it is found: nil, and
// lookups answer 503 until then.
func (m *Main) lookupSubjectKeys() *ledger.SubjectKeys {
	if m.kekPath() != "" {
		return nil
	}
	keys, _ := ledger.NewSubjectKeys(events.SubjectKeySHA256, nil) // cannot fail
	return keys
}
