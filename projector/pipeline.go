package projector

import (
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// checker runs inspect (decoding and hashing, most of the cost of an
// event) on several goroutines and hands the results back in stream
// order: the consumer callback queues each message for a worker and its
// result slot for the fold, which receives slots in the order the messages
// arrived.
type checker struct {
	jobs    chan checkJob
	ordered chan chan delivery
	done    chan struct{}
	wg      sync.WaitGroup
	slots   sync.Pool
}

type checkJob struct {
	msg  jetstream.Msg
	slot chan delivery
}

func newChecker(workers, depth int) *checker {
	c := &checker{
		jobs:    make(chan checkJob, depth),
		ordered: make(chan chan delivery, depth),
		done:    make(chan struct{}),
		slots:   sync.Pool{New: func() any { return make(chan delivery, 1) }},
	}
	c.wg.Add(workers)
	for range workers {
		go func() {
			defer c.wg.Done()
			for {
				select {
				case j := <-c.jobs:
					j.slot <- inspect(j.msg)
				case <-c.done:
					return
				}
			}
		}()
	}
	return c
}

// add queues a message; it is the consumer callback and blocks while the
// fold is behind, until stop.
func (c *checker) add(msg jetstream.Msg) {
	slot := c.slots.Get().(chan delivery)
	select {
	case c.ordered <- slot:
	case <-c.done:
		return
	}
	select {
	case c.jobs <- checkJob{msg, slot}:
	case <-c.done:
	}
}

// next receives the result of a slot taken from ordered.
func (c *checker) next(slot chan delivery) delivery {
	d := <-slot
	c.slots.Put(slot)
	return d
}

// stop ends the workers and unblocks add.
func (c *checker) stop() {
	close(c.done)
	c.wg.Wait()
}
