package ledger

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Headers of an atomic batch publish (ADR-50, server 2.12+).
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// Defaults of GroupCommit.
const (
	DefaultGroupCommitMaxBatch    = 256
	DefaultGroupCommitMinBatch    = 4
	DefaultGroupCommitMaxInFlight = 1
	DefaultGroupCommitLinger      = 2 * time.Millisecond
	// maxAtomicBatch is the server's limit on messages in one atomic
	// batch.
	maxAtomicBatch = 1000
)

// GroupCommit configures group commit: concurrent appends gathered into
// one atomic batch publish, stored and fsynced by the server together, so
// that one disk flush covers many events when the server fsyncs every
// write (sync_interval always). The stream must allow atomic publish
// (StreamOptions.Config sets it) on a server of version 2.12.1 or later.
//
// Every event of a batch keeps the checks it has when published alone:
// the expected last sequence of its consent's subject and its Nats-Msg-Id.
// When the server refuses a batch, nothing of it is stored; its events are
// then published one by one, so that each append gets exactly the result
// it would have got alone (stored, a conflict, or a duplicate).
type GroupCommit struct {
	// MaxBatch caps the events in one batch; default 256, at most 1000
	// (the server's limit).
	MaxBatch int
	// MinBatch is the smallest group sent as an atomic batch; smaller
	// groups are published as single messages, concurrently. An atomic
	// batch costs the server a fixed amount of disk work (it stages the
	// batch in a store of its own) worth a few single fsyncs. Default 4.
	MinBatch int
	// MaxInFlight is how many groups may be published at once; default 1.
	// The server stores one stream's batches one after another, so more
	// only pays when the network round trip is long.
	MaxInFlight int
	// Linger bounds how long a group waits, once nothing is in flight, for
	// as many appends as the last group had: the appends of the last
	// group come back together a moment after it is stored (each reads its
	// consent again, and the server answers no reads while it commits a
	// batch), and waiting for them makes one large batch instead of two
	// half-sized ones. Default 2ms; negative sends at once.
	Linger time.Duration
}

func (g GroupCommit) withDefaults() GroupCommit {
	if g.MaxBatch <= 0 {
		g.MaxBatch = DefaultGroupCommitMaxBatch
	}
	g.MaxBatch = min(g.MaxBatch, maxAtomicBatch)
	if g.MinBatch <= 0 {
		g.MinBatch = DefaultGroupCommitMinBatch
	}
	if g.MaxInFlight <= 0 {
		g.MaxInFlight = DefaultGroupCommitMaxInFlight
	}
	if g.Linger == 0 {
		g.Linger = DefaultGroupCommitLinger
	}
	return g
}

// GroupCommitStats counts what the group committer did.
type GroupCommitStats struct {
	Batches   uint64 // atomic batches committed
	Batched   uint64 // events stored through them
	Singles   uint64 // events published alone: small groups and fallbacks
	Refused   uint64 // batches the server refused (their events were then published alone)
	Abandoned uint64 // appends whose context ended while queued
}

// committer gathers the messages of concurrent appends and publishes them
// in groups. No goroutine runs while there is nothing to publish.
type committer struct {
	js     jetstream.JetStream
	stream string
	cfg    GroupCommit
	// attemptTimeout bounds the publish of a group: one attempt of each
	// of its appends (Options.PublishAttemptTimeout).
	attemptTimeout time.Duration
	observer       Observer // nil: none

	mu       sync.Mutex
	pending  []*commitEntry
	inFlight int
	busy     map[string]struct{} // subjects with a message in flight
	stats    GroupCommitStats
	// target is how many appends the next group waits for: the last
	// group's and those that queued while it was in flight; lingerUntil
	// the end of the wait, zero when not waiting; timer ends it.
	target      int
	lingerUntil time.Time
	timer       *time.Timer
}

// commitEntry is one append's message waiting for its outcome.
type commitEntry struct {
	msg   *nats.Msg
	msgID string
	done  chan commitResult // buffered: the sender never blocks
}

type commitResult struct {
	ack *jetstream.PubAck
	err error
}

func newCommitter(js jetstream.JetStream, stream string, cfg GroupCommit, attemptTimeout time.Duration) *committer {
	return &committer{js: js, stream: stream, cfg: cfg.withDefaults(), attemptTimeout: attemptTimeout, busy: make(map[string]struct{})}
}

// publish queues msg (its Nats-Msg-Id and expected-sequence headers set)
// for the next group and waits for its outcome: the PubAck or error a
// single publish of msg would have returned. When ctx ends while the
// message is still queued, it is withdrawn and ctx's error returned; once
// its group is on the way the outcome is unknown to the caller, as with a
// single publish whose context ends.
func (c *committer) publish(ctx context.Context, msg *nats.Msg, msgID string) (*jetstream.PubAck, error) {
	e := &commitEntry{msg: msg, msgID: msgID, done: make(chan commitResult, 1)}
	c.mu.Lock()
	c.pending = append(c.pending, e)
	c.flushLocked()
	c.mu.Unlock()
	select {
	case r := <-e.done:
		return r.ack, r.err
	case <-ctx.Done():
		c.mu.Lock()
		if i := slices.Index(c.pending, e); i >= 0 {
			c.pending = slices.Delete(c.pending, i, i+1)
			c.stats.Abandoned++
		}
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// Stats returns the counters so far.
func (c *committer) Stats() GroupCommitStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// flushLocked starts sending groups while there is room in flight.
func (c *committer) flushLocked() {
	for c.inFlight < c.cfg.MaxInFlight && len(c.pending) > 0 {
		if c.lingerLocked() {
			return
		}
		group := c.takeLocked()
		if len(group) == 0 {
			return // everything pending waits for a subject in flight
		}
		c.inFlight++
		go c.send(group)
	}
}

// lingerLocked reports whether to wait before sending: when nothing is in
// flight, fewer appends are pending than the target, and the wait
// that began when the last group was stored has not run out. It arms the
// timer that ends the wait.
func (c *committer) lingerLocked() bool {
	if c.cfg.Linger < 0 || c.inFlight > 0 || len(c.pending) >= min(c.target, c.cfg.MaxBatch) || c.lingerUntil.IsZero() {
		c.lingerUntil = time.Time{}
		return false
	}
	wait := time.Until(c.lingerUntil)
	if wait <= 0 {
		c.lingerUntil = time.Time{}
		return false
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(wait, func() {
			c.mu.Lock()
			c.timer = nil
			c.flushLocked()
			c.mu.Unlock()
		})
	}
	return true
}

// takeLocked takes up to MaxBatch pending entries, oldest first, at most
// one per subject and none whose subject has a message in flight: an
// expected-last-subject-sequence check only holds when nothing before it
// in the batch (or in a batch ahead of it) writes the same subject. It also
// keeps Nats-Msg-Ids unique in the group, as the server refuses a batch
// holding one twice. The rest stay pending, in order.
func (c *committer) takeLocked() []*commitEntry {
	group := make([]*commitEntry, 0, min(len(c.pending), c.cfg.MaxBatch))
	ids := make(map[string]struct{}, cap(group))
	rest := c.pending[:0]
	for _, e := range c.pending {
		_, busy := c.busy[e.msg.Subject]
		_, dup := ids[e.msgID]
		if busy || dup || len(group) == c.cfg.MaxBatch {
			rest = append(rest, e)
			continue
		}
		c.busy[e.msg.Subject] = struct{}{}
		ids[e.msgID] = struct{}{}
		group = append(group, e)
	}
	clear(c.pending[len(rest):])
	c.pending = rest
	return group
}

// send publishes a group and hands each entry its outcome.
func (c *committer) send(group []*commitEntry) {
	if c.observer != nil {
		defer func(start time.Time) { c.observer.GroupCommitted(len(group), time.Since(start)) }(time.Now())
	}
	var batched, singles, refused uint64
	if len(group) >= c.cfg.MinBatch {
		results, err := c.commitBatch(group)
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			batched = uint64(len(group))
			for i, e := range group {
				e.done <- results[i]
			}
		case errors.As(err, &apiErr):
			// The server answered with an error: it stored nothing of
			// the batch. Publish each alone, which gives each the result
			// it would have had without the others.
			refused = 1
			singles = uint64(len(group))
			c.publishEach(group)
		default:
			// No answer (a timeout, a lost connection): the batch may or
			// may not be stored, as a single publish without an ack.
			for _, e := range group {
				e.done <- commitResult{err: err}
			}
		}
	} else {
		singles = uint64(len(group))
		c.publishEach(group)
	}

	c.mu.Lock()
	for _, e := range group {
		delete(c.busy, e.msg.Subject)
	}
	c.inFlight--
	if c.inFlight == 0 && c.cfg.Linger > 0 {
		// The appends of this group come back soon; those queued
		// meanwhile are ready now: together they make the next group.
		c.lingerUntil = time.Now().Add(c.cfg.Linger)
		c.target = len(group) + len(c.pending)
	}
	if batched > 0 {
		c.stats.Batches++
	}
	c.stats.Batched += batched
	c.stats.Singles += singles
	c.stats.Refused += refused
	c.flushLocked()
	c.mu.Unlock()
}

// publishEach publishes every entry as a single message, concurrently,
// and hands each its own outcome.
func (c *committer) publishEach(group []*commitEntry) {
	var wg sync.WaitGroup
	for _, e := range group {
		wg.Go(func() {
			ctx, cancel := c.timeout()
			defer cancel()
			ack, err := c.js.PublishMsg(ctx, e.msg)
			e.done <- commitResult{ack: ack, err: err}
		})
	}
	wg.Wait()
}

func (c *committer) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), cmp.Or(c.attemptTimeout, DefaultPublishAttemptTimeout))
}

// batchAck is the server's answer to the commit of an atomic batch.
type batchAck struct {
	Error    *jetstream.APIError `json:"error,omitempty"`
	Stream   string              `json:"stream"`
	Sequence uint64              `json:"seq"`
	BatchID  string              `json:"batch"`
	Count    int                 `json:"count"`
}

// commitBatch publishes the group as one atomic batch and returns each
// message's PubAck. The messages of a batch are stored at consecutive
// sequences ending at the acknowledged one: the server commits a batch
// whole, in order, with nothing in between (a one-replica stream under
// one lock, a replicated one in one proposal).
func (c *committer) commitBatch(group []*commitEntry) ([]commitResult, error) {
	nc := c.js.Conn()
	id := nuid.Next()
	last := len(group) - 1
	for i, e := range group[:last] {
		m := batchMsg(e.msg, id, i+1, false)
		if err := nc.PublishMsg(m); err != nil {
			return nil, err
		}
	}
	ctx, cancel := c.timeout()
	defer cancel()
	resp, err := nc.RequestMsgWithContext(ctx, batchMsg(group[last].msg, id, len(group), true))
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, fmt.Errorf("%w: %w", jetstream.ErrNoStreamResponse, err)
		}
		return nil, err
	}
	var ack batchAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return nil, fmt.Errorf("%w: %w", jetstream.ErrInvalidJSAck, err)
	}
	if ack.Error != nil {
		return nil, ack.Error
	}
	if ack.BatchID != id || ack.Count != len(group) || ack.Sequence < uint64(len(group)) {
		return nil, fmt.Errorf("%w: batch %s of %d acknowledged as batch %q of %d at seq %d",
			jetstream.ErrInvalidJSAck, id, len(group), ack.BatchID, ack.Count, ack.Sequence)
	}
	first := ack.Sequence - uint64(last)
	results := make([]commitResult, len(group))
	for i := range group {
		results[i] = commitResult{ack: &jetstream.PubAck{Stream: ack.Stream, Sequence: first + uint64(i)}}
	}
	return results, nil
}

// batchMsg returns a copy of msg carrying the headers of message seq of
// batch id; msg itself stays fit for a single publish.
func batchMsg(msg *nats.Msg, id string, seq int, commit bool) *nats.Msg {
	h := make(nats.Header, len(msg.Header)+3)
	for k, v := range msg.Header {
		h[k] = v
	}
	h[batchIDHeader] = []string{id}
	h[batchSeqHeader] = []string{strconv.Itoa(seq)}
	if commit {
		h[batchCommitHeader] = []string{"1"}
	}
	return &nats.Msg{Subject: msg.Subject, Header: h, Data: msg.Data}
}

// publishMsg publishes one event's message, through the group committer
// when there is one. While the Ledger's guard refuses writes it publishes
// nothing and returns the guard's error. On a stream whose duplicate window
// allows it (retryPublish), an attempt unanswered for the attempt timeout,
// or refused for want of a stream leader, is sent again until ctx ends.
func (l *Ledger) publishMsg(ctx context.Context, msg *nats.Msg, msgID string) (*jetstream.PubAck, error) {
	if err := l.guard.Err(); err != nil {
		return nil, err
	}
	send := func(ctx context.Context) (*jetstream.PubAck, error) {
		if l.group != nil {
			return l.group.publish(ctx, msg, msgID)
		}
		return l.js.PublishMsg(ctx, msg)
	}
	if !l.retryPublish {
		return send(ctx)
	}
	for n := 0; ; n++ {
		attemptCtx, cancel := context.WithTimeout(ctx, l.attemptTimeout)
		ack, err := send(attemptCtx)
		cancel()
		if n > 0 && isConflict(err) {
			return l.landedEarlier(ctx, msg, msgID, err)
		}
		if ctx.Err() != nil || !unanswered(err) {
			return ack, err
		}
		// Unanswered: the stream's leader may have died with the request,
		// or there is none yet. The same message is safe to send again: if
		// an earlier attempt was stored, the server answers with a
		// duplicate ack naming it, or (a single server checks the expected
		// sequence first) with a conflict that landedEarlier resolves.
		if err := backoff(ctx, n); err != nil {
			return nil, err
		}
	}
}

// landedEarlier resolves a conflict met by a message sent again after an
// unanswered attempt: when an earlier attempt was stored, it returns a
// duplicate ack naming it, else the conflict.
func (l *Ledger) landedEarlier(ctx context.Context, msg *nats.Msg, msgID string, conflict error) (*jetstream.PubAck, error) {
	expected, err := strconv.ParseUint(msg.Header.Get(jetstream.ExpectedLastSubjSeqHeader), 10, 64)
	if err != nil {
		return nil, conflict
	}
	after, err := l.readMsgs(ctx, msg.Subject, expected, wire.MaxHistoryLimit)
	if err != nil {
		return nil, errors.Join(conflict, err)
	}
	for _, m := range after {
		if m.Header.Get(jetstream.MsgIDHeader) == msgID {
			return &jetstream.PubAck{Stream: l.streamName, Sequence: m.Sequence, Duplicate: true}, nil
		}
	}
	return nil, conflict
}
