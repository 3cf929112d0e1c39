package client

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// requester sends the requests of every Client on one connection and
// routes their replies from one wildcard reply subscription, as a
// nats.Conn does for its own requests. It exists so that a call can wait on
// the caller's context and on the Client's timeout at once: the
// connection's own requests take either a context or a timeout, and
// deriving a timed context from a context that can end but has no
// deadline costs each call a context, a timer and a registration with its
// parent, shared by every concurrent caller (see docs/performance.md,
// "fifth pass").
//
// A requester lives as long as its subscription: until the connection
// closes.
type requester struct {
	nc     *nats.Conn
	prefix string        // reply subjects are prefix + a token
	closed chan struct{} // closed when the reply subscription ends

	mu      sync.Mutex
	waiting map[uint64]chan *nats.Msg // by token
	next    uint64
}

// requesters holds the requester of each connection that has one.
var requesters = struct {
	sync.Mutex
	byConn map[*nats.Conn]*requester
}{byConn: map[*nats.Conn]*requester{}}

// requesterFor returns nc's requester, subscribing it first if nc has
// none. It fails when nc cannot subscribe (closed or draining).
func requesterFor(nc *nats.Conn) (*requester, error) {
	requesters.Lock()
	defer requesters.Unlock()
	if r := requesters.byConn[nc]; r != nil {
		return r, nil
	}
	r := &requester{
		nc:      nc,
		prefix:  nc.NewInbox() + ".",
		closed:  make(chan struct{}),
		waiting: map[uint64]chan *nats.Msg{},
	}
	sub, err := nc.Subscribe(r.prefix+"*", r.deliver)
	if err != nil {
		return nil, err
	}
	// Replies are as many as the calls in flight: never drop one as a
	// slow consumer's.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	sub.SetClosedHandler(func(string) { r.end() })
	if !sub.IsValid() {
		// Closed before the handler was set, so it may never run.
		return nil, nats.ErrConnectionClosed
	}
	requesters.byConn[nc] = r
	return r, nil
}

// end fails the requests still waiting and forgets r, once its
// subscription has ended.
func (r *requester) end() {
	close(r.closed)
	requesters.Lock()
	if requesters.byConn[r.nc] == r {
		delete(requesters.byConn, r.nc)
	}
	requesters.Unlock()
}

// request publishes data to subj and waits for its reply until ctx ends
// or, when ctx has no deadline, for at most timeout. A reply saying that
// nothing subscribes to subj fails with nats.ErrNoResponders, the timeout
// with context.DeadlineExceeded (matching nats.ErrTimeout too), and the
// connection closing with nats.ErrConnectionClosed.
func (r *requester) request(ctx context.Context, subj string, data []byte, timeout time.Duration) (*nats.Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	reply := replyChans.Get().(chan *nats.Msg)
	r.mu.Lock()
	r.next++
	token := r.next
	r.waiting[token] = reply
	r.mu.Unlock()

	if err := r.nc.PublishRequest(subj, r.prefix+strconv.FormatUint(token, 36), data); err != nil {
		r.forget(token, reply)
		return nil, err
	}
	var expired <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		t := timers.Get().(*time.Timer)
		t.Reset(timeout)
		defer func() { t.Stop(); timers.Put(t) }()
		expired = t.C
	}
	select {
	case msg := <-reply:
		replyChans.Put(reply)
		if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
			return nil, nats.ErrNoResponders
		}
		return msg, nil
	case <-ctx.Done():
		r.forget(token, reply)
		return nil, ctx.Err()
	case <-expired:
		r.forget(token, reply)
		return nil, fmt.Errorf("%w (%w)", context.DeadlineExceeded, nats.ErrTimeout)
	case <-r.closed:
		r.forget(token, reply)
		return nil, nats.ErrConnectionClosed
	}
}

// deliver hands a reply to the request waiting for it; replies nobody
// waits for any more are dropped.
func (r *requester) deliver(msg *nats.Msg) {
	rest, ok := strings.CutPrefix(msg.Subject, r.prefix)
	if !ok {
		return
	}
	token, err := strconv.ParseUint(rest, 36, 64)
	if err != nil {
		return
	}
	r.mu.Lock()
	reply, ok := r.waiting[token]
	delete(r.waiting, token)
	r.mu.Unlock()
	if ok {
		reply <- msg // buffered, and token was only waiting once
	}
}

// forget stops waiting for token's reply and returns its channel to the
// pool, empty.
func (r *requester) forget(token uint64, reply chan *nats.Msg) {
	r.mu.Lock()
	_, waiting := r.waiting[token]
	delete(r.waiting, token)
	r.mu.Unlock()
	if !waiting {
		<-reply // deliver took it first and is sending on it
	}
	replyChans.Put(reply)
}

// replyChans holds empty reply channels of capacity one.
var replyChans = sync.Pool{New: func() any { return make(chan *nats.Msg, 1) }}

// timers holds stopped timers. Since Go 1.23 a stopped timer's channel
// never yields a stale tick, so one can be reset and reused.
var timers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}
