package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of Options.
const (
	DefaultStream        = "CONSENT"
	DefaultMaxBatch      = 1000
	DefaultMaxBatchBytes = 4 << 20
	DefaultMaxDelay      = 5 * time.Millisecond
)

// consumerHeartbeat is the idle heartbeat of the projector's consumer.
// The consumer lives on one NATS server; when that server dies the
// consumer is recreated elsewhere once two heartbeats have been missed
// (see feed). With the client's default (5s) an index stood still for 10s
// after a node loss in a cluster; one a second costs an idle consentd one
// small message a second.
const consumerHeartbeat = time.Second

// Options configures a Projector.
type Options struct {
	Stream string // default DefaultStream

	// A commit is made when MaxBatch events or MaxBatchBytes of index
	// writes are waiting, when the stream has nothing more pending, or
	// MaxDelay after the oldest uncommitted event was applied. While
	// catching up, many events share one commit; when live, each event is
	// committed as soon as it is applied.
	MaxBatch      int
	MaxBatchBytes int
	MaxDelay      time.Duration

	// Workers decode and hash-check events ahead of the fold, in
	// parallel; default GOMAXPROCS.
	Workers int

	Logger *slog.Logger // default slog.Default()
}

// Projector reads the stream from the index checkpoint and applies it. It
// is the index's only writer.
type Projector struct {
	js   jetstream.JetStream
	idx  *Index
	opts Options
	log  *slog.Logger

	streamSeq atomic.Uint64
	running   atomic.Bool
	folded    atomic.Uint64 // messages applied to the index by this Projector
	rebuilds  atomic.Uint64 // Runs that began on an empty index and a stream with messages
	mu        sync.Mutex
	err       error // why the last Run stopped, nil while running
}

// New returns a projector feeding idx from the stream. It does nothing
// until Run. The caller keeps ownership of idx.
func New(js jetstream.JetStream, idx *Index, opts Options) *Projector {
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Projector{js: js, idx: idx, opts: opts, log: opts.Logger}
}

// Run projects the stream into the index until ctx ends, then commits what
// it has applied and returns nil. The index answers reads once Run has
// applied everything the stream held when it started.
//
// It returns a *StopError (matching ErrGap, ErrIndexAhead,
// ErrStreamMismatch, events.ErrUnknownType or events.ErrNewerSchema) when
// it meets something it must not get past, after committing everything
// before it; ErrBusy when another Run holds the index; and other errors
// when the stream cannot be read or the index written. Health shows the
// error until the next Run.
func (p *Projector) Run(ctx context.Context) (err error) {
	if err := p.idx.claim(); err != nil {
		return err
	}
	p.running.Store(true)
	p.setErr(nil)
	defer func() {
		p.idx.release(err != nil)
		p.running.Store(false)
		if err != nil {
			p.setErr(err)
			attrs := []any{"err", err, "index_seq", p.idx.Checkpoint()}
			if stop, ok := errors.AsType[*StopError](err); ok {
				attrs = append(attrs, "stop_seq", stop.Seq, "subject", stop.Subject)
			}
			if newer, ok := errors.AsType[*events.NewerEventError](err); ok {
				attrs = append(attrs, "event_version", newer.Version, "event_type", newer.Type)
			}
			p.log.Error("projector: stopped", attrs...)
		}
	}()

	stream, head, err := p.open(ctx)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return err
	}
	f, err := newFolder(p.idx, p.log)
	if err != nil {
		return err
	}
	defer f.close()
	if f.next == 1 && head > 0 {
		p.rebuilds.Add(1)
	}
	if f.next == 1 && head >= rebuildFilterMin && head <= rebuildFilterMax {
		f.written = newNewKeys(head)
	}

	check := newChecker(p.opts.Workers, 8)
	feedCtx, stopFeed := context.WithCancel(ctx)
	feed, err := startFeed(feedCtx, stream, f.next, consumerHeartbeat, p.log, check.addParsed)
	if err != nil {
		stopFeed()
		check.stop()
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("projector: consume %s: %w", p.opts.Stream, err)
	}
	closed := feed.Closed()
	defer func() {
		check.stop() // unblocks a hand-over waiting for the fold
		stopFeed()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
		}
	}()

	started, from := time.Now(), f.next
	caughtUp := func() {
		if p.idx.Checkpoint() < head {
			return
		}
		f.written = nil // the rebuild is done; the live tail reads the index
		if !p.idx.Ready() {
			p.idx.setReady()
			p.log.Info("projector: caught up", "index_seq", p.idx.Checkpoint(), "events", p.idx.Checkpoint()+1-from,
				"took", time.Since(started).Round(time.Millisecond))
		}
	}
	caughtUp()

	timer := time.NewTimer(p.opts.MaxDelay)
	timer.Stop()
	for {
		select {
		case r := <-check.ordered:
			err := p.applyRun(f, check.wait(r), timer, caughtUp)
			check.release(r)
			if err != nil {
				return err
			}
		case <-timer.C:
			if err := f.flush(); err != nil {
				return err
			}
			caughtUp()
		case <-closed:
			if ctx.Err() != nil {
				continue // the feed stopped with ctx: take the ctx.Done case
			}
			err := errors.New("consumer closed")
			if e := feed.Err(); e != nil {
				err = e
			}
			return errors.Join(fmt.Errorf("projector: reading %s: %w", p.opts.Stream, err), f.flush())
		case <-ctx.Done():
			if err := f.flush(); err != nil {
				return err
			}
			return p.idx.sync()
		}
	}
}

// applyRun folds a run of checked deliveries, committing the batch when it
// is full or the stream has nothing more pending and arming timer for the
// first event of a batch.
func (p *Projector) applyRun(f *folder, run []delivery, timer *time.Timer, caughtUp func()) error {
	for i := range run {
		d := &run[i]
		if d.seq+d.pending > p.streamSeq.Load() {
			p.streamSeq.Store(d.seq + d.pending)
			p.idx.noteStreamSeq(d.seq + d.pending)
		}
		if err := f.apply(d); err != nil {
			// Commit what came before, so a restart stops here again.
			if ferr := f.flush(); ferr != nil {
				return errors.Join(err, ferr)
			}
			return err
		}
		p.folded.Add(1)
		switch {
		case d.pending == 0 || f.count >= p.opts.MaxBatch || f.batch.Len() >= p.opts.MaxBatchBytes:
			timer.Stop()
			if err := f.flush(); err != nil {
				return err
			}
			caughtUp()
		case f.count == 1:
			timer.Reset(p.opts.MaxDelay)
		}
	}
	return nil
}

// open looks the stream up, checks that the index belongs to it and
// returns it with its last sequence.
func (p *Projector) open(ctx context.Context) (jetstream.Stream, uint64, error) {
	stream, err := p.js.Stream(ctx, p.opts.Stream)
	if err != nil {
		return nil, 0, fmt.Errorf("projector: stream %s: %w", p.opts.Stream, err)
	}
	info := stream.CachedInfo()
	head := info.State.LastSeq
	p.streamSeq.Store(head)
	p.idx.noteStreamSeq(head)
	cp := p.idx.Checkpoint()
	if err := p.idx.bindStream(streamIdentity{Name: info.Config.Name, Created: info.Created}); err != nil {
		return nil, 0, &StopError{Seq: cp + 1, Err: err}
	}
	if cp > head {
		return nil, 0, &StopError{Seq: cp, Err: fmt.Errorf("%w: checkpoint %d, the stream's last seq is %d", ErrIndexAhead, cp, head)}
	}
	return stream, head, nil
}

func (p *Projector) setErr(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

// Health is a snapshot of the projector's progress and problems.
type Health struct {
	IndexSeq   uint64 // last stream sequence applied to the index
	StreamSeq  uint64 // last stream sequence known to exist
	Violations int    // integrity violations recorded in the index
	Running    bool   // Run is active
	Ready      bool   // the index answers reads
	Err        string // why the last Run stopped; "" while running or after a clean stop
	// StopSeq is the stream sequence of the message the last Run stopped
	// before when it met something it must not get past (a *StopError),
	// else 0. NewerVersion and NewerType are that message's "v" and
	// "type" when a newer ledger wrote it (an *events.NewerEventError):
	// upgrade consentd to read it.
	StopSeq      uint64
	NewerVersion int
	NewerType    string
	// Folded counts the stream messages this Projector applied to the
	// index (events, checkpoints and violations alike) since it was made;
	// Rebuilds the Runs that began on an empty index while the stream had
	// messages (a first start, or an index deleted to be rebuilt).
	Folded   uint64
	Rebuilds uint64
}

// Health returns a snapshot of the projector's health. It is safe to call
// at any time.
func (p *Projector) Health() Health {
	h := Health{
		IndexSeq:   p.idx.Checkpoint(),
		StreamSeq:  p.streamSeq.Load(),
		Violations: int(p.idx.ViolationCount()),
		Running:    p.running.Load(),
		Ready:      p.idx.Ready(),
		Folded:     p.folded.Load(),
		Rebuilds:   p.rebuilds.Load(),
	}
	p.mu.Lock()
	if p.err != nil {
		h.Err = p.err.Error()
		if stop, ok := errors.AsType[*StopError](p.err); ok {
			h.StopSeq = stop.Seq
		}
		if newer, ok := errors.AsType[*events.NewerEventError](p.err); ok {
			h.NewerVersion, h.NewerType = newer.Version, newer.Type
		}
	}
	p.mu.Unlock()
	if h.StreamSeq < h.IndexSeq {
		h.StreamSeq = h.IndexSeq
	}
	return h
}

// Err returns why the last Run stopped (a *StopError for a fatal problem
// in the stream), or nil.
func (p *Projector) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
