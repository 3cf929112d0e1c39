package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of CheckpointerOptions.
const (
	DefaultCheckpointInterval = time.Minute
	DefaultCheckpointMaxLag   = 10_000
)

// CheckpointerOptions configures a Checkpointer.
type CheckpointerOptions struct {
	Stream string  // default DefaultStream
	Signer *Signer // required
	// Interval is the length of a checkpoint window: at most one
	// checkpoint is appended per window of this length (windows are
	// aligned to the Unix epoch, so every instance agrees on them);
	// default one minute.
	Interval time.Duration
	// MaxLag bounds how far the stream may have moved past the chain
	// before the checkpoint is published: when more messages arrived while
	// the chain was computed, they are read first. It keeps the checkpoint
	// close to the sequence it commits to (Verify keeps the last
	// ChainHistory chain values). Default 10000.
	MaxLag uint64
	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default slog.Default()
	// Writable, when set, is asked before every checkpoint; while it
	// returns an error (consentd passes its stream guard's Err) Once
	// appends nothing and returns that error.
	Writable func() error
	// Observe, when set, is told the outcome of every attempt Run makes
	// (consentd's metrics): the result, or the error it logs.
	Observe func(CheckpointResult, error)
}

// Checkpointer appends a signed Checkpoint to the stream once per
// interval window, when the stream has new messages. Several instances
// (one per consentd) may run against one stream: each publishes with the
// expected last sequence of events.CheckpointSubject, so of those that
// read the same last checkpoint only one can append the next, and an
// instance that finds this window's checkpoint already made does nothing.
type Checkpointer struct {
	js   jetstream.JetStream
	opts CheckpointerOptions
	log  *slog.Logger

	mu    sync.Mutex // one Once at a time
	chain *Chain     // the chain as far as this instance has computed it
}

// NewCheckpointer returns a Checkpointer; it does nothing until Run or
// Once. It fails when opts has no Signer.
func NewCheckpointer(js jetstream.JetStream, opts CheckpointerOptions) (*Checkpointer, error) {
	if opts.Signer == nil {
		return nil, errors.New("audit: a checkpointer needs a signing key")
	}
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultCheckpointInterval
	}
	if opts.MaxLag == 0 {
		opts.MaxLag = DefaultCheckpointMaxLag
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Checkpointer{js: js, opts: opts, log: opts.Logger, chain: &Chain{}}, nil
}

// CheckpointResult is what one attempt did.
type CheckpointResult struct {
	Published  bool
	Seq        uint64      // where the checkpoint was stored, when published
	Checkpoint *Checkpoint // the checkpoint published
	Skipped    string      // why nothing was published
}

// Run makes a checkpoint at once and then at the start of every window
// (plus a small random delay, so that instances do not all race), until
// ctx ends; then it returns nil. A failed attempt is logged and retried
// in the next window.
func (c *Checkpointer) Run(ctx context.Context) error {
	for {
		res, err := c.Once(ctx)
		if c.opts.Observe != nil && ctx.Err() == nil {
			c.opts.Observe(res, err)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			c.log.Error("checkpoint failed; retrying next window", "error", err)
		case res.Published:
			c.log.Info("checkpoint appended", "seq", res.Seq, "up_to_seq", res.Checkpoint.UpToSeq, "chain", res.Checkpoint.Chain)
		default:
			c.log.Debug("no checkpoint", "reason", res.Skipped)
		}
		now := c.opts.Now()
		iv := c.opts.Interval
		wait := iv - time.Duration(now.UnixNano()%int64(iv)) + rand.N(iv/20+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// window returns the number of the interval window t falls in.
func (c *Checkpointer) window(t time.Time) int64 { return t.UnixNano() / int64(c.opts.Interval) }

// Once makes this window's checkpoint unless it exists already or the
// stream has nothing new since the last one. It returns an error when
// Writable refuses, when the stream cannot be read, has a gap (the chain
// cannot be computed), or the publish fails for another reason than
// losing the race to another instance.
func (c *Checkpointer) Once(ctx context.Context) (CheckpointResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opts.Writable != nil {
		if err := c.opts.Writable(); err != nil {
			return CheckpointResult{}, fmt.Errorf("checkpoint: %w", err)
		}
	}
	now := c.opts.Now().UTC()
	stream, err := c.js.Stream(ctx, c.opts.Stream)
	if err != nil {
		return CheckpointResult{}, fmt.Errorf("checkpoint: stream %s: %w", c.opts.Stream, err)
	}
	prev, prevSeq, err := c.lastCheckpoint(ctx, stream)
	if err != nil {
		return CheckpointResult{}, err
	}
	info, err := stream.Info(ctx) // after the last checkpoint: last >= prevSeq
	if err != nil {
		return CheckpointResult{}, fmt.Errorf("checkpoint: stream %s: %w", c.opts.Stream, err)
	}
	last := info.State.LastSeq
	switch {
	case prevSeq > 0 && c.window(prev.Time) == c.window(now):
		return CheckpointResult{Skipped: fmt.Sprintf("this window's checkpoint is at seq %d", prevSeq)}, nil
	case last == 0 || last == prevSeq:
		return CheckpointResult{Skipped: "nothing new since the last checkpoint"}, nil
	}

	chain := c.chain
	if prev != nil && prev.UpToSeq > chain.Seq && prev.UpToSeq <= last {
		// Continue from our own signature rather than reading the stream
		// from the start: a checkpoint this key signed was computed by
		// an instance holding the key.
		if start, err := ChainAt(prev.UpToSeq, prev.Chain); err == nil {
			chain = start
		}
	}
	if chain.Seq > last {
		chain = &Chain{} // the stream is not the one we chained
	}
	for chain.Seq < last {
		if err := c.extend(ctx, chain, last); err != nil {
			c.chain = &Chain{}
			return CheckpointResult{}, err
		}
		info, err := stream.Info(ctx)
		if err != nil {
			return CheckpointResult{}, fmt.Errorf("checkpoint: stream %s: %w", c.opts.Stream, err)
		}
		if info.State.LastSeq-chain.Seq > c.opts.MaxLag {
			last = info.State.LastSeq
		}
	}
	c.chain = chain

	cp, payload, err := NewCheckpoint(c.opts.Signer, chain, now)
	if err != nil {
		return CheckpointResult{}, err
	}
	msgID := "checkpoint:" + c.opts.Interval.String() + ":" + strconv.FormatInt(c.window(now), 10)
	ack, err := c.js.PublishMsg(ctx, &nats.Msg{Subject: events.CheckpointSubject, Data: payload},
		jetstream.WithMsgID(msgID),
		jetstream.WithExpectLastSequencePerSubject(prevSeq),
		jetstream.WithExpectStream(c.opts.Stream))
	switch {
	case isConflict(err):
		return CheckpointResult{Skipped: "another instance appended a checkpoint first"}, nil
	case err != nil:
		return CheckpointResult{}, fmt.Errorf("checkpoint: publish: %w", err)
	case ack.Duplicate:
		return CheckpointResult{Skipped: fmt.Sprintf("another instance made this window's checkpoint (seq %d)", ack.Sequence)}, nil
	}
	return CheckpointResult{Published: true, Seq: ack.Sequence, Checkpoint: cp}, nil
}

// lastCheckpoint returns the stream's last checkpoint and its sequence
// (nil, 0 when there is none). One that does not decode, or that another
// key signed, is returned with its stored time only, so that it still
// counts for its window but is not continued from.
func (c *Checkpointer) lastCheckpoint(ctx context.Context, stream jetstream.Stream) (*Checkpoint, uint64, error) {
	msg, err := stream.GetLastMsgForSubject(ctx, events.CheckpointSubject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("checkpoint: read the last checkpoint: %w", err)
	}
	cp, err := VerifyCheckpoint(msg.Data, NewKeyring(c.opts.Signer.Public()))
	if err != nil {
		c.log.Warn("the last checkpoint does not verify with this key; not continuing from it", "seq", msg.Sequence, "error", err)
		return &Checkpoint{Time: msg.Time}, msg.Sequence, nil
	}
	return cp, msg.Sequence, nil
}

// extend adds the stream's messages after chain.Seq up to last.
func (c *Checkpointer) extend(ctx context.Context, chain *Chain, last uint64) error {
	end, err := Replay(ctx, c.js, ReplayOptions{Stream: c.opts.Stream, StartSeq: chain.Seq + 1, EndSeq: last}, func(m *Msg) error {
		return chain.Add(m.Seq, m.Subject, m.Data)
	})
	if err != nil {
		return fmt.Errorf("checkpoint: cannot compute the chain: %w", err)
	}
	if chain.Seq < last {
		return fmt.Errorf("checkpoint: cannot compute the chain: the stream did not deliver seq %d (last delivered %d); run consentctl audit verify", chain.Seq+1, end.LastSeq)
	}
	return nil
}

// isConflict reports whether a publish was refused because the subject's
// last sequence was not the expected one: 10071 on one replica, 10164 on
// several.
func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
