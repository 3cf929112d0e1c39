package projector

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// checker runs inspect (decoding and hashing, most of the cost of an
// event) on several goroutines and hands the results back in stream
// order. The consumer callback gathers messages into runs of up to
// checkRunMax while the stream says many more are pending, so that a
// catch-up passes work between goroutines once a run rather than once a
// message; near the stream's end each message is a run of its own, so the
// live tail waits for nothing. Each run is queued for a worker and, in
// order, for the fold.
type checker struct {
	jobs    chan *checkRun
	ordered chan *checkRun
	done    chan struct{}
	wg      sync.WaitGroup
	runs    sync.Pool

	mu      sync.Mutex // filling, between the callback and the timer
	filling *checkRun
	timer   *time.Timer   // sends a run whose pending messages did not come
	linger  time.Duration // checkRunWait; tests change it
}

// checkRun is a run of consecutive messages and, once ready has a value,
// their deliveries.
type checkRun struct {
	msgs  []jetstream.Msg
	metas []*jetstream.MsgMetadata // nil where the metadata did not parse
	out   []delivery
	ready chan struct{}
}

const (
	// checkRunMax is the most messages in a run.
	checkRunMax = 64
	// checkRunBehind is how many messages must be pending after one for
	// it to wait in a run for the next. Closer to the stream's end (the
	// live tail, where a group commit lands 64 events at once) each
	// message is a run of its own, so that both workers check the events
	// of one batch and the fold starts on the first at once: with runs
	// there, group commit measured about 10% slower.
	checkRunBehind = 4 * checkRunMax
	// checkRunWait is how long a run waits for a message the stream said
	// was pending (a consumer that is being recreated, say) before it is
	// sent without it.
	checkRunWait = 2 * time.Millisecond
)

// newChecker starts workers goroutines, with room for depth runs queued
// ahead of the fold.
func newChecker(workers, depth int) *checker {
	c := &checker{
		jobs:    make(chan *checkRun, depth),
		ordered: make(chan *checkRun, depth),
		done:    make(chan struct{}),
		linger:  checkRunWait,
		runs: sync.Pool{New: func() any {
			return &checkRun{
				msgs:  make([]jetstream.Msg, 0, checkRunMax),
				metas: make([]*jetstream.MsgMetadata, 0, checkRunMax),
				out:   make([]delivery, 0, checkRunMax),
				ready: make(chan struct{}, 1),
			}
		}},
	}
	c.timer = time.AfterFunc(time.Hour, c.sendLate)
	c.timer.Stop()
	c.wg.Add(workers)
	for range workers {
		go func() {
			defer c.wg.Done()
			for {
				select {
				case r := <-c.jobs:
					for i, msg := range r.msgs {
						r.out = append(r.out, inspect(msg, r.metas[i]))
					}
					r.ready <- struct{}{}
				case <-c.done:
					return
				}
			}
		}()
	}
	return c
}

// add gathers a message into the current run; it is the consumer
// callback and blocks while the fold is behind, until stop.
func (c *checker) add(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		meta = nil // inspect reports it
	}
	c.addParsed(msg, meta)
}

// addParsed is add for a message whose metadata the caller has parsed
// (nil when it did not parse).
func (c *checker) addParsed(msg jetstream.Msg, meta *jetstream.MsgMetadata) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.filling
	if r == nil {
		r = c.runs.Get().(*checkRun)
		c.filling = r
	}
	r.msgs = append(r.msgs, msg)
	r.metas = append(r.metas, meta)
	if meta != nil && meta.NumPending >= checkRunBehind && len(r.msgs) < checkRunMax {
		if len(r.msgs) == 1 {
			c.timer.Reset(c.linger)
		}
		return
	}
	if len(r.msgs) > 1 {
		c.timer.Stop()
	}
	c.sendLocked()
}

// sendLate sends a run the timer found still waiting.
func (c *checker) sendLate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.filling != nil {
		c.sendLocked()
	}
}

// sendLocked queues the filling run for the fold and a worker. c.mu is
// held.
func (c *checker) sendLocked() {
	r := c.filling
	c.filling = nil
	select {
	case c.ordered <- r:
	case <-c.done:
		return
	}
	select {
	case c.jobs <- r:
	case <-c.done:
	}
}

// wait returns the deliveries of a run taken from ordered, once checked.
// They are the fold's until it hands the run back with release.
func (c *checker) wait(r *checkRun) []delivery {
	<-r.ready
	return r.out
}

// release empties a run and keeps it for reuse.
func (c *checker) release(r *checkRun) {
	clear(r.msgs)
	clear(r.metas)
	clear(r.out)
	r.msgs, r.metas, r.out = r.msgs[:0], r.metas[:0], r.out[:0]
	c.runs.Put(r)
}

// stop ends the workers and the timer and unblocks add.
func (c *checker) stop() {
	close(c.done)
	c.timer.Stop()
	c.wg.Wait()
}
