package keystore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Data keys are made ahead of demand: each store keeps a pool of ready
// keys, entries pk.<id> that are durable before any is handed out. The
// pool is filled in the background, a group of entries at a time, each
// created only if absent (expected last sequence 0 of its subject) and
// the group stored as one atomic batch (ADR-50, server 2.12+): on a
// server that fsyncs every write, one flush covers the whole group. The
// server checks every message's expected sequence before it stores any;
// if one fails, it stores nothing of the batch, and its entries are then
// created one by one. A key in the pool is in this store's memory only,
// and it is handed to exactly one person: keys a store made and never
// handed out (it stopped) are never used by another.

const (
	// maxCreateBatch is the server's limit on messages in an atomic batch.
	maxCreateBatch = 1000
	// minCreateBatch is the smallest group sent as an atomic batch;
	// smaller ones are created one by one.
	minCreateBatch = 2
	// DefaultPoolSize is Config.PoolSize's default.
	DefaultPoolSize = 1000
)

// Headers of an atomic batch publish.
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// pool holds the store's ready data keys.
type pool struct {
	size int // filled up to size, refilled below size/2

	mu      sync.Mutex
	ready   []dataKey
	filling chan struct{} // closed when the fill under way ends; nil when none
	err     error         // the last fill's error, nil once a fill stored keys
	// batches and refused count the atomic batches stored and refused.
	batches, refused int
}

// creation is the creation of one entry. err is read once the group it
// is in was stored.
type creation struct {
	name  string
	value []byte // the record
	id    string
	key   []byte
	err   error
}

// newPoolKey makes a key and its pool entry's record.
func (s *Store) newPoolKey() (*creation, error) {
	idBytes := make([]byte, 16)
	key := make([]byte, DataKeySize)
	_, _ = rand.Read(idBytes) // never fails (Go 1.24+)
	_, _ = rand.Read(key)
	id := hex.EncodeToString(idBytes)
	name := poolKeyName(id)
	s.mu.Lock()
	value, err := json.Marshal(record{KeyID: id, KEKID: s.kek.ID(), Wrapped: s.kek.wrap(key, dataKeyAAD(name, id))})
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &creation{name: name, value: value, id: id, key: key}, nil
}

// take hands out a key of the pool, durable in the bucket, starting a
// refill when the pool runs low. With the pool empty it waits for the
// fill under way (or starts one); it returns the fill's error if that
// stored nothing, or ctx's.
func (s *Store) take(ctx context.Context) (dataKey, error) {
	p := &s.pool
	for {
		p.mu.Lock()
		if n := len(p.ready); n > 0 {
			dk := p.ready[n-1]
			p.ready = p.ready[:n-1]
			if n-1 < p.size/2 {
				s.startFill()
			}
			p.mu.Unlock()
			return dk, nil
		}
		failed := p.filling == nil && p.err != nil
		err := p.err
		p.err = nil
		if failed {
			// The last fill stored nothing: this caller gets its error,
			// the next starts a new fill.
			p.mu.Unlock()
			return dataKey{}, err
		}
		s.startFill()
		filling := p.filling
		p.mu.Unlock()
		select {
		case <-filling:
		case <-ctx.Done():
			return dataKey{}, ctx.Err()
		}
	}
}

// putBack returns an unused key (never handed to a person) to the pool.
func (s *Store) putBack(dk dataKey) {
	p := &s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ready = append(p.ready, dk)
}

// startFill starts a fill of the pool unless one is under way. The caller
// holds pool.mu.
func (s *Store) startFill() {
	p := &s.pool
	if p.filling != nil {
		return
	}
	p.filling = make(chan struct{})
	n := min(max(p.size-len(p.ready), 1), maxCreateBatch)
	go s.fill(n)
}

// fill creates n pool entries and adds the stored ones to the pool.
func (s *Store) fill(n int) {
	group := make([]*creation, 0, n)
	var err error
	for range n {
		c, cerr := s.newPoolKey()
		if cerr != nil {
			err = cerr
			break
		}
		group = append(group, c)
	}
	var batched, refused bool
	if len(group) > 0 {
		batched, refused = s.storeCreations(group)
	}
	p := &s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	if batched {
		p.batches++
	}
	if refused {
		p.refused++
	}
	stored := 0
	for _, c := range group {
		if c.err != nil {
			// Not stored, or not known to be: never handed out.
			err = c.err
			continue
		}
		p.ready = append(p.ready, dataKey{id: c.id, key: c.key})
		stored++
	}
	if stored > 0 {
		err = nil
	}
	if err != nil {
		err = fmt.Errorf("keystore: create pool keys: %w", err)
	}
	p.err = err
	close(p.filling)
	p.filling = nil
}

// storeCreations creates the group's entries, as one atomic batch when the
// bucket allows it, and sets each creation's err. It reports whether the
// group was stored as a batch, or refused as one and then created one by
// one.
func (s *Store) storeCreations(group []*creation) (batched, refused bool) {
	ctx, cancel := context.WithTimeout(context.Background(), s.js.Options().DefaultTimeout)
	defer cancel()
	if s.atomic && len(group) >= minCreateBatch {
		err := s.createBatch(ctx, group)
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) {
			// Stored, or no answer: then the batch may or may not be
			// stored, and the keys are not handed out.
			for _, c := range group {
				c.err = err
			}
			return err == nil, false
		}
		// Refused: nothing of it is stored.
		refused = true
	}
	var wg sync.WaitGroup
	for _, c := range group {
		wg.Go(func() {
			_, c.err = s.kv.Create(ctx, c.name, c.value)
		})
	}
	wg.Wait()
	return false, refused
}

// batchAck is the server's answer to the commit of an atomic batch.
type batchAck struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	BatchID string              `json:"batch"`
	Count   int                 `json:"count"`
}

// createBatch publishes the group's records as one atomic batch, each
// expecting its subject to be empty. It returns a *jetstream.APIError if
// the server refused the batch (nothing stored), another error if the
// outcome is unknown.
func (s *Store) createBatch(ctx context.Context, group []*creation) error {
	nc := s.js.Conn()
	id := nuid.Next()
	for i, c := range group {
		m := nats.NewMsg(s.subject(c.name))
		m.Data = c.value
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		m.Header.Set(batchIDHeader, id)
		m.Header.Set(batchSeqHeader, strconv.Itoa(i+1))
		if i < len(group)-1 {
			if err := nc.PublishMsg(m); err != nil {
				return err
			}
			continue
		}
		m.Header.Set(batchCommitHeader, "1")
		resp, err := nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return err
		}
		var ack batchAck
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return fmt.Errorf("%w: %w", jetstream.ErrInvalidJSAck, err)
		}
		if ack.Error != nil {
			return ack.Error
		}
		if ack.BatchID != id || ack.Count != len(group) {
			return fmt.Errorf("%w: batch %s of %d acknowledged as batch %q of %d", jetstream.ErrInvalidJSAck, id, len(group), ack.BatchID, ack.Count)
		}
	}
	return nil
}
