package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultStream is the stream Replay, Export, Verify and the Checkpointer
// read when told no other (the ledger's default).
const DefaultStream = "CONSENT"

// Defaults of ReplayOptions.
const (
	DefaultReplayIdle        = 2 * time.Second
	DefaultReplayMaxBuffered = 1000
)

// Msg is one stored message as Replay delivers it. Its fields stay valid
// after the callback returns.
type Msg struct {
	Seq     uint64
	Subject string
	Time    time.Time // when the stream stored it
	Data    []byte
	Header  nats.Header
	Pending uint64 // matching messages after this one, when it was delivered
}

// ReplayOptions says what Replay reads.
type ReplayOptions struct {
	Stream string   // default DefaultStream
	Filter []string // subject filters; default every message
	// StartSeq is the first sequence to deliver (default 1). StartTime,
	// when set, starts instead at the first message stored at or after it.
	StartSeq  uint64
	StartTime *time.Time
	// EndSeq is the last sequence to deliver; 0 means the stream's last
	// sequence when Replay starts, so that a replay of a live stream ends.
	EndSeq uint64
	// Idle is how long Replay waits for a message before asking the server
	// whether any is left (a message the server skips, such as a stored
	// record that fails its checksum, is never delivered); default 2s.
	Idle time.Duration
	// MaxBuffered bounds the messages the client buffers ahead of the
	// callback: the replay's memory; default 1000.
	MaxBuffered int
	// Source, when set, is read instead of an ordered consumer of Stream
	// (Filter, StartSeq and StartTime are then the source's own).
	Source *Source
}

// Source is a consumer of the stream that someone else created, with the
// stream's bounds when it was: what a client without the stream's
// JetStream API reads (consent.v1.audit.open: the service creates the
// consumer, ack none, and lets the client's account read it).
type Source struct {
	Consumer jetstream.Consumer
	// FirstSeq and LastSeq are the stream's first and last sequences when
	// the consumer was created (0: an empty stream).
	FirstSeq, LastSeq uint64
}

// ReplayEnd says what a replay covered.
type ReplayEnd struct {
	FirstSeq  uint64 // the stream's first sequence when the replay started (0: empty stream)
	EndSeq    uint64 // the last sequence the replay was to deliver
	LastSeq   uint64 // the last sequence delivered (0: none)
	Delivered uint64 // messages delivered
	Total     uint64 // matching messages from the start position when it started
}

// ErrStopReplay, returned by a Replay callback, ends the replay without an
// error.
var ErrStopReplay = errors.New("stop the replay")

// Replay reads the stream in order with an ordered consumer (ack none,
// flow-controlled, recreated by the client after a disconnect) and calls
// fn with each message, one at a time, from one goroutine, up to EndSeq.
// It returns when the messages up to EndSeq have been delivered, when no
// matching message is left, when fn returns an error (ErrStopReplay ends
// it cleanly), or when ctx ends (with ctx's error). No call of fn is in
// progress once Replay returns.
//
// Replay reports sequences as the server delivers them and does not check
// them: a message the server skips shows as a jump in Msg.Seq, which
// Verify reports as a gap.
func Replay(ctx context.Context, js jetstream.JetStream, opts ReplayOptions, fn func(*Msg) error) (ReplayEnd, error) {
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.Idle <= 0 {
		opts.Idle = DefaultReplayIdle
	}
	if opts.MaxBuffered <= 0 {
		opts.MaxBuffered = DefaultReplayMaxBuffered
	}
	var stream jetstream.Stream
	var state jetstream.StreamState
	if opts.Source != nil {
		state = jetstream.StreamState{FirstSeq: opts.Source.FirstSeq, LastSeq: opts.Source.LastSeq, Msgs: opts.Source.LastSeq}
	} else {
		var err error
		if stream, err = js.Stream(ctx, opts.Stream); err != nil {
			return ReplayEnd{}, fmt.Errorf("stream %s: %w", opts.Stream, err)
		}
		state = stream.CachedInfo().State
	}
	end := ReplayEnd{EndSeq: opts.EndSeq}
	if state.Msgs > 0 {
		end.FirstSeq = state.FirstSeq
	}
	if end.EndSeq == 0 {
		end.EndSeq = state.LastSeq
	}
	start := max(opts.StartSeq, 1)
	if end.EndSeq == 0 || (opts.StartTime == nil && start > end.EndSeq) {
		return end, nil
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: opts.Filter,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	}
	if opts.StartTime != nil {
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, opts.StartTime
	}
	var cons jetstream.Consumer
	var err error
	if opts.Source != nil {
		cons = opts.Source.Consumer
	} else if cons, err = stream.OrderedConsumer(ctx, cfg); err != nil {
		return end, fmt.Errorf("ordered consumer on %s: %w", opts.Stream, err)
	}

	r := &replay{done: make(chan error, 1), fn: fn, endSeq: end.EndSeq}
	cc, err := cons.Consume(r.deliver,
		jetstream.PullMaxMessages(opts.MaxBuffered),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { r.lastErr.Store(&err) }))
	if err != nil {
		return end, fmt.Errorf("consume %s: %w", opts.Stream, err)
	}
	if ci := cons.CachedInfo(); ci != nil {
		end.Total = ci.NumPending
		if ci.NumPending == 0 {
			r.finish(nil)
		}
	}

	err = r.wait(ctx, cons, opts.Idle)
	r.stopped.Store(true)
	cc.Stop()
	r.mu.Lock() // wait for a callback in progress
	end.LastSeq, end.Delivered = r.lastSeq, r.delivered
	r.mu.Unlock()
	select {
	case <-cc.Closed():
	case <-time.After(5 * time.Second):
	}
	return end, err
}

// replay is the state shared by the consumer's callback and Replay.
type replay struct {
	fn      func(*Msg) error
	endSeq  uint64
	done    chan error
	once    sync.Once
	stopped atomic.Bool
	lastErr atomic.Pointer[error]
	seen    atomic.Uint64 // messages delivered, for the idle check
	busy    atomic.Bool   // fn is running (a slow writer is not an idle stream)

	mu        sync.Mutex // held while fn runs
	lastSeq   uint64
	delivered uint64
}

func (r *replay) finish(err error) {
	r.once.Do(func() { r.done <- err })
}

func (r *replay) deliver(msg jetstream.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped.Load() {
		return
	}
	meta, err := msg.Metadata()
	if err != nil {
		r.stopped.Store(true)
		r.finish(fmt.Errorf("message metadata: %w", err))
		return
	}
	seq := meta.Sequence.Stream
	if seq > r.endSeq {
		r.stopped.Store(true)
		r.finish(nil)
		return
	}
	m := Msg{Seq: seq, Subject: msg.Subject(), Time: meta.Timestamp, Data: msg.Data(), Header: msg.Headers(), Pending: meta.NumPending}
	r.lastSeq = seq
	r.delivered++
	r.seen.Add(1)
	r.busy.Store(true)
	err = r.fn(&m)
	r.busy.Store(false)
	if err != nil {
		r.stopped.Store(true)
		if errors.Is(err, ErrStopReplay) {
			err = nil
		}
		r.finish(err)
		return
	}
	if seq >= r.endSeq || meta.NumPending == 0 {
		r.stopped.Store(true)
		r.finish(nil)
	}
}

// wait returns when the replay finishes or ctx ends. When a whole idle
// period passes without a message, it asks the server whether any is left
// to deliver; after two such periods in a row with none left, the replay
// is over (messages already sent to the client would have arrived).
func (r *replay) wait(ctx context.Context, cons jetstream.Consumer, idle time.Duration) error {
	tick := time.NewTicker(idle)
	defer tick.Stop()
	seen, quiet, failures := r.seen.Load(), 0, 0
	for {
		select {
		case err := <-r.done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if now := r.seen.Load(); now != seen || r.busy.Load() {
				seen, quiet, failures = now, 0, 0
				continue
			}
			// A busy server may take longer than idle to answer: only
			// three unanswered asks in a row, each given infoTimeout,
			// make the replay stalled.
			infoCtx, cancel := context.WithTimeout(ctx, max(idle, infoTimeout))
			info, err := cons.Info(infoCtx)
			cancel()
			switch {
			case err == nil && (info.NumPending == 0 || info.Delivered.Stream >= r.endSeq):
				if quiet++; quiet >= 2 {
					r.stopped.Store(true)
					r.finish(nil)
				}
			case err == nil:
				quiet = 0
			default:
				if failures++; failures >= 3 {
					if last := r.lastErr.Load(); last != nil {
						err = errors.Join(err, *last)
					}
					r.stopped.Store(true)
					r.finish(fmt.Errorf("replay stalled: %w", err))
				}
			}
		}
	}
}

// infoTimeout is the least time a replay gives the server to say where its
// consumer is.
const infoTimeout = 5 * time.Second
