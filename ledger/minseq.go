package ledger

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/micro"
)

// How the service keeps lookups that wait for min_seq from starving
// commands: a min_seq the stream has not assigned is answered at once, and
// the others wait in a pool of their own (ServiceConfig.MaxWaiting), apart
// from the MaxInFlight slots of commands. See docs/performance.md, "Floods".

// MinSeqMargin is how far beyond the last stream sequence known to an
// instance a min_seq may be and still be waited for; one further is
// answered at once with 503 (errBeyondStream).
//
// The instance knows the stream's last sequence from its index (the
// projector's view: the sequence of the last message delivered plus the
// number still pending after it), from the acks of the commands it
// answered itself, and from the stream's info, which it asks for when a
// lookup goes beyond the margin, at most once per headRefreshInterval.
// The index lags the stream by its delivery delay (milliseconds when live)
// and knows nothing yet of what other instances appended since, so a
// client that wrote through another instance and reads here with that
// write's seq may be a little ahead of it. 1000 sequences cover 200 ms of
// lag at 5,000 appends/s, several times the measured group commit rate;
// a lookup within them waits as before. A lookup beyond them is told 503,
// "retry later", not 400: on a lagging instance it may still be a real
// seq, and the retry finds the known sequence refreshed.
const MinSeqMargin = 1000

// headRefreshInterval is the least time between two reads of the stream's
// info by one service: a flood of far-future min_seq costs the stream
// leader at most ten small requests a second.
const headRefreshInterval = 100 * time.Millisecond

// headRefreshTimeout bounds one read of the stream's info.
const headRefreshTimeout = 2 * time.Second

// errTooManyWaiting answers a lookup with min_seq when MaxWaiting lookups
// already wait.
var errTooManyWaiting = &wire.Error{Code: 503, Description: "too many lookups waiting for min_seq; retry later"}

// streamSeqReader is a StateReader that knows the stream's last sequence
// as its index has seen it (projector.Index.StreamSeq).
type streamSeqReader interface {
	StreamSeq() uint64
}

// streamHead is what a Service knows of the stream's last sequence beyond
// its reader: acks and the stream info it read.
type streamHead struct {
	seq         atomic.Uint64
	lastRefresh atomic.Int64 // unix nanoseconds of the last read of the stream's info
	refreshing  atomic.Bool
}

// note records that the stream holds seq.
func (h *streamHead) note(seq uint64) {
	for {
		cur := h.seq.Load()
		if seq <= cur || h.seq.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// knownLastSeq returns the last stream sequence this instance knows of.
func (s *Service) knownLastSeq() uint64 {
	last := s.head.seq.Load()
	if r, ok := s.reader.(streamSeqReader); ok {
		last = max(last, r.StreamSeq())
	}
	return last
}

// beyondStream returns the 503 for a min_seq more than MinSeqMargin beyond
// the last stream sequence known here, and starts a refresh of that
// sequence from the stream; nil when the lookup may wait.
func (s *Service) beyondStream(minSeq uint64) error {
	last := s.knownLastSeq()
	if minSeq <= last || minSeq-last <= MinSeqMargin {
		return nil
	}
	s.refreshHead()
	return &wire.Error{Code: 503, Description: fmt.Sprintf(
		"min_seq %d is beyond the stream's last sequence (%d, as this instance knows it); retry later if a write was just acknowledged with it", minSeq, last)}
}

// refreshHead reads the stream's last sequence from its info, in the
// background, unless a read is under way or the last one began less than
// headRefreshInterval ago.
func (s *Service) refreshHead() {
	l := s.currentLedger()
	if l == nil {
		return // no stream yet (ServiceConfig.DeferCommands): the index's view stands
	}
	now := time.Now().UnixNano()
	if now-s.head.lastRefresh.Load() < int64(headRefreshInterval) || !s.head.refreshing.CompareAndSwap(false, true) {
		return
	}
	s.head.lastRefresh.Store(now)
	if !s.track() {
		s.head.refreshing.Store(false)
		return
	}
	go func() {
		defer s.wg.Done()
		defer s.head.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(s.ctx, headRefreshTimeout)
		defer cancel()
		info, err := l.stream.Info(ctx)
		if err != nil {
			s.log.Debug("consent service: reading the stream's last sequence", "error", err)
			return
		}
		s.head.note(info.State.LastSeq)
	}()
}

// noteAck records the sequence of an event this service appended.
func (s *Service) noteAck(body any) {
	switch r := body.(type) {
	case wire.Reply:
		s.head.note(r.Seq)
	case wire.PurposeReply:
		s.head.note(r.Seq)
	}
}

// goWait answers a lookup that waits for min_seq in a goroutine of its own
// holding one of MaxWaiting slots (not one of the commands' MaxInFlight),
// bounded by MinSeqTimeout. With every slot taken it answers 503 at once
// rather than queue. Once Stop has begun it runs w inline.
func (s *Service) goWait(req micro.Request, w work) {
	if !s.track() {
		s.inline(req, s.cfg.MinSeqTimeout, w)
		return
	}
	select {
	case s.waitSlots <- struct{}{}:
	default:
		s.wg.Done()
		s.async[req.Subject()].waitPoolFull.Add(1)
		s.respond(req, nil, errTooManyWaiting)
		return
	}
	c := s.async[req.Subject()]
	c.inFlight.Add(1)
	s.spawn(req, c, s.waitSlots, s.cfg.MinSeqTimeout, s.observeMinSeq(w))
}
