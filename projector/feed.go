package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// feedCreateTimeout bounds the first attempts to create the feed's
// consumer; a healthy cluster answers in milliseconds. An attempt sent to
// a server that dies, or while the stream has no leader, is made again
// after this long, so that a new consumer exists within about this long of
// the new leader; after two attempts they get longer (up to 1s), for a
// cluster that is only slow (not longer: an attempt sent while JetStream
// had no meta leader goes unanswered, and waiting it out delays the index
// past the new leader by as long). (nats.go's ordered consumer waits 10s for
// each attempt and 1 to 10s between them: an index stood still up to 23s
// across a leader kill.)
const feedCreateTimeout = 500 * time.Millisecond

// feed delivers the stream's messages from a start sequence to handler,
// in order, each once, as nats.go's ordered consumer does: through an
// ephemeral consumer (one replica, in memory, no acks), recreated from the
// next sequence when it goes missing (no heartbeat for two heartbeats,
// deleted, a delivery out of order). Unlike the ordered consumer it makes
// each attempt to create one short and makes the next at once.
type feed struct {
	stream    jetstream.Stream
	heartbeat time.Duration
	handler   func(jetstream.Msg, *jetstream.MsgMetadata)
	log       *slog.Logger
	prefix    string // of the consumers' names
	// origin is the stream as the feed started on it (nil when unknown):
	// its name and creation time tell it from a stream created anew.
	origin *jetstream.StreamInfo

	mu       sync.Mutex // held while a message is handed over
	serial   int        // of the current consumer; older ones' messages are dropped
	next     uint64     // stream sequence of the next message to hand over
	delivers uint64     // deliveries by the current consumer so far
	reset    chan struct{}
	closed   chan struct{} // closed when the feed stops for good
	err      error         // why, nil when its context ended
}

// startFeed delivers the stream from startSeq on, each message with its
// parsed metadata (nil when it does not parse), until ctx ends or the
// connection closes; Closed then says so. It returns after the first
// consumer exists, or with an error when none could be created before ctx
// ended.
func startFeed(ctx context.Context, stream jetstream.Stream, startSeq uint64, heartbeat time.Duration, log *slog.Logger, handler func(jetstream.Msg, *jetstream.MsgMetadata)) (*feed, error) {
	f := &feed{stream: stream, heartbeat: heartbeat, handler: handler, log: log, prefix: "projector_" + nuid.Next(),
		origin: stream.CachedInfo(), next: startSeq, reset: make(chan struct{}, 1), closed: make(chan struct{})}
	cc, err := f.consume(ctx)
	if err != nil {
		return nil, err
	}
	go f.run(ctx, cc)
	return f, nil
}

// Closed is closed when the feed has stopped: its context ended (Err nil)
// or the connection closed.
func (f *feed) Closed() <-chan struct{} { return f.closed }

// Err returns why the feed stopped.
func (f *feed) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *feed) run(ctx context.Context, cc jetstream.ConsumeContext) {
	defer close(f.closed)
	for {
		select {
		case <-ctx.Done():
			cc.Stop()
			f.deleteConsumer(f.serial)
			return
		case <-f.reset:
		}
		cc.Stop()
		go f.deleteConsumer(f.serial) // best effort: its server may be gone
		var err error
		if cc, err = f.consume(ctx); err != nil {
			if ctx.Err() == nil {
				f.mu.Lock()
				f.err = err
				f.mu.Unlock()
			}
			return
		}
	}
}

// consume creates the next consumer, from the next sequence on, and
// consumes it, trying again while ctx lasts. Each attempt creates a
// consumer of its own name: one whose creation went unanswered may have
// been placed on a server that is gone, and asking for it again would
// only be told it is offline.
func (f *feed) consume(ctx context.Context) (jetstream.ConsumeContext, error) {
	for n := 0; ; n++ {
		f.mu.Lock()
		f.serial++
		f.delivers = 0
		serial, start := f.serial, f.next
		f.mu.Unlock()
		cfg := jetstream.ConsumerConfig{
			Name:              f.consumerName(serial),
			DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:       start,
			AckPolicy:         jetstream.AckNonePolicy,
			InactiveThreshold: 5 * time.Minute,
			Replicas:          1,
			MemoryStorage:     true,
		}
		var cons jetstream.Consumer
		var err error
		if serial > 1 {
			// The consumer was lost: the stream may have been deleted, and
			// one created anew in its place is another stream.
			err = f.sameStream(ctx)
			if errors.Is(err, ErrStreamMismatch) {
				return nil, err
			}
		}
		if err == nil {
			// Longer attempts after the first two, for a cluster too busy
			// to answer within the first.
			attemptCtx, cancel := context.WithTimeout(ctx, feedCreateTimeout<<min(n/2, 1))
			cons, err = f.stream.CreateOrUpdateConsumer(attemptCtx, cfg)
			cancel()
		}
		if err == nil {
			cc, err := cons.Consume(f.deliver(serial), jetstream.PullHeartbeat(f.heartbeat),
				jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { f.lost(serial, err) }))
			if err != nil {
				return nil, fmt.Errorf("projector: consume %s: %w", cfg.Name, err)
			}
			if n > 0 {
				f.log.Info("projector: consumer recreated", "from_seq", start, "attempts", n+1)
			}
			return cc, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, jetstream.ErrConnectionClosed) {
			return nil, fmt.Errorf("projector: consumer on %s: %w", cfg.Name, err)
		}
		// A stream deleted under the running ledger (the stream guard
		// refuses writes and says so) is waited for, the index answering
		// with what it folded; sameStream, before the next attempt, tells
		// it from one created anew in its place.
		if n&(n+1) == 0 { // attempts 1, 2, 4, 8...: a stream gone for long does not flood the log
			f.log.Warn("projector: creating the consumer", "attempt", n+1, "err", err)
		}
		go f.deleteConsumer(serial) // in case it was created after all
		t := time.NewTimer(min(time.Duration(n+1)*50*time.Millisecond, 250*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (f *feed) consumerName(serial int) string { return fmt.Sprintf("%s_%d", f.prefix, serial) }

// sameStream returns an error matching ErrStreamMismatch when the stream
// the feed reads was replaced: it exists, created at another time than the
// one the feed started on; jetstream.ErrStreamNotFound while it does not
// exist (no consumer is created then, so that none lands on a stream
// created a moment later); nil when it is the same stream, or when it does
// not answer (no leader: creating a consumer fails as well).
func (f *feed) sameStream(ctx context.Context) error {
	started := f.origin
	if started == nil {
		return nil
	}
	infoCtx, cancel := context.WithTimeout(ctx, feedCreateTimeout)
	defer cancel()
	info, err := f.stream.Info(infoCtx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return err
	case err != nil || info.Created.Equal(started.Created):
		return nil
	}
	return fmt.Errorf("projector: %w: stream %s was created anew at %s (the index folds the one created at %s)",
		ErrStreamMismatch, started.Config.Name, info.Created.Format(time.RFC3339Nano), started.Created.Format(time.RFC3339Nano))
}

// deleteConsumer deletes consumer serial, once it is replaced or the feed
// stops; one that cannot be deleted goes after its inactive threshold.
func (f *feed) deleteConsumer(serial int) {
	ctx, cancel := context.WithTimeout(context.Background(), feedCreateTimeout)
	defer cancel()
	_ = f.stream.DeleteConsumer(ctx, f.consumerName(serial))
}

// deliver hands the messages of consumer serial over in order; a delivery
// out of order (one lost on the way) replaces the consumer.
func (f *feed) deliver(serial int) func(jetstream.Msg) {
	return func(msg jetstream.Msg) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if serial != f.serial {
			return
		}
		meta, err := msg.Metadata()
		if err != nil {
			f.handler(msg, nil) // the fold reports the unreadable message
			return
		}
		if meta.Sequence.Consumer != f.delivers+1 || meta.Sequence.Stream < f.next {
			f.resetLocked(serial)
			return
		}
		f.delivers = meta.Sequence.Consumer
		f.next = meta.Sequence.Stream + 1
		f.handler(msg, meta)
	}
}

// lost handles an error of consumer serial: the connection closed stops
// the feed; anything else (no heartbeat, the consumer deleted, no
// responders) replaces the consumer.
func (f *feed) lost(serial int, err error) {
	f.log.Warn("projector: consumer", "err", err)
	f.mu.Lock()
	defer f.mu.Unlock()
	if errors.Is(err, jetstream.ErrConnectionClosed) {
		if f.err == nil {
			f.err = err
		}
	}
	f.resetLocked(serial)
}

func (f *feed) resetLocked(serial int) {
	if serial != f.serial {
		return
	}
	select {
	case f.reset <- struct{}{}:
	default:
	}
}
