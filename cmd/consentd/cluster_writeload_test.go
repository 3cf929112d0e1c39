package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
)

// ack is one acknowledged command of a write load.
type ack struct {
	writer         int
	kind           events.Kind
	consent        events.Key
	idempotencyKey string
	seq            uint64
	eventID        string
	duplicate      bool      // the acknowledgement of a retry whose first attempt had landed
	firstSent      time.Time // when the command was first sent
	sent           time.Time // when the attempt that was acknowledged was sent
	at             time.Time // when the reply came
	attempts       int
}

// writeLoad is a steady, bounded write load: a few writers, each granting
// and revoking consents only it writes to, one command at a time, through
// the Go client. Every command carries an idempotency key of its own; a
// command that fails (timeout, 503, no responders) is sent again with the
// same key until it is acknowledged, so a retry after a lost
// acknowledgement never appends twice. A command still unacknowledged when
// a round of load ends is carried over to the next round, key and all.
type writeLoad struct {
	writers []*loadWriter
	// callTimeout bounds one attempt; a command not answered in time is
	// sent again. Default 1s.
	callTimeout time.Duration

	acked atomic.Int64
	mu    sync.Mutex
	acks  []ack
	// failures counts failed attempts by error, for the test log.
	failures map[string]int
}

// loadWriter is one writer of a writeLoad.
type loadWriter struct {
	id       int
	name     string
	consents []events.Key
	granted  []bool
	op       int             // number of the next command
	pending  *events.Command // the command being sent, until acknowledged
	pendKind events.Kind
}

// newWriteLoad returns a load of writers each owning consentsEach consents
// (purpose "newsletter", subjects <name>-w<writer>-<n>@example.com).
func newWriteLoad(name string, writers, consentsEach int) *writeLoad {
	l := &writeLoad{failures: map[string]int{}, callTimeout: time.Second}
	for w := range writers {
		lw := &loadWriter{id: w, name: name, granted: make([]bool, consentsEach)}
		for n := range consentsEach {
			lw.consents = append(lw.consents, events.Key{Tenant: events.DefaultTenant,
				SubjectID: fmt.Sprintf("%s-w%d-%d@example.com", name, w, n), Purpose: "newsletter"})
		}
		l.writers = append(l.writers, lw)
	}
	return l
}

// run runs one round of the load: every writer sends commands through its
// client (clients[w % len(clients)]) until ctx ends. It returns when all
// writers have stopped.
func (l *writeLoad) run(ctx context.Context, clients []*client.Client) {
	var wg sync.WaitGroup
	for i, w := range l.writers {
		client := clients[i%len(clients)]
		wg.Go(func() { l.write(ctx, w, client) })
	}
	wg.Wait()
}

// start runs a round in the background; stop ends it and waits.
func (l *writeLoad) start(ctx context.Context, clients []*client.Client) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, clients)
	}()
	return func() {
		cancel()
		<-done
	}
}

func (l *writeLoad) write(ctx context.Context, w *loadWriter, client *client.Client) {
	for ctx.Err() == nil {
		if w.pending == nil {
			n := w.op % len(w.consents)
			key := w.consents[n]
			w.pendKind = events.KindGrant
			if w.granted[n] {
				w.pendKind = events.KindRevoke
			}
			w.pending = &events.Command{SubjectID: key.SubjectID, Purpose: key.Purpose, Actor: "load",
				IdempotencyKey: fmt.Sprintf("%s-w%d-op%d", w.name, w.id, w.op)}
		}
		attempts, firstSent := 0, time.Now()
		for {
			attempts++
			sent := time.Now()
			callCtx, cancel := context.WithTimeout(ctx, l.callTimeout)
			var reply wire.Reply
			var err error
			if w.pendKind == events.KindGrant {
				reply, err = client.Grant(callCtx, *w.pending)
			} else {
				reply, err = client.Revoke(callCtx, *w.pending)
			}
			cancel()
			if err == nil {
				l.record(ack{writer: w.id, kind: w.pendKind, consent: w.pending.Key(), idempotencyKey: w.pending.IdempotencyKey,
					seq: reply.Seq, eventID: reply.Event.ID, duplicate: reply.Duplicate, firstSent: firstSent, sent: sent, at: time.Now(), attempts: attempts})
				n := w.op % len(w.consents)
				w.granted[n] = !w.granted[n]
				w.op++
				w.pending = nil
				break
			}
			if ctx.Err() != nil {
				return // still pending: the next round sends it again
			}
			l.fail(err)
			// Pace the retries of a command that fails at once (no
			// responders while a service reconnects).
			t := time.NewTimer(20 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

func (l *writeLoad) record(a ack) {
	l.mu.Lock()
	l.acks = append(l.acks, a)
	l.mu.Unlock()
	l.acked.Add(1)
}

func (l *writeLoad) fail(err error) {
	reason := err.Error()
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		reason = fmt.Sprintf("%d %s", we.Code, we.Description)
	case errors.Is(err, context.DeadlineExceeded):
		reason = "timeout"
	}
	if i := strings.Index(reason, ": "); i > 0 && we == nil {
		reason = reason[:i]
	}
	l.mu.Lock()
	l.failures[reason]++
	l.mu.Unlock()
}

// snapshot returns the acknowledgements so far.
func (l *writeLoad) snapshot() []ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ack(nil), l.acks...)
}

// conflicts returns the failures with code 409. A writer is the only one
// writing its consents and retries with the same key, so any 409 means an
// append decided on a stale state or a retry was not recognised.
func (l *writeLoad) conflicts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for reason, n := range l.failures {
		if strings.HasPrefix(reason, "409 ") {
			out[reason] = n
		}
	}
	return out
}

// waitForAcks waits until the load has n acknowledgements in all, failing
// the test after timeout.
func (l *writeLoad) waitForAcks(t *testing.T, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for l.acked.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("write load: %d acknowledgements after %s, want %d; failures: %v", l.acked.Load(), timeout, n, l.failureSummary())
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatal("test context ended")
		}
	}
}

func (l *writeLoad) failureSummary() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.failures))
	for k, v := range l.failures {
		out[k] = v
	}
	return out
}
