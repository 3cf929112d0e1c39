package ledger

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// groupFixture is a committer on a fresh stream, with the means to build
// the messages Append would publish.
type groupFixture struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	reads  jetstream.Stream // the stream's, read from its leader (LeaderReads)
	c      *committer
}

func newGroupFixture(t *testing.T, cfg GroupCommit) *groupFixture {
	t.Helper()
	return newGroupFixtureOn(t, OneNode, cfg)
}

// newGroupFixtureOn is newGroupFixture with the stream on top.
func newGroupFixtureOn(t *testing.T, top Topology, cfg GroupCommit) *groupFixture {
	t.Helper()
	js := top.JetStream(t)
	stream := top.EnsureStream(t, js, StreamOptions{})
	return &groupFixture{js: js, stream: stream, reads: LeaderReads(t, js, stream), c: newCommitter(js, wire.DefaultStream, cfg, 0)}
}

// entry returns a queued message for subj expecting expectedSeq, with the
// given message id.
func (f *groupFixture) entry(subj string, expectedSeq uint64, msgID string) *commitEntry {
	msg := &nats.Msg{Subject: "consent.events.default.p." + subj, Data: []byte(`{"n":"` + msgID + `"}`), Header: nats.Header{
		jetstream.MsgIDHeader:               []string{msgID},
		jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(expectedSeq, 10)},
		jetstream.ExpectedStreamHeader:      []string{wire.DefaultStream},
	}}
	return &commitEntry{msg: msg, msgID: msgID, done: make(chan commitResult, 1)}
}

// sendOne runs one group through the committer as its only group in
// flight and returns each entry's outcome.
func (f *groupFixture) sendOne(group []*commitEntry) []commitResult {
	f.c.mu.Lock()
	f.c.inFlight++
	for _, e := range group {
		f.c.busy[e.msg.Subject] = struct{}{}
	}
	f.c.mu.Unlock()
	f.c.send(group)
	out := make([]commitResult, len(group))
	for i, e := range group {
		out[i] = <-e.done
	}
	return out
}

// requireStoredAt checks that the message of e is the one stored at seq.
func (f *groupFixture) requireStoredAt(t *testing.T, e *commitEntry, seq uint64) {
	t.Helper()
	msg, err := f.reads.GetMsg(t.Context(), seq)
	require.NoError(t, err)
	assert.Equal(t, e.msg.Subject, msg.Subject, "seq %d", seq)
	assert.Equal(t, e.msgID, msg.Header.Get(jetstream.MsgIDHeader), "seq %d", seq)
	assert.Equal(t, e.msg.Data, msg.Data, "seq %d", seq)
}

func TestCommitBatchStoresEveryMessageAtItsSeq(t *testing.T) {
	ForTopologies(t, func(t *testing.T, top Topology) {
		f := newGroupFixtureOn(t, top, GroupCommit{MinBatch: 2})
		group := []*commitEntry{f.entry("a", 0, "m1"), f.entry("b", 0, "m2"), f.entry("c", 0, "m3")}
		results := f.sendOne(group)
		for i, r := range results {
			require.NoError(t, r.err)
			assert.Equal(t, uint64(i+1), r.ack.Sequence)
			assert.False(t, r.ack.Duplicate)
			f.requireStoredAt(t, group[i], r.ack.Sequence)
		}
		assert.Equal(t, GroupCommitStats{Batches: 1, Batched: 3}, f.c.Stats())
	})
}

// A batch with one message whose expected sequence is stale is refused
// whole; published one by one, the stale one gets the conflict it would
// get alone and the others are stored.
func TestRefusedBatchFallsBackToSingles(t *testing.T) {
	ForTopologies(t, func(t *testing.T, top Topology) {
		f := newGroupFixtureOn(t, top, GroupCommit{MinBatch: 2})
		ctx := t.Context()
		_, err := f.js.PublishMsg(ctx, f.entry("b", 0, "earlier").msg)
		require.NoError(t, err)

		group := []*commitEntry{f.entry("a", 0, "m1"), f.entry("b", 0, "m2"), f.entry("c", 0, "m3")}
		results := f.sendOne(group)
		require.Error(t, results[1].err)
		assert.True(t, isConflict(results[1].err), "got %v", results[1].err)
		for _, i := range []int{0, 2} {
			require.NoError(t, results[i].err)
			f.requireStoredAt(t, group[i], results[i].ack.Sequence)
		}
		assert.Equal(t, GroupCommitStats{Singles: 3, Refused: 1}, f.c.Stats())
		info, err := f.stream.Info(ctx)
		require.NoError(t, err)
		assert.Equal(t, uint64(3), info.State.Msgs, "the earlier message and the two that were not stale")
	})
}

// A message id already stored inside the duplicate window makes the server
// refuse the batch; alone, that message is acknowledged as a duplicate of
// the stored one, as a single publish would be.
func TestBatchWithStoredMsgIDFallsBackToDuplicateAck(t *testing.T) {
	ForTopologies(t, func(t *testing.T, top Topology) {
		f := newGroupFixtureOn(t, top, GroupCommit{MinBatch: 2})
		ctx := t.Context()
		first, err := f.js.PublishMsg(ctx, f.entry("x", 0, "key").msg)
		require.NoError(t, err)

		group := []*commitEntry{f.entry("a", 0, "m1"), f.entry("b", 0, "key")}
		results := f.sendOne(group)
		require.NoError(t, results[0].err)
		f.requireStoredAt(t, group[0], results[0].ack.Sequence)
		require.NoError(t, results[1].err)
		assert.True(t, results[1].ack.Duplicate)
		assert.Equal(t, first.Sequence, results[1].ack.Sequence)
		assert.Equal(t, uint64(1), f.c.Stats().Refused)
	})
}

// Groups below MinBatch are published as single messages.
func TestSmallGroupsArePublishedAlone(t *testing.T) {
	f := newGroupFixture(t, GroupCommit{MinBatch: 3})
	group := []*commitEntry{f.entry("a", 0, "m1"), f.entry("b", 0, "m2")}
	for i, r := range f.sendOne(group) {
		require.NoError(t, r.err)
		f.requireStoredAt(t, group[i], r.ack.Sequence)
	}
	assert.Equal(t, GroupCommitStats{Singles: 2}, f.c.Stats())
}

// A group holds one message per subject, none for a subject with a message
// in flight, and unique message ids; the rest wait in order.
func TestTakeKeepsSubjectsAndIDsUnique(t *testing.T) {
	f := &groupFixture{c: newCommitter(nil, wire.DefaultStream, GroupCommit{MaxBatch: 3}, 0)}
	inFlight := f.entry("busy", 0, "m0")
	a1, b1, a2, b2, busy, c1, d1 := f.entry("a", 0, "m1"), f.entry("b", 0, "m1"), f.entry("a", 1, "m2"),
		f.entry("b", 0, "m3"), f.entry("busy", 1, "m4"), f.entry("c", 0, "m5"), f.entry("d", 0, "m6")
	f.c.busy[inFlight.msg.Subject] = struct{}{}
	f.c.pending = []*commitEntry{a1, b1, a2, b2, busy, c1, d1}

	group := f.c.takeLocked()
	assert.Equal(t, []*commitEntry{a1, b2, c1}, group, "b1 repeats m1, a2 repeats subject a, busy is in flight, d1 is past MaxBatch")
	assert.Equal(t, []*commitEntry{b1, a2, busy, d1}, f.c.pending)
}

// An append whose context ends while it is queued is withdrawn: it is never
// published.
func TestQueuedAppendWithdrawnOnCancel(t *testing.T) {
	f := newGroupFixture(t, GroupCommit{})
	f.c.mu.Lock()
	f.c.inFlight = f.c.cfg.MaxInFlight // as if a group were on its way
	f.c.mu.Unlock()

	ctx, cancel := context.WithCancel(t.Context())
	e := f.entry("a", 0, "m1")
	done := make(chan error, 1)
	go func() {
		_, err := f.c.publish(ctx, e.msg, e.msgID)
		done <- err
	}()
	require.Eventually(t, func() bool {
		f.c.mu.Lock()
		defer f.c.mu.Unlock()
		return len(f.c.pending) == 1
	}, 5e9, 1e6)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	f.c.mu.Lock()
	assert.Empty(t, f.c.pending)
	f.c.inFlight = 0
	f.c.mu.Unlock()
	assert.Equal(t, uint64(1), f.c.Stats().Abandoned)
	info, err := f.stream.Info(t.Context())
	require.NoError(t, err)
	assert.Zero(t, info.State.Msgs)
}

// A batch the server does not answer leaves its outcome unknown: every
// append of it gets the error, and none is published again.
func TestUnansweredBatchFailsEveryAppend(t *testing.T) {
	ForTopologies(t, func(t *testing.T, top Topology) {
		f := newGroupFixtureOn(t, top, GroupCommit{MinBatch: 2})
		require.NoError(t, f.js.DeleteStream(t.Context(), wire.DefaultStream))
		group := []*commitEntry{f.entry("a", 0, "m1"), f.entry("b", 0, "m2")}
		for _, r := range f.sendOne(group) {
			require.Error(t, r.err)
			var apiErr *jetstream.APIError
			assert.False(t, errors.As(r.err, &apiErr), "no server answered: %v", r.err)
		}
		assert.Equal(t, GroupCommitStats{}, f.c.Stats())
	})
}
