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

// New persons' entries are created only if absent, each with the expected
// last sequence 0 of its subject. Creations that arrive while others are
// being stored wait and are then stored together as one atomic batch
// (ADR-50, server 2.12+): on a server that fsyncs every write, one flush
// covers the whole batch, where single creates take one flush each. The
// server checks every message's expected sequence before it stores any;
// if one fails (another instance made that person's key), it stores
// nothing of the batch, and its entries are then created one by one, so
// each gets the outcome it would have had alone.

const (
	// maxCreateBatch is the server's limit on messages in an atomic batch.
	maxCreateBatch = 1000
	// minCreateBatch is the smallest group sent as an atomic batch;
	// smaller ones are created one by one.
	minCreateBatch = 2
)

// Headers of an atomic batch publish.
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// creates gathers the creations of new persons' entries.
type creates struct {
	mu      sync.Mutex
	pending []*creation
	byName  map[string]*creation // pending or being stored, by bucket key
	sending bool                 // a goroutine is storing groups
	// batches and refused count the atomic batches stored and refused.
	batches, refused int
}

// creation is the creation of one person's entry. Its fields other than
// done are read only once done is closed.
type creation struct {
	tenant, subjectKey, name string
	value                    []byte // the record
	id                       string
	key                      []byte
	err                      error // jetstream.ErrKeyExists: the entry was there
	done                     chan struct{}
}

// create returns the creation of the person's entry with a new key: the
// one under way for that person if there is one (several callers share
// it), else a new one queued for the next group. It returns an error only
// if the record cannot be made.
func (s *Store) create(tenant, subjectKey string) (*creation, error) {
	name := dataKeyName(tenant, subjectKey)
	cs := &s.creates
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c, ok := cs.byName[name]; ok {
		return c, nil
	}
	// A creation that ended since the caller looked remembered its key
	// before it left byName.
	s.mu.Lock()
	dk, ok := s.byCur[cacheName(tenant, subjectKey)]
	s.mu.Unlock()
	if ok {
		c := &creation{name: name, id: dk.id, key: clone(dk.key), done: make(chan struct{})}
		close(c.done)
		return c, nil
	}
	idBytes := make([]byte, 16)
	key := make([]byte, DataKeySize)
	_, _ = rand.Read(idBytes) // never fails (Go 1.24+)
	_, _ = rand.Read(key)
	id := hex.EncodeToString(idBytes)
	s.mu.Lock()
	value, err := json.Marshal(record{KeyID: id, KEKID: s.kek.ID(), Wrapped: s.kek.wrap(key, dataKeyAAD(name, id))})
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	c := &creation{tenant: tenant, subjectKey: subjectKey, name: name, value: value, id: id, key: key, done: make(chan struct{})}
	if cs.byName == nil {
		cs.byName = map[string]*creation{}
	}
	cs.byName[name] = c
	cs.pending = append(cs.pending, c)
	if !cs.sending {
		cs.sending = true
		go s.sendCreations()
	}
	return c, nil
}

// sendCreations stores the pending creations, a group at a time, until
// none is left.
func (s *Store) sendCreations() {
	cs := &s.creates
	for {
		cs.mu.Lock()
		if len(cs.pending) == 0 {
			cs.sending = false
			cs.mu.Unlock()
			return
		}
		n := min(len(cs.pending), maxCreateBatch)
		group := cs.pending[:n:n]
		cs.pending = append([]*creation(nil), cs.pending[n:]...)
		cs.mu.Unlock()

		batched, refused := s.storeCreations(group)

		cs.mu.Lock()
		if batched {
			cs.batches++
		}
		if refused {
			cs.refused++
		}
		for _, c := range group {
			if c.err == nil {
				s.remember(c.tenant, c.subjectKey, c.id, c.key)
			}
			delete(cs.byName, c.name)
			close(c.done)
		}
		cs.mu.Unlock()
	}
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
