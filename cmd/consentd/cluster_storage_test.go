package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/keystore"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// storageConsents is how many consents TestStorageCostPerConsent writes.
// The figures in docs/cluster.md come from a larger run:
//
//	go test -run TestStorageCostPerConsent -storage-consents 100000 -v ./cmd/consentd
var storageConsents = flag.Int("storage-consents", 1000, "consents TestStorageCostPerConsent writes")

// TestStorageCostPerConsent measures what consents cost: in the stream
// (the bytes JetStream accounts for each message, and its store on disk)
// and in a consentd index (Pebble on disk as written, and after a flush
// and full compaction, as it settles over time). Each consent is
// one grant with the fields a signup dialog records. The figures are
// logged per consent and per million; the test checks that they are
// consistent with what was written. It measures both as consentd writes
// them by default (sealed: personal fields encrypted, keyed subject keys,
// one data key per person in the key bucket) and in the clear.
func TestStorageCostPerConsent(t *testing.T) {
	t.Run("sealed", func(t *testing.T) { measureStorage(t, true) })
	t.Run("clear", func(t *testing.T) { measureStorage(t, false) })
}

func measureStorage(t *testing.T, sealed bool) {
	n := *storageConsents
	s, nc, js := natstest.Run(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	defer cancel()
	opts := ledger.Options{GroupCommit: &ledger.GroupCommit{}}
	streamOpts := ledger.StreamOptions{}
	var keys *keystore.Store
	if sealed {
		kek, err := keystore.GenerateKEK(filepath.Join(t.TempDir(), "kek"))
		require.NoError(t, err)
		keys, err = keystore.Open(ctx, js, keystore.Config{KEK: kek})
		require.NoError(t, err)
		opts.Keys, streamOpts.SubjectKeys = keys, events.SubjectKeyHMAC
	}
	stream, err := ledger.EnsureStream(ctx, js, streamOpts)
	require.NoError(t, err)
	l := ledger.New(js, stream, opts)

	var payloadBytes atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || t.Failed() {
					return
				}
				r, err := l.Append(ctx, events.KindGrant, events.Command{
					SubjectID: fmt.Sprintf("user-%08d@example.com", i), Purpose: "marketing_email",
					Actor: "subject", Method: "dialog", Evidence: json.RawMessage(`{"ip":"198.51.100.7","form":"signup-v3"}`),
					IdempotencyKey: fmt.Sprintf("signup-%08d", i),
				})
				if !assert.NoError(t, err) {
					return
				}
				payload, err := json.Marshal(r.Event)
				require.NoError(t, err)
				payloadBytes.Add(int64(len(payload)))
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())

	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(n), info.State.Msgs)
	assert.GreaterOrEqual(t, info.State.Bytes, uint64(payloadBytes.Load()), "the stream holds at least the events")
	storeBytes := dirSize(t, s.StoreDir())

	// The index of one consentd, built by the projector.
	indexDir := t.TempDir()
	idx, err := projector.Open(indexDir, projector.IndexOptions{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	p := projector.New(js, idx, projector.Options{Logger: slog.New(slog.DiscardHandler)})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	_, err = idx.Wait(ctx, info.State.LastSeq)
	require.NoError(t, err)
	stop()
	require.NoError(t, <-done)
	require.NoError(t, idx.Close())
	indexAsWritten := dirSize(t, indexDir)
	indexSettled := settledPebbleSize(t, indexDir)

	per := func(total uint64) float64 { return float64(total) / float64(n) }
	mib := func(total uint64) float64 { return per(total) * 1e6 / (1 << 20) }
	t.Logf("%d consents (one grant event each, %.0f bytes of JSON on average; %s)", n, per(uint64(payloadBytes.Load())), nc.ConnectedServerVersion())
	t.Logf("stream, accounted (StreamInfo.State.Bytes): %.0f B/consent, %.0f MiB per million, per replica", per(info.State.Bytes), mib(info.State.Bytes))
	t.Logf("server store on disk (every stream):         %.0f B/consent, %.0f MiB per million, per replica", per(storeBytes), mib(storeBytes))
	t.Logf("index on disk as written (WAL, memtables):   %.0f B/consent, %.0f MiB per million", per(indexAsWritten), mib(indexAsWritten))
	t.Logf("index settled (flushed, compacted tables):  %.0f B/consent, %.0f MiB per million", per(indexSettled), mib(indexSettled))
	if sealed {
		keyInfo, err := keys.Bucket().Status(ctx)
		require.NoError(t, err)
		t.Logf("key bucket (%s), accounted:               %.0f B/consent, %.0f MiB per million (one data key per person, pool included)",
			keyInfo.Bucket(), per(keyInfo.Bytes()), mib(keyInfo.Bytes()))
	}
	assert.Less(t, indexSettled, info.State.Bytes, "the index keeps less than the stream")
}

// settledPebbleSize flushes and fully compacts the Pebble store in dir, as
// it ends up over time, and returns the bytes of its live tables (the WAL
// and tables a compaction has made obsolete are left out: they go away).
func settledPebbleSize(t *testing.T, dir string) uint64 {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Flush())
	require.NoError(t, db.Compact(t.Context(), []byte{0}, []byte{0xff, 0xff, 0xff, 0xff}, false))
	return uint64(db.Metrics().Total().TablesSize)
}

// dirSize returns the bytes of the files under dir.
func dirSize(t *testing.T, dir string) uint64 {
	t.Helper()
	var total uint64
	require.NoError(t, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += uint64(info.Size())
		return nil
	}))
	return total
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)           {}
func (quietPebble) Errorf(string, ...any)          {}
func (quietPebble) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
