package projector

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/consentledger/consent/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenRefusesAnIndexInUse(t *testing.T) {
	dir := t.TempDir()
	idx := openIndex(t, dir, IndexOptions{})
	_, err := Open(dir, IndexOptions{})
	require.ErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), dir)

	require.NoError(t, idx.Close())
	require.NoError(t, idx.Close(), "Close twice is harmless")
	again := openIndex(t, dir, IndexOptions{})
	assert.Zero(t, again.Checkpoint())
}

func TestOpenRefusesForeignData(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
	require.NoError(t, err)
	require.NoError(t, db.Set([]byte("something else"), []byte("x"), pebble.Sync))
	require.NoError(t, db.Close())
	_, err = Open(dir, IndexOptions{})
	require.ErrorIs(t, err, ErrFormat)

	// A newer format of ours.
	dir = t.TempDir()
	idx := openIndex(t, dir, IndexOptions{})
	require.NoError(t, idx.db.Set(metaKey(metaFormat), []byte{0, 0, 0, 0, 0, 0, 0, indexFormat + 1}, pebble.Sync))
	require.NoError(t, idx.Close())
	_, err = Open(dir, IndexOptions{})
	require.ErrorIs(t, err, ErrFormat)
}

func TestOpenCreatesTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	openIndex(t, dir, IndexOptions{})
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.True(t, fi.IsDir())
}

// commitState writes one consent state and the checkpoint as the
// projector does.
func commitState(t *testing.T, idx *Index, c events.Consent, checkpoint uint64) {
	t.Helper()
	b, err := idx.newBatch()
	require.NoError(t, err)
	defer b.Close()
	k := c.Key()
	key := appendConsentKey(nil, k)
	require.NoError(t, b.Set(key, appendConsent(nil, &c), nil))
	require.NoError(t, idx.commit(b, map[string]events.Consent{string(key): c}, nil, checkpoint, idx.ViolationCount()))
}

func TestIndexReadiness(t *testing.T) {
	k := events.Key{Tenant: "t", SubjectID: "s", Purpose: "p"}
	ctx := context.Background()

	idx := openIndex(t, t.TempDir(), IndexOptions{})
	_, _, err := idx.Consent(ctx, k, 0)
	require.ErrorIs(t, err, events.ErrNotReady, "no projector has run")
	_, _, err = idx.Consents(ctx, k, 0)
	require.ErrorIs(t, err, events.ErrNotReady)

	require.NoError(t, idx.claim())
	_, _, err = idx.Consent(ctx, k, 0)
	require.ErrorIs(t, err, events.ErrNotReady, "catching up")
	idx.setReady()
	c, seq, err := idx.Consent(ctx, k, 0)
	require.NoError(t, err)
	assert.Equal(t, events.NewConsent(k), c)
	assert.Zero(t, seq)

	idx.release(true)
	_, _, err = idx.Consent(ctx, k, 5)
	require.ErrorIs(t, err, events.ErrNotReady, "a failed projector fails waiters at once")

	static := openIndex(t, t.TempDir(), IndexOptions{ReadyOnOpen: true})
	_, _, err = static.Consent(ctx, k, 0)
	require.NoError(t, err)
	require.NoError(t, static.Close())
	_, _, err = static.Consent(ctx, k, 0)
	require.ErrorIs(t, err, events.ErrNotReady)
	_, err = static.Violations()
	require.ErrorIs(t, err, ErrClosed)
}

func TestMinSeqWaitsForTheCommit(t *testing.T) {
	idx := openIndex(t, t.TempDir(), IndexOptions{ReadyOnOpen: true})
	k := events.Key{Tenant: "t", SubjectID: "s", Purpose: "p"}
	granted := events.Consent{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose, State: events.StateGranted,
		PolicyVersion: 1, UpdatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Seq: 3, EventID: "e3", Hash: "h3"}

	type result struct {
		c   events.Consent
		seq uint64
		err error
	}
	results := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		c, seq, err := idx.Consent(ctx, k, 3)
		results <- result{c, seq, err}
	}()

	commitState(t, idx, events.Consent{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose, State: events.StateRequested, Seq: 1}, 2)
	select {
	case r := <-results:
		t.Fatalf("returned before seq 3 was applied: %+v", r)
	default:
	}
	commitState(t, idx, granted, 3)
	r := <-results
	require.NoError(t, r.err)
	assert.Equal(t, uint64(3), r.seq)
	assert.Equal(t, granted, r.c)

	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	_, seq, err := idx.Consent(short, k, 4)
	require.ErrorIs(t, err, events.ErrStale)
	assert.Equal(t, uint64(3), seq)

	// Closing wakes a waiter with ErrNotReady.
	errs := make(chan error, 1)
	go func() {
		_, _, err := idx.Consents(ctx, k, 10)
		errs <- err
	}()
	require.NoError(t, idx.Close())
	require.ErrorIs(t, <-errs, events.ErrNotReady)
}

// TestIndexMarkCurrent: an index marked current answers reads at its
// checkpoint without a projector, waits for a later min_seq, and stops
// answering once closed.
func TestIndexMarkCurrent(t *testing.T) {
	k := events.Key{Tenant: "t", SubjectID: "s", Purpose: "p"}
	ctx := context.Background()
	dir := t.TempDir()
	idx := openIndex(t, dir, IndexOptions{})
	c := events.NewConsent(k)
	c.State = events.StateRevoked
	commitState(t, idx, c, 7)
	_, _, err := idx.Consent(ctx, k, 0)
	require.ErrorIs(t, err, events.ErrNotReady, "no projector has run")

	idx.MarkCurrent()
	got, seq, err := idx.Consent(ctx, k, 0)
	require.NoError(t, err)
	assert.Equal(t, events.StateRevoked, got.State)
	assert.Equal(t, uint64(7), seq)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, _, err = idx.Consent(short, k, 8)
	require.ErrorIs(t, err, events.ErrStale, "a later min_seq waits for a projector")

	require.NoError(t, idx.Close())
	idx.MarkCurrent()
	assert.False(t, idx.Ready())
}

// The index's block cache keeps blocks beyond the memtables Pebble
// reserves out of it: lookups of absent consents (every new consent's
// first fold, every grant to a new person) find their tables' index and
// filter blocks in memory after the first reads. With Pebble's default
// cache of 8 MiB, the two 4 MiB memtables took all of it and no read hit.
func TestIndexCachesBlocksBeyondItsMemtables(t *testing.T) {
	idx := openIndex(t, t.TempDir(), IndexOptions{ReadyOnOpen: true})
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const batches, perBatch = 30, 5000
	for b := range batches {
		batch, err := idx.newBatch()
		require.NoError(t, err)
		for j := range perBatch {
			n := b*perBatch + j
			k := events.Key{Tenant: "acme", SubjectID: fmt.Sprintf("person-%d@example.com", n), Purpose: "p"}
			c := events.Consent{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose, State: events.StateGranted,
				PolicyVersion: 1, UpdatedAt: at, Seq: uint64(n + 1),
				EventID: "0190f1e2-0000-7000-8000-000000000001", Hash: "d88d39f02e30b79bf21166f97651eab7de18f64267d7eb07e8ac4d868bbf78b6"}
			require.NoError(t, batch.Set(appendConsentKey(nil, k), appendConsent(nil, &c), nil))
		}
		require.NoError(t, idx.commit(batch, nil, nil, uint64((b+1)*perBatch), 0))
		require.NoError(t, batch.Close())
	}
	tables := 0
	for _, l := range idx.db.Metrics().Levels {
		tables += int(l.TablesCount)
	}
	require.Positive(t, tables, "the consents should have reached the tables")

	lookUp := func(round int) {
		for i := range 2000 {
			k := events.Key{Tenant: "acme", SubjectID: fmt.Sprintf("nobody-%d-%d@example.com", round, i), Purpose: "p"}
			_, found, err := idx.get(appendConsentKey(nil, k), k)
			require.NoError(t, err)
			require.False(t, found)
		}
	}
	lookUp(0) // the first reads fill the cache
	before := idx.db.Metrics().BlockCache
	lookUp(1)
	after := idx.db.Metrics().BlockCache
	hits, misses := after.Hits-before.Hits, after.Misses-before.Misses
	t.Logf("%d tables; second round of lookups: %d block cache hits, %d misses", tables, hits, misses)
	// Compactions running meanwhile make new tables, whose blocks are
	// read once more: most reads, not all, hit.
	assert.Greater(t, hits, misses, "the block cache should answer most block reads")
}
