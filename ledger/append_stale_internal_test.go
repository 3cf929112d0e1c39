package ledger

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// laggingStream answers the next reads of a consent's last event as a
// follower that has not applied the latest append would: with an older
// message, or none.
type laggingStream struct {
	jetstream.Stream
	staleReads atomic.Int32
	stale      *jetstream.RawStreamMsg // nil: the follower has no event yet
	// lostReads are the next reads that get no answer at all, as a read
	// sent to a replica that dies with it: they wait for their context.
	lostReads atomic.Int32
	reads     atomic.Int32
}

func (s *laggingStream) GetLastMsgForSubject(ctx context.Context, subj string) (*jetstream.RawStreamMsg, error) {
	s.reads.Add(1)
	if s.lostReads.Add(-1) >= 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if s.staleReads.Add(-1) >= 0 {
		if s.stale == nil {
			return nil, jetstream.ErrMsgNotFound
		}
		return s.stale, nil
	}
	return s.Stream.GetLastMsgForSubject(ctx, subj)
}

// On a replicated stream a direct get may be answered by a follower a few
// milliseconds behind the leader. A command that is forbidden only in that
// stale state (revoking the grant just acknowledged) must not fail with
// 409: the leader is asked, and the command decided again on a fresh read.
// (Internal: a real follower's lag cannot be produced on demand.)
func TestAppendDecidesAgainWhenATipReadIsBehindTheLeader(t *testing.T) {
	_, _, js := natstest.Run(t)
	ctx := context.Background()
	stream, err := EnsureStream(ctx, js, StreamOptions{})
	require.NoError(t, err)
	lagging := &laggingStream{Stream: stream}
	l := New(js, stream, Options{})
	l.stream = lagging
	l.replicated = true // as on a stream with replicas: reads may lag
	cmd := events.Command{SubjectID: "lagging@example.com", Purpose: "newsletter"}

	t.Run("a stale read does not forbid the revoke of an acknowledged grant", func(t *testing.T) {
		granted, err := l.Append(ctx, events.KindGrant, cmd)
		require.NoError(t, err)
		lagging.staleReads.Store(2) // not even the grant yet, twice
		revoked, err := l.Append(ctx, events.KindRevoke, cmd)
		require.NoError(t, err)
		assert.Equal(t, granted.Seq+1, revoked.Seq)
		assert.Equal(t, granted.Event.Hash, revoked.Event.PrevHash)
		assert.Equal(t, events.StateRevoked, revoked.Status.State)
		assert.Negative(t, lagging.staleReads.Load(), "both stale reads were used")
	})

	t.Run("a forbidden command the leader confirms is still 409", func(t *testing.T) {
		_, err := l.Append(ctx, events.KindRevoke, cmd) // revoked already, on a current read
		require.ErrorIs(t, err, events.ErrForbidden)
		assert.Equal(t, 409, WireError(err).Code)
	})

	t.Run("a consent with no event at all on the leader", func(t *testing.T) {
		_, err := l.Append(ctx, events.KindRevoke, events.Command{SubjectID: "nobody@example.com", Purpose: "newsletter"})
		require.ErrorIs(t, err, events.ErrForbidden)
	})

	t.Run("a stale older event", func(t *testing.T) {
		key := events.Command{SubjectID: "older@example.com", Purpose: "newsletter"}
		_, err := l.Append(ctx, events.KindGrant, key)
		require.NoError(t, err)
		first, err := stream.GetLastMsgForSubject(ctx, key.Key().NATSSubject())
		require.NoError(t, err)
		revoked, err := l.Append(ctx, events.KindRevoke, key)
		require.NoError(t, err)
		lagging.stale = first
		lagging.staleReads.Store(1) // still the grant: a second revoke looks allowed...
		_, err = l.Append(ctx, events.KindRevoke, key)
		// ...but its publish expects the grant's seq: the stream refuses
		// it, and the fresh read forbids it.
		require.ErrorIs(t, err, events.ErrForbidden)
		last, err := stream.GetLastMsgForSubject(ctx, key.Key().NATSSubject())
		require.NoError(t, err)
		assert.Equal(t, revoked.Seq, last.Sequence, "nothing was appended")
	})
}

// A forbidden command whose first tip read was stale asks the stream
// leader once: the fresh read that comes back at the sequence the leader
// gave is current, and its 409 needs no second round trip to the leader.
func TestAppendForbiddenOnATipTheLeaderGaveAsksOnce(t *testing.T) {
	_, nc, js := natstest.Run(t)
	ctx := context.Background()
	stream, err := EnsureStream(ctx, js, StreamOptions{})
	require.NoError(t, err)
	leaderGets := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe("$JS.API.STREAM.MSG.GET."+wire.DefaultStream, leaderGets)
	require.NoError(t, err)
	defer sub.Unsubscribe() //nolint:errcheck
	lagging := &laggingStream{Stream: stream}
	l := New(js, stream, Options{})
	l.stream = lagging
	l.replicated = true
	cmd := events.Command{SubjectID: "twice@example.com", Purpose: "newsletter"}
	_, err = l.Append(ctx, events.KindGrant, cmd)
	require.NoError(t, err)
	revoked, err := l.Append(ctx, events.KindRevoke, cmd)
	require.NoError(t, err)

	lagging.staleReads.Store(1) // no event yet: the revoke looks forbidden
	_, err = l.Append(ctx, events.KindRevoke, cmd)
	require.ErrorIs(t, err, events.ErrForbidden)
	require.NoError(t, nc.Flush())
	assert.Len(t, leaderGets, 1, "one leader read: the second tip read was at the seq the leader gave")
	last, err := stream.GetLastMsgForSubject(ctx, cmd.Key().NATSSubject())
	require.NoError(t, err)
	assert.Equal(t, revoked.Seq, last.Sequence, "nothing was appended")
}

// A tip read that goes unanswered is sent again after ReadAttemptTimeout:
// the append lands well within its deadline instead of waiting it out
// holding the consent's lock.
func TestAppendSendsAnUnansweredTipReadAgain(t *testing.T) {
	_, _, js := natstest.Run(t)
	stream, err := EnsureStream(t.Context(), js, StreamOptions{})
	require.NoError(t, err)
	lagging := &laggingStream{Stream: stream}
	l := New(js, stream, Options{ReadAttemptTimeout: 100 * time.Millisecond})
	l.stream = lagging
	lagging.lostReads.Store(2)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	started := time.Now()
	reply, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: "lost@example.com", Purpose: "newsletter"})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), reply.Seq)
	assert.Equal(t, int32(3), lagging.reads.Load(), "two lost reads, then one answered")
	assert.Less(t, time.Since(started), 2*time.Second)
}
