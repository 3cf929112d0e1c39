package audit

import "sync"

// pipelineSize says how many messages travel together through a pipeline
// (enough that the channel operations and goroutine switches, about a
// microsecond each, disappear beside the work) and how many batches may
// wait (enough to keep the workers busy). A pipeline holds at most
// (depth + workers + 1) x batch messages, whatever the stream's size.
type pipelineSize struct{ batch, depth int }

var (
	// verifySize holds about 3,000 messages (a few MiB).
	verifySize = pipelineSize{batch: 256, depth: 8}
	// exportSize holds fewer, as an export's memory is what its users
	// watch: about 450 messages.
	exportSize = pipelineSize{batch: 64, depth: 4}
)

// pipeline runs work on the replayed messages on several goroutines and
// hands the results to sink, on one goroutine, in the order the messages
// arrived: the costly stateless part of a check (decoding, hashing,
// signatures) overlaps with reading the stream and with the stateful
// part, which stays sequential. Messages travel in batches.
type pipeline[R any] struct {
	work    func(*Msg) R
	batch   int
	jobs    chan *pipelineJob[R]
	ordered chan *pipelineJob[R]
	pool    sync.Pool
	cur     *pipelineJob[R] // the batch being filled by submit
	workers sync.WaitGroup
	done    chan struct{} // closed when sink has had every result
}

type pipelineJob[R any] struct {
	msgs    []Msg
	results []R
	ready   chan struct{}
}

// runPipeline starts the workers and the sink.
func runPipeline[R any](workers int, size pipelineSize, work func(*Msg) R, sink func(R)) *pipeline[R] {
	p := &pipeline[R]{
		work:    work,
		batch:   size.batch,
		jobs:    make(chan *pipelineJob[R], size.depth),
		ordered: make(chan *pipelineJob[R], size.depth),
		done:    make(chan struct{}),
	}
	p.pool.New = func() any {
		return &pipelineJob[R]{msgs: make([]Msg, 0, size.batch), results: make([]R, 0, size.batch), ready: make(chan struct{}, 1)}
	}
	p.workers.Add(workers)
	for range workers {
		go func() {
			defer p.workers.Done()
			for j := range p.jobs {
				for i := range j.msgs {
					j.results = append(j.results, p.work(&j.msgs[i]))
				}
				j.ready <- struct{}{}
			}
		}()
	}
	go func() {
		defer close(p.done)
		for j := range p.ordered {
			<-j.ready
			for _, r := range j.results {
				sink(r)
			}
			clear(j.msgs)
			clear(j.results)
			j.msgs, j.results = j.msgs[:0], j.results[:0]
			p.pool.Put(j)
		}
	}()
	return p
}

// submit queues a message (a copy), sending the batch on when it is full
// or when no more messages are pending. It is a Replay callback, called
// from one goroutine.
func (p *pipeline[R]) submit(m *Msg) error {
	if p.cur == nil {
		p.cur = p.pool.Get().(*pipelineJob[R])
	}
	p.cur.msgs = append(p.cur.msgs, *m)
	if len(p.cur.msgs) == p.batch || m.Pending == 0 {
		p.flush()
	}
	return nil
}

func (p *pipeline[R]) flush() {
	if p.cur == nil {
		return
	}
	p.ordered <- p.cur
	p.jobs <- p.cur
	p.cur = nil
}

// close sends the last batch and waits until sink has had the result of
// every message submitted.
func (p *pipeline[R]) close() {
	p.flush()
	close(p.jobs)
	close(p.ordered)
	<-p.done
	p.workers.Wait()
}
