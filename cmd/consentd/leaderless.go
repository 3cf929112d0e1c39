package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Serving lookups while the stream has no leader.
//
// A restarted consentd must not answer from an index older than what the
// stream holds, so normally its lookups wait until the projector has
// caught up with the stream's last sequence, which only the stream's
// leader can tell (STREAM.INFO, the consumer). While the stream has no
// leader (a majority of its nodes down), the index may still be known to
// be current: a direct get, which every replica of a stream with
// allow_direct answers without a leader, asks one replica for the first
// message at or after the index's checkpoint, in a batch of one, and the
// answer carries that message's sequence and how many messages follow it
// on that replica (Nats-Num-Pending). When the replica holds the
// checkpoint's message and nothing after it, the index holds everything
// that replica holds, and lookups are served at once (their index_seq says
// where the index stands). Any other answer keeps them deferred until the
// projector catches up: a later message (the index is behind), no message
// at or after the checkpoint (the replica is behind the index, so it
// proves nothing), no answer at all (no replica reachable), or an empty
// index (an empty replica would answer the same).
//
// What this cannot prove: that the replica which answered was not itself
// behind the majority that has gone. With no leader no write can be
// acknowledged, but a write acknowledged just before the leader was lost
// is stored on a majority, which need not include the replica that
// answers (and a follower stores an entry only once it learns it is
// committed). Asking a majority of replicas would not close that gap:
// with no leader a majority is usually what is missing, and the
// followers that answered would still not prove they had applied every
// committed entry; only a leader can. So an index served this way is as
// current as a surviving replica, which is the same promise an instance
// that kept running through the failover makes: its index holds what its
// consumer received before the leader was lost. Lookups with min_seq keep
// their promise in both cases: a min_seq beyond the index waits for the
// projector, which needs a leader, and is answered 503 if none comes in
// MinSeqTimeout. A stream deleted and created again with as many messages
// as the index has applied would also pass; the projector refuses it
// (ErrStreamMismatch) once the stream has a leader, and lookups stop.

// indexProbe is a replica's answer about the index's checkpoint.
type indexProbe int

const (
	probeUnknown indexProbe = iota // no answer, or one that proves nothing
	probeBehind                    // the replica holds messages after the checkpoint
	probeCurrent                   // the replica holds the checkpoint and nothing after it
)

// probeAttempt bounds one direct get of the probe, and probeRetry is the
// pause after one that proved nothing: a replica that has just restarted
// answers direct gets once it is current again (nats-server checks every
// 2s), and a request that finds no replica costs one round trip.
const (
	probeAttempt = time.Second
	probeRetry   = 100 * time.Millisecond
)

// probeIndex asks one replica of stream, by direct get through nc, whether
// it holds anything after checkpoint (see above).
func probeIndex(ctx context.Context, nc *nats.Conn, stream string, checkpoint uint64) (indexProbe, error) {
	if checkpoint == 0 {
		return probeUnknown, errors.New("the index is empty")
	}
	req, err := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
		Batch   int    `json:"batch"`
	}{checkpoint, ">", 1})
	if err != nil {
		return probeUnknown, err
	}
	ctx, cancel := context.WithTimeout(ctx, probeAttempt)
	defer cancel()
	// The batch's first message (or its 404) is the answer; the end
	// marker that follows goes to a request inbox no one waits on.
	reply, err := nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, req)
	if err != nil {
		return probeUnknown, err
	}
	if status := reply.Header.Get("Status"); status != "" && len(reply.Data) == 0 {
		return probeUnknown, fmt.Errorf("direct get: status %s %s", status, reply.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(reply.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return probeUnknown, fmt.Errorf("direct get: bad %s header: %w", jetstream.SequenceHeader, err)
	}
	pending, err := strconv.ParseUint(reply.Header.Get("Nats-Num-Pending"), 10, 64)
	if err != nil {
		return probeUnknown, fmt.Errorf("direct get: bad Nats-Num-Pending header: %w", err)
	}
	if seq == checkpoint && pending == 0 {
		return probeCurrent, nil
	}
	return probeBehind, nil
}

// serveIndexIfCurrent probes the index (probeIndex) until a replica says
// whether it is current, the index is ready anyway, or ctx ends; when it
// is current it marks it so (projector.Index.MarkCurrent), which lets Run
// serve lookups.
func (m *Main) serveIndexIfCurrent(ctx context.Context) {
	for !m.index.Ready() {
		cp := m.index.Checkpoint()
		result, err := probeIndex(ctx, m.dataConn, m.Config.Stream, cp)
		switch result {
		case probeCurrent:
			m.log.Info("the index holds everything a replica of the stream holds: serving lookups", "index_seq", cp)
			m.index.MarkCurrent()
			return
		case probeBehind:
			m.log.Info("the index is behind the stream: lookups wait for the projector to catch up", "index_seq", cp)
			return
		}
		if cp == 0 {
			return // nothing to prove: the projector decides
		}
		m.log.Debug("no replica says whether the index is current; asking again", "index_seq", cp, "error", err)
		select {
		case <-time.After(probeRetry):
		case <-ctx.Done():
			return
		}
	}
}
