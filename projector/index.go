// Package projector folds the CONSENT stream into a Pebble index that
// answers status lookups without touching the stream.
//
// An Index is the read model: the folded events.Consent of every consent
// that has events, the integrity violations met on the way, and the
// checkpoint (the last stream sequence applied), all written together in
// one Pebble batch per commit. A Projector is its only writer: it reads the
// stream in order from checkpoint+1 (see feed), checks every event and
// folds it with events.Evolve. The index holds nothing the stream does not:
// it can be deleted at any time and rebuilt.
//
// Every message is checked before it is folded: it must decode
// (events.Decode), carry a matching Consent-Event-Type header, come on its
// own consent's subject (tenant, purpose and subject key), carry a hash
// that matches its content (events.VerifyHash) and link, by prev_hash, to
// the hash of the consent's last applied event (events.CheckMessage and the
// link: the rule the ledger's write path applies too). A message that fails
// is not applied: it is stored as a Violation at its sequence, marks the
// consent of its subject (taint.go: the consent then reads as
// events.StateIntegrityViolation until a consent.quarantined clears it), is
// logged, counted in Health, and projection goes on. What the projector
// must not get past (a gap in stream sequences, or an event a newer ledger
// wrote: a newer schema version or an unknown type, sealed with a hash that
// matches, on a consent's subject) stops it with a *StopError before that
// message, never skipping it.
package projector

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/consentledger/consent/events"
)

// indexFormat is the version of the key and value layout. Open wipes an
// index of an older format, which the projector then rebuilds from the
// stream, and refuses one of a newer format with ErrFormat. Format 2 keys
// consents by subject key instead of subject id.
const indexFormat = 2

// errOlderFormat is what load returns for an index Open must wipe.
var errOlderFormat = errors.New("projector: index of an older format")

// DefaultSyncInterval is how often, at most, a commit of the index is
// fsynced when IndexOptions.SyncInterval is zero.
const DefaultSyncInterval = time.Second

// IndexOptions configures an Index.
type IndexOptions struct {
	// SyncInterval bounds how much of the index a crash can lose: a
	// commit is fsynced when the last fsync is older than this. Zero means
	// DefaultSyncInterval; a negative value fsyncs every commit.
	//
	// Commits in between use pebble.NoSync, which Pebble writes to its WAL
	// in the background. That is safe because the stream is the source of
	// truth and every batch carries its own checkpoint: after a crash
	// Pebble recovers a prefix of the committed batches, so a lost tail
	// only moves the checkpoint back and the projector applies those
	// events again, exactly once (TestProjectorSurvivesSIGKILL loses a few
	// hundred commits this way and ends equal to a clean fold). Readers
	// see every commit at once either way; what a sync per commit would
	// buy is only less replay after a crash, at ~0.4 ms per commit.
	SyncInterval time.Duration

	// ReadyOnOpen makes the index answer as soon as it is open, without a
	// projector catching up first: for offline tools and tests. Otherwise
	// reads return events.ErrNotReady until a projector runs on the index
	// and has applied what the stream held when it started.
	ReadyOnOpen bool

	// Logger receives Pebble's errors; default slog.Default().
	Logger *slog.Logger
}

// Index is the Pebble-backed read model of the stream. It is safe for
// concurrent use; reads never block the projector. It implements
// ledger.StateReader.
type Index struct {
	opts IndexOptions
	dir  string

	// mu guards db against Close: readers and the projector's commits hold
	// it shared, Close exclusively.
	mu        sync.RWMutex
	db        *pebble.DB
	closeLock func() error // releases the directory lock

	hot hotStates // recently looked-up states (hot.go)

	checkpoint atomic.Uint64
	violations atomic.Uint64
	tainted    atomic.Int64 // consents with a taint (taint.go); 0: lookups skip them
	closed     atomic.Bool
	ready      atomic.Bool // answers reads (see IndexOptions.ReadyOnOpen)
	running    atomic.Bool // a projector holds the index
	failed     atomic.Bool // the last projector stopped on an error

	// advanced is closed and replaced whenever the checkpoint advances or
	// the readiness changes; waiters for min_seq select on it.
	notifyMu sync.Mutex
	advanced chan struct{}
	waiters  seqWaiters // callers of Wait for a sequence, woken by notify (wait.go)

	streamSeq atomic.Uint64 // the stream's last sequence as the projector last saw it (StreamSeq)

	registry purposeRegistry // the purposes, in memory (purpose.go)

	// Writer-side state, touched only by the projector holding the index.
	states   *pebble.Iterator // lookup's reader of consent states, nil between commits (writer.go)
	stream   streamIdentity
	lastSync time.Time
}

// Open opens the index in dir, creating the directory and an empty index
// when there is none. An index an older version wrote (an older format
// stamp) is deleted, with a warning logged, and opened empty: the
// projector rebuilds it from the stream. It fails at once with an error
// matching ErrLocked when the directory is open elsewhere (another process
// or another Open), and with ErrFormat for an index of a newer version or
// a directory holding a Pebble database that is not an index. The caller
// owns the Index and must Close it.
func Open(dir string, opts IndexOptions) (*Index, error) {
	if opts.SyncInterval == 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("projector: create index directory: %w", err)
	}
	lock, err := pebble.LockDirectory(dir, vfs.Default)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrLocked, dir, err)
	}
	db, err := pebble.Open(dir, pebbleOptions(lock, opts.Logger))
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("projector: open index %s: %w", dir, err)
	}
	i := &Index{opts: opts, dir: dir, db: db, advanced: make(chan struct{}), lastSync: time.Now()}
	err = i.load()
	if errors.Is(err, errOlderFormat) {
		opts.Logger.Warn("projector: the index was written in an older format; deleting it to rebuild it from the stream", "dir", dir, "error", err)
		db, err = wipe(db, dir, lock, opts.Logger)
		if err == nil {
			i.db = db
			err = i.load()
		}
	}
	if err != nil {
		if db != nil {
			_ = db.Close()
		}
		_ = lock.Close()
		return nil, err
	}
	if err := i.loadTaints(); err != nil {
		_ = db.Close()
		_ = lock.Close()
		return nil, err
	}
	i.hot.seq = i.checkpoint.Load()
	if err := i.openSecondary(); err != nil {
		_ = db.Close()
		_ = lock.Close()
		return nil, err
	}
	// Close (of the DB) leaves the lock held; release it with the DB.
	i.closeLock = lock.Close
	i.ready.Store(opts.ReadyOnOpen)
	return i, nil
}

// wipe closes db, deletes every file of the index in dir but the lock, so
// that nothing of the old index stays on disk, and opens an empty one. On
// failure the returned DB is nil (closed).
func wipe(db *pebble.DB, dir string, lock *pebble.Lock, log *slog.Logger) (*pebble.DB, error) {
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("projector: close the old index: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("projector: delete the old index: %w", err)
	}
	for _, e := range entries {
		if e.Name() == pebbleLockFile {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return nil, fmt.Errorf("projector: delete the old index: %w", err)
		}
	}
	db, err = pebble.Open(dir, pebbleOptions(lock, log))
	if err != nil {
		return nil, fmt.Errorf("projector: open index %s: %w", dir, err)
	}
	return db, nil
}

// pebbleLockFile is the file pebble.LockDirectory locks in an index
// directory.
const pebbleLockFile = "LOCK"

// indexCacheSize is the index's Pebble block cache, its memtables
// included (see pebbleOptions).
const indexCacheSize = 32 << 20

// pebbleOptions are the index's Pebble settings. Bloom filters on every
// level (set on L0, which the other levels inherit): folding a consent's
// first event looks for a state that is not there, and without a filter
// each such miss reads index and data blocks of every overlapping table
// (80% of a rebuild's time over 1M consents).
//
// The block cache is indexCacheSize: Pebble reserves its memtables'
// memory out of the block cache (Cache.Reserve, two 4 MiB memtables), so
// its default of 8 MiB leaves nothing for blocks, and every lookup then
// reads its tables' index, filter and data blocks from the files (no hit
// in 225,578 block reads of 60,000 lookups for absent consents, 17 µs
// each; 11 µs with 32 MiB, 6 µs with 64).
func pebbleOptions(lock *pebble.Lock, log *slog.Logger) *pebble.Options {
	o := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Lock:               lock,
		Logger:             pebbleLogger{log},
		CacheSize:          indexCacheSize,
	}
	o.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	return o
}

// load reads the meta values, stamping the format on a new index.
func (i *Index) load() error {
	format, ok, err := i.getMeta(metaFormat)
	if err != nil {
		return err
	}
	if !ok {
		empty, err := i.isEmpty()
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("%w: %s has no format stamp", ErrFormat, i.dir)
		}
		return i.db.Set(metaKey(metaFormat), binary.BigEndian.AppendUint64(nil, indexFormat), pebble.Sync)
	}
	if len(format) == 8 && binary.BigEndian.Uint64(format) < indexFormat {
		return fmt.Errorf("%w: %s has format %d, this code reads %d", errOlderFormat, i.dir, binary.BigEndian.Uint64(format), indexFormat)
	}
	if len(format) != 8 || binary.BigEndian.Uint64(format) != indexFormat {
		return fmt.Errorf("%w: %s has format %x, this code reads %d; delete it to rebuild from the stream", ErrFormat, i.dir, format, indexFormat)
	}
	for _, m := range []struct {
		name string
		dst  *atomic.Uint64
	}{{metaCheckpoint, &i.checkpoint}, {metaViolations, &i.violations}} {
		v, ok, err := i.getMeta(m.name)
		if err != nil {
			return err
		}
		if ok {
			if len(v) != 8 {
				return fmt.Errorf("%w: meta %s is %d bytes", ErrFormat, m.name, len(v))
			}
			m.dst.Store(binary.BigEndian.Uint64(v))
		}
	}
	v, ok, err := i.getMeta(metaStream)
	if err != nil || !ok {
		return err
	}
	return i.stream.UnmarshalText(v)
}

func (i *Index) getMeta(name string) ([]byte, bool, error) {
	v, closer, err := i.db.Get(metaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("projector: read %s: %w", name, err)
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

func (i *Index) isEmpty() (bool, error) {
	it, err := i.db.NewIter(nil)
	if err != nil {
		return false, err
	}
	empty := !it.First()
	return empty, it.Close()
}

// Close closes the index. Reads then return events.ErrNotReady (waiting
// ones are woken). Stop the projector (cancel Run's context and wait for
// it) first: a projector still running fails its next commit with
// ErrClosed.
func (i *Index) Close() error {
	i.closed.Store(true)
	i.notify()
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.db == nil {
		return nil
	}
	err := errors.Join(i.dropStates(), i.db.Close())
	i.db = nil
	if i.closeLock != nil {
		err = errors.Join(err, i.closeLock())
	}
	return err
}

// Dir returns the directory the index lives in.
func (i *Index) Dir() string { return i.dir }

// Checkpoint returns the last stream sequence applied to the index (0 when
// none has been).
func (i *Index) Checkpoint() uint64 { return i.checkpoint.Load() }

// Ready reports whether reads are answered (see IndexOptions.ReadyOnOpen).
func (i *Index) Ready() bool { return i.ready.Load() && !i.closed.Load() }

// MarkCurrent makes the index answer reads before a projector has caught
// up, for a caller that has established that the stream holds nothing
// beyond Checkpoint (consentd asks a replica of the stream while the
// stream has no leader, see docs/cluster.md). A projector that runs on the
// index later keeps it answering while it runs; when it stops, the index
// stops answering as after any run (unless opened ReadyOnOpen). It does
// nothing on a closed index.
func (i *Index) MarkCurrent() {
	if !i.closed.Load() {
		i.setReady()
	}
}

// Consent returns the folded state of the consent k (State none when it
// has no events) and the index sequence it was read at: the state reflects
// at least every event up to that sequence. When the consent's history
// holds a message that failed the integrity checks and is not quarantined,
// the state is its last good one with ViolationSeq set to that message's
// sequence (events.Consent.View then says StateIntegrityViolation). k must have its tenant
// defaulted; it is not validated (an invalid key has no events).
//
// The consent is found by k.Token() (the index holds subject keys, no
// ids). The state returned has k's SubjectID, the id the caller sent, and
// a SubjectKey only when the consent's last event is of schema v2 (as
// events.Evolve leaves it), so that a consent of v1 events reads as
// before.
//
// With minSeq > 0 it first waits, without polling, until the index has
// applied minSeq, returning an error matching events.ErrStale when ctx ends
// first. It returns an error matching events.ErrNotReady when the index
// cannot answer: closed, no projector running, catching up after start
// (minSeq 0), or its projector stopped on a fatal error.
func (i *Index) Consent(ctx context.Context, k events.Key, minSeq uint64) (events.Consent, uint64, error) {
	seq, err := i.Wait(ctx, minSeq)
	if err != nil {
		return events.Consent{}, seq, err
	}
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.db == nil {
		return events.Consent{}, seq, notReady("closed")
	}
	var buf [128]byte
	key := appendConsentKey(buf[:0], k)
	var subjBuf [192]byte
	subj := i.taintSubject(subjBuf[:0], k)
	// The state and the index_seq it is reported at go together (see
	// hotStates), taints included; a read that a commit overlapped is made
	// again.
	for {
		c, ok, gen, at := i.hot.get(key, subj)
		if ok {
			// A state the projector put here is as folded (the subject
			// key set for v2 only): name the person as identify does.
			c.SubjectID = k.SubjectID
			if c.SubjectKey == "" && k.SubjectID == "" {
				c.SubjectKey = k.Token()
			}
			return c, at, nil
		}
		// Pebble keeps the key it is given; a copy lets buf, all a hot
		// lookup needs, stay on the stack.
		c, _, err = i.get(bytes.Clone(key), k)
		if err != nil {
			return events.Consent{}, seq, err
		}
		if at, violation, ok := i.hot.stable(gen, subj); ok {
			i.hot.fill(key, c, gen)
			c.ViolationSeq = violation
			return c, at, nil
		}
		if err := ctx.Err(); err != nil {
			return events.Consent{}, seq, err
		}
	}
}

// Consents returns every consent of one person that has events, one per
// purpose, ordered by purpose (an empty, non-nil slice when there is
// none), and the index sequence they were read at. They are read from one
// snapshot, by the person's subject key (person.Token(): its SubjectKey
// when set, as the ledger resolves it by the stream's scheme; its purpose
// is not looked at), and carry person.SubjectID and a SubjectKey as
// Consent's do. minSeq and the errors are as for Consent.
func (i *Index) Consents(ctx context.Context, person events.Key, minSeq uint64) ([]events.Consent, uint64, error) {
	seq, err := i.Wait(ctx, minSeq)
	if err != nil {
		return nil, seq, err
	}
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.db == nil {
		return nil, seq, notReady("closed")
	}
	tenant, subjectID := person.Tenant, person.SubjectID
	prefix := appendPersonPrefix(nil, tenant, person.Token())
	it, err := i.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, seq, fmt.Errorf("projector: list: %w", err)
	}
	out := []events.Consent{}
	for ok := it.First(); ok; ok = it.Next() {
		k, err := decodeConsentKey(it.Key())
		if err == nil {
			var c events.Consent
			k.SubjectID = subjectID
			c, err = decodeConsent(it.Value(), k)
			if subj := i.taintSubject(nil, k); subj != "" {
				i.hot.mu.RLock()
				c.ViolationSeq = i.hot.taintLocked(subj)
				i.hot.mu.RUnlock()
			}
			out = append(out, c)
		}
		if err != nil {
			_ = it.Close()
			return nil, seq, fmt.Errorf("projector: list %q: %w", it.Key(), err)
		}
	}
	if err := it.Close(); err != nil {
		return nil, seq, fmt.Errorf("projector: list: %w", err)
	}
	return out, seq, nil
}

// get reads the stored state under key (the consent key of k), returning
// events.NewConsent(k) and false when there is none. The caller holds mu.
func (i *Index) get(key []byte, k events.Key) (events.Consent, bool, error) {
	v, closer, err := i.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return events.NewConsent(k), false, nil
	}
	if err != nil {
		return events.Consent{}, false, fmt.Errorf("projector: read consent: %w", err)
	}
	defer closer.Close()
	c, err := readConsent(v, k)
	return c, err == nil, err
}

// readConsent decodes the stored state of k, naming the consent in its
// error.
func readConsent(v []byte, k events.Key) (events.Consent, error) {
	c, err := decodeConsent(v, k)
	if err != nil {
		return events.Consent{}, fmt.Errorf("projector: consent %s/%s: %w", k.Tenant, k.Purpose, err)
	}
	return c, nil
}

// pebbleLogger sends Pebble's log lines to slog: info at debug level.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf is called by Pebble on unrecoverable corruption; like Pebble's
// default logger it does not return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic(msg)
}
