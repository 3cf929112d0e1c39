package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/changefeed"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// A watch follows the stream itself, not the service: every change of a
// consent (and of the purpose registry) as the ledger appended it, in
// stream order, delivered as the event plus the status it leads to.
//
// The status after an event needs no history: events.Evolve gives the same
// state whatever came before (every event carries the policy version, and
// grants and expiries their expires_at), so a watcher that starts in the
// middle of the stream computes each status from the event alone. Only
// allowed and outdated depend on more: the purpose's current policy
// version. The watcher therefore also follows the purpose registry
// subjects of its filter, and when it starts mid-stream it first reads the
// registry as it stood just before the first change it delivers (one
// batched direct get of the last purpose event per subject, up to that
// sequence).

// WatchOptions says what a watch delivers and where it starts.
type WatchOptions struct {
	// Tenant whose changes to deliver; default "default". "*" watches
	// every tenant.
	Tenant string
	// Purposes to deliver; none means every purpose of the tenant.
	Purposes []string

	// Where to start: at most one of StartSeq (the first stream sequence
	// to deliver) and StartTime (the first change the stream stored at or
	// after it). Neither: only changes stored after Watch returns. A
	// durable watch uses them only when it creates its consumer; later it
	// resumes where it was acknowledged.
	StartSeq  uint64
	StartTime time.Time

	// Durable names a durable JetStream consumer for this watch (the
	// subscriber's name, e.g. "mailer"): changes are delivered at least
	// once and must be acknowledged (Change.Ack); after a restart of the
	// subscriber or of the server, a watch with the same name resumes
	// after the last acknowledged change (unacknowledged ones come again).
	// Without it the watch is an ephemeral ordered consumer: exactly the
	// stream's order, no acknowledgements, nothing kept on the server; a
	// restarted watcher resumes by passing the last Seq it handled + 1 as
	// StartSeq. With ClientOptions.ServiceFeed the name follows the tenant
	// name rule (events.ValidateName), the consumer is named
	// wire.FeedConsumerName(tenant, Durable), and an ephemeral watch is a
	// consumer without acknowledgements that the service opens, reopened
	// after the last change delivered when one is lost on the way (same
	// order, no gaps) and deleted by the server after
	// ledger.DefaultFeedInactiveThreshold without a reader.
	Durable string
	// AckWait (durable only): a change not acknowledged within it is
	// delivered again; default DefaultAckWait.
	AckWait time.Duration
	// MaxAckPending (durable only): at most this many changes are
	// delivered and not yet acknowledged; default DefaultMaxAckPending.
	// Redeliveries after AckWait can overtake newer changes: compare
	// Change.Seq with the last one handled for that consent.
	MaxAckPending int
}

// Defaults of WatchOptions for durable watches; the service's feed
// (consent.v1.feed.open) defaults a durable feed's consumer the same way.
const (
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAckPending = 256
)

// spec returns the options as the changefeed package takes them.
func (o *WatchOptions) spec() *changefeed.Spec {
	s := changefeed.Spec(*o)
	return &s
}

// Change is one change delivered by a watch: a consent event, or a change
// of the purpose registry.
type Change struct {
	Seq  uint64    // stream sequence of the event
	Time time.Time // when the stream stored it

	// Event is the consent event, nil for a purpose change. Status is the
	// status it leads to, judged when delivered (expiry by the clock, the
	// policy version against the purpose's version the watch knows at
	// that point of the stream); its IndexSeq is Seq.
	Event  *events.Event
	Status events.Status

	// PurposeEvent is the registry event, nil for a consent change, and
	// Purpose the purpose as it leaves it. A raised policy version makes
	// every grant of the purpose below it outdated at once, without an
	// event per consent: a subscriber that acts on grants must act on
	// this too.
	PurposeEvent *events.PurposeEvent
	Purpose      events.Purpose

	// Err is set, matching wire.ErrUnreadableEvent, for a message of the
	// stream that fails the integrity checks (events.CheckMessage: the
	// projector records it as an integrity violation, and its consent is
	// not allowed until an operator quarantines it) or that a newer
	// ledger wrote. Event and PurposeEvent are nil.
	Err error

	// Delivered counts the deliveries of this change: above 1 for a
	// redelivery of a durable watch.
	Delivered uint64
	// Pending is how many changes of the watch's filter the stream holds
	// after this one (as the server knew when it sent it).
	Pending uint64

	msg     jetstream.Msg
	watcher *Watcher // set on a durable watch's changes
}

// Ack acknowledges the change of a durable watch and waits until the
// server has recorded it, so that once it returns nil a restarted watch
// resumes after this change. On an ephemeral watch it does nothing.
func (c *Change) Ack(ctx context.Context) error {
	if c.watcher == nil {
		return nil
	}
	if err := c.msg.DoubleAck(ctx); err != nil {
		return err
	}
	c.watcher.mu.Lock()
	delete(c.watcher.unacked, c.Seq)
	c.watcher.mu.Unlock()
	return nil
}

// Watcher delivers the changes of one watch. Next must be called from one
// goroutine at a time; Stop from any.
type Watcher struct {
	opts     WatchOptions
	js       jetstream.JetStream
	stream   string
	filters  []string
	iter     jetstream.MessagesContext
	durable  bool
	mu       sync.Mutex // guards purposes and unacked
	purposes map[events.PurposeKey]events.Purpose
	unacked  map[uint64]jetstream.Msg // durable: delivered by Next, not acknowledged
	loaded   bool
	now      func() time.Time

	// Through the service (ClientOptions.ServiceFeed): the client that
	// opens the feed and reads the registry, and for an ephemeral feed the
	// last consumer and stream sequences delivered (a gap in the consumer
	// sequence reopens the feed after lastSeq).
	client      *Client
	feedStart   uint64 // FeedOpenReply.StartSeq of the first feed
	lastConsSeq uint64
	lastSeq     uint64
}

// Watch starts a watch over the stream (ClientOptions.Stream, default
// wire.DefaultStream) with the client's connection. It needs JetStream access
// to that stream (consumer creation and direct get), not the consent
// service; with ClientOptions.ServiceFeed it needs the service's feed
// endpoints instead (consent.v1.feed.open and feed.purposes) and only the
// consumer API of the consumer the service opens (docs/subscribers.md).
// Stop the Watcher when done.
//
// Errors: a *events.FieldError for invalid options; an error matching
// wire.ErrDurableMismatch; JetStream errors (no stream, no permission) as they
// come; with ServiceFeed, the service's *wire.Error (400 naming the field, also
// for a tenant not the account's; 503 when no service answers).
func (c *Client) Watch(ctx context.Context, opts WatchOptions) (*Watcher, error) {
	if err := opts.spec().Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, fmt.Errorf("consent: watch: %w", err)
	}
	w := &Watcher{opts: opts, js: js, stream: c.stream, filters: opts.spec().Filters(), now: time.Now,
		purposes: make(map[events.PurposeKey]events.Purpose), unacked: make(map[uint64]jetstream.Msg)}
	if c.feed {
		w.client = c
		err = w.startFeed(ctx, opts.StartSeq)
	} else if opts.Durable != "" {
		err = w.startDurable(ctx)
	} else {
		err = w.startOrdered(ctx)
	}
	if err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Watcher) startOrdered(ctx context.Context) error {
	policy, seq, at := w.opts.spec().DeliverPolicy()
	cons, err := w.js.OrderedConsumer(ctx, w.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: w.filters,
		DeliverPolicy:  policy,
		OptStartSeq:    seq,
		OptStartTime:   at,
	})
	if err != nil {
		return fmt.Errorf("consent: watch %s: %w", w.stream, err)
	}
	w.iter, err = cons.Messages()
	if err != nil {
		return fmt.Errorf("consent: watch %s: %w", w.stream, err)
	}
	return nil
}

func (w *Watcher) startDurable(ctx context.Context) error {
	w.durable = true
	stream, err := w.js.Stream(ctx, w.stream)
	if err != nil {
		return fmt.Errorf("consent: watch %s: %w", w.stream, err)
	}
	policy, seq, at := w.opts.spec().DeliverPolicy()
	cons, _, err := changefeed.OpenDurable(ctx, stream, jetstream.ConsumerConfig{
		Durable:        w.opts.Durable,
		Description:    "consent watch " + w.opts.Durable,
		FilterSubjects: w.filters,
		DeliverPolicy:  policy,
		OptStartSeq:    seq,
		OptStartTime:   at,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        changefeed.OrDefault(w.opts.AckWait, DefaultAckWait),
		MaxAckPending:  changefeed.OrDefault(w.opts.MaxAckPending, DefaultMaxAckPending),
	})
	if err != nil {
		return durableError(err)
	}
	w.iter, err = cons.Messages()
	if err != nil {
		return fmt.Errorf("consent: durable watch %s: %w", w.opts.Durable, err)
	}
	return nil
}

// durableError makes a 409 of changefeed.OpenDurable (from this client or from the
// service) match wire.ErrDurableMismatch.
func durableError(err error) error {
	if we, ok := errors.AsType[*wire.Error](err); ok && we.Code == 409 && strings.Contains(we.Description, wire.ErrDurableMismatch.Error()) {
		return fmt.Errorf("%w: %s", wire.ErrDurableMismatch, we.Description)
	}
	return err
}

// startFeed asks the service for the watch's consumer (an ephemeral one
// starting at startSeq when it is set) and reads it through the API prefix
// the service names: js.Consumer (CONSUMER.INFO) and Messages
// (CONSUMER.MSG.NEXT, $JS.ACK), nothing else of the JetStream API.
func (w *Watcher) startFeed(ctx context.Context, startSeq uint64) error {
	q := wire.FeedOpenRequest{Tenant: w.opts.Tenant, Purposes: w.opts.Purposes, Durable: w.opts.Durable,
		StartSeq: startSeq, MaxAckPending: w.opts.MaxAckPending}
	if startSeq == 0 && !w.opts.StartTime.IsZero() {
		t := w.opts.StartTime
		q.StartTime = &t
	}
	if w.opts.AckWait > 0 {
		q.AckWait = w.opts.AckWait.String()
	}
	var r wire.FeedOpenReply
	if err := w.client.call(ctx, wire.SubjectFeedOpen, q, &r); err != nil {
		return durableError(err)
	}
	js, err := jetstream.NewWithAPIPrefix(w.client.nc, r.APIPrefix)
	if err != nil {
		return fmt.Errorf("consent: watch: %w", err)
	}
	cons, err := js.Consumer(ctx, r.Stream, r.Consumer)
	if err != nil {
		return fmt.Errorf("consent: watch %s: consumer %s: %w", r.Stream, r.Consumer, err)
	}
	w.js, w.stream, w.durable = js, r.Stream, r.Durable
	if w.feedStart == 0 {
		w.feedStart = r.StartSeq
	}
	w.iter, err = cons.Messages()
	if err != nil {
		return fmt.Errorf("consent: watch %s: %w", r.Stream, err)
	}
	return nil
}

// Next waits for the next change and returns it. It returns ctx's error
// when ctx ends first (the watch goes on: call Next again), and an error
// matching jetstream.ErrMsgIteratorClosed after Stop.
func (w *Watcher) Next(ctx context.Context) (*Change, error) {
	msg, meta, err := w.next(ctx)
	if err != nil {
		return nil, err
	}
	ch := &Change{Seq: meta.Sequence.Stream, Time: meta.Timestamp, Delivered: meta.NumDelivered,
		Pending: meta.NumPending, msg: msg}
	if err := w.preload(ctx, ch.Seq); err != nil {
		if w.durable {
			_ = msg.Nak() // deliver it again once the registry can be read
		}
		return nil, err
	}
	if w.durable {
		ch.watcher = w
		w.mu.Lock()
		w.unacked[ch.Seq] = msg
		w.mu.Unlock()
	}
	subj := msg.Subject()
	if strings.HasPrefix(subj, events.PurposeSubjectPrefix) {
		ev, err := changefeed.DecodeStoredPurpose(&jetstream.RawStreamMsg{Subject: subj, Sequence: ch.Seq, Data: msg.Data()})
		if err != nil {
			ch.Err = err
			return ch, nil
		}
		ch.PurposeEvent = ev
		ch.Purpose = w.applyPurpose(ev, ch.Seq)
		return ch, nil
	}
	// The projector's rule, as far as one message shows it (the link
	// needs the consent's history).
	ev, check, err := events.CheckMessage(subj, msg.Headers().Get(events.HeaderEventType), msg.Data(), false)
	if check != "" {
		ch.Err = fmt.Errorf("%w: seq %d on %s: %s check: %v", wire.ErrUnreadableEvent, ch.Seq, subj, check, err)
		return ch, nil
	}
	if ev.IsSealed() && w.client != nil {
		// Sealed under the person's data key, which only the service
		// holds: it opens it for us, unless the person was erased.
		if err := w.client.openFromFeed(ctx, ev, ch.Seq); err != nil {
			if w.durable {
				w.mu.Lock()
				delete(w.unacked, ch.Seq)
				w.mu.Unlock()
				_ = msg.Nak() // deliver it again once the service answers
			}
			return nil, err
		}
	}
	ch.Event = ev
	c := events.Evolve(events.NewConsent(ev.Key()), ev, ch.Seq)
	w.mu.Lock()
	p := w.purposes[events.PurposeKey{Tenant: ev.Tenant, Purpose: ev.Purpose}]
	w.mu.Unlock()
	ch.Status = c.View(w.now(), p.RequiredPolicyVersion())
	ch.Status.IndexSeq = ch.Seq
	return ch, nil
}

// next returns the next message. An ephemeral feed through the service
// (a pull consumer without acknowledgements) checks that the consumer
// sequence goes up by one: when a message was lost on the way (a
// reconnect), it opens a new feed after the last change delivered, as an
// ordered consumer does, so the watch has no gap.
func (w *Watcher) next(ctx context.Context) (jetstream.Msg, *jetstream.MsgMetadata, error) {
	for {
		msg, err := w.iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, nil, err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, nil, fmt.Errorf("consent: watch: %w", err)
		}
		if w.client == nil || w.durable {
			return msg, meta, nil
		}
		if w.lastConsSeq == 0 || meta.Sequence.Consumer == w.lastConsSeq+1 {
			w.lastConsSeq, w.lastSeq = meta.Sequence.Consumer, meta.Sequence.Stream
			return msg, meta, nil
		}
		w.iter.Stop()
		if err := w.startFeed(ctx, w.lastSeq+1); err != nil {
			return nil, nil, err
		}
		w.lastConsSeq = 0
	}
}

// applyPurpose folds a purpose event into the watcher's registry, unless
// it already knows a later state (a redelivery), and returns the purpose
// as the event leaves it.
func (w *Watcher) applyPurpose(ev *events.PurposeEvent, seq uint64) events.Purpose {
	next := events.EvolvePurpose(events.NewPurpose(ev.Key()), ev, seq)
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur, ok := w.purposes[ev.Key()]; !ok || cur.Seq < seq {
		w.purposes[ev.Key()] = next
	}
	return next
}

// preload reads, before the first change a watch delivers, the purpose
// registry of its filter as it stood just before that change.
func (w *Watcher) preload(ctx context.Context, firstSeq uint64) error {
	if w.loaded {
		return nil
	}
	if firstSeq > 1 {
		var subjects []string
		for _, f := range w.filters {
			if strings.HasPrefix(f, events.PurposeSubjectPrefix) {
				subjects = append(subjects, f)
			}
		}
		if w.client != nil {
			return w.preloadFeed(ctx, firstSeq)
		}
		msgs, err := jetstreamext.GetLastMsgsFor(ctx, w.js, w.stream, subjects, jetstreamext.GetLastMsgsUpToSeq(firstSeq-1))
		if err != nil {
			return fmt.Errorf("consent: watch: read the purpose registry: %w", err)
		}
		for m, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				return fmt.Errorf("consent: watch: read the purpose registry: %w", err)
			}
			if ev, err := changefeed.DecodeStoredPurpose(m); err == nil {
				w.applyPurpose(ev, m.Sequence)
			}
		}
	}
	w.loaded = true
	return nil
}

// preloadFeed is preload through the service (consent.v1.feed.purposes).
func (w *Watcher) preloadFeed(ctx context.Context, firstSeq uint64) error {
	var r wire.FeedPurposesReply
	q := wire.FeedPurposesRequest{Tenant: w.opts.Tenant, Purposes: w.opts.Purposes, UpToSeq: firstSeq - 1}
	if err := w.client.call(ctx, wire.SubjectFeedPurposes, q, &r); err != nil {
		return fmt.Errorf("consent: watch: read the purpose registry: %w", err)
	}
	for _, m := range r.Messages {
		if ev, err := changefeed.DecodeStoredPurpose(&jetstream.RawStreamMsg{Subject: m.Subject, Sequence: m.Seq, Data: m.Data}); err == nil {
			w.applyPurpose(ev, m.Seq)
		}
	}
	w.loaded = true
	return nil
}

// Stop ends the watch. A durable watch's consumer stays on the server,
// with what was acknowledged, for the next Watch of that name; Stop gives
// back (negatively acknowledges) the changes Next returned that were not
// acknowledged, and those the client had fetched ahead, so that the next
// watch of that name gets them at once rather than after AckWait (which
// is what happens when a subscriber dies without Stop).
func (w *Watcher) Stop() {
	if !w.durable {
		w.iter.Stop()
		return
	}
	w.iter.Drain()
	w.mu.Lock()
	seqs := slices.Sorted(maps.Keys(w.unacked))
	giveBack := make([]jetstream.Msg, 0, len(seqs))
	for _, seq := range seqs {
		giveBack = append(giveBack, w.unacked[seq])
	}
	clear(w.unacked)
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for {
		msg, err := w.iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			break
		}
		giveBack = append(giveBack, msg)
	}
	for _, msg := range giveBack {
		_ = msg.Nak()
	}
	_ = w.js.Conn().FlushWithContext(ctx)
}
