package client

import (
	"context"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/changefeed"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lostMsgs hands out msgs, then blocks; it stands for an ephemeral feed's
// pull consumer whose messages did not all arrive.
type lostMsgs struct {
	msgs    []jetstream.Msg
	stopped bool
}

func (l *lostMsgs) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	if l.stopped || len(l.msgs) == 0 {
		return nil, jetstream.ErrMsgIteratorClosed
	}
	m := l.msgs[0]
	l.msgs = l.msgs[1:]
	return m, nil
}
func (l *lostMsgs) Stop()  { l.stopped = true }
func (l *lostMsgs) Drain() { l.stopped = true }

// storedMsg is a stored message as a consumer with consumer sequence
// consSeq delivers it.
type storedMsg struct {
	jetstream.Msg
	raw     *jetstream.RawStreamMsg
	consSeq uint64
}

func (m *storedMsg) Subject() string      { return m.raw.Subject }
func (m *storedMsg) Data() []byte         { return m.raw.Data }
func (m *storedMsg) Headers() nats.Header { return m.raw.Header }
func (m *storedMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Consumer: m.consSeq, Stream: m.raw.Sequence}, Timestamp: m.raw.Time, NumDelivered: 1}, nil
}

// An ephemeral feed through the service reopens after the last change it
// delivered when the consumer sequence skips one (a message lost on the
// way), as an ordered consumer would: no change is missed.
func TestEphemeralFeedReopensAfterAGap(t *testing.T) {
	_, nc, js := natstest.Run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	require.NoError(t, err)
	f, err := ledger.ServeFeed(js, ledger.FeedConfig{})
	require.NoError(t, err)
	defer f.Stop()
	l := ledger.New(js, stream, ledger.Options{})
	var seqs []uint64
	for _, who := range []string{"a", "b", "c"} {
		r, err := l.Append(ctx, events.KindGrant, events.Command{SubjectID: who, Purpose: "news"})
		require.NoError(t, err)
		seqs = append(seqs, r.Seq)
	}
	w, err := NewClient(nc, ClientOptions{ServiceFeed: true}).Watch(ctx, WatchOptions{StartSeq: seqs[0]})
	require.NoError(t, err)
	defer w.Stop()
	w.iter.Stop()
	raw := func(seq uint64) *jetstream.RawStreamMsg {
		m, err := stream.GetMsg(ctx, seq)
		require.NoError(t, err)
		return m
	}
	// The second change is lost on the way: consumer sequence 2 never
	// arrives.
	w.iter = &lostMsgs{msgs: []jetstream.Msg{&storedMsg{raw: raw(seqs[0]), consSeq: 1}, &storedMsg{raw: raw(seqs[2]), consSeq: 3}}}

	var got []uint64
	for range 3 {
		ch, err := w.Next(ctx)
		require.NoError(t, err)
		require.NoError(t, ch.Err)
		got = append(got, ch.Seq)
	}
	assert.Equal(t, seqs, got)
}

// A durable watch gets the same defaults whether it creates its consumer
// or the service's feed does.
func TestWatchDefaultsAreTheFeeds(t *testing.T) {
	assert.Equal(t, changefeed.DefaultAckWait, DefaultAckWait)
	assert.Equal(t, changefeed.DefaultMaxAckPending, DefaultMaxAckPending)
}
