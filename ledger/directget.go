package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers and statuses of a batched direct get (server 2.11+, ADR-31).
const (
	numPendingHeader = "Nats-Num-Pending" // on each message and the end marker: matching messages after it
	statusHeader     = "Status"
	descHeader       = "Description"
	statusNotFound   = "404" // nothing matches from the start sequence on
	statusEndOfBatch = "204" // end of the batch (Description: EOB)
	defaultAPIPrefix = "$JS.API."
)

// directGetBatch asks the stream for up to batch messages on filter (a
// subject, wildcards allowed) from sequence fromSeq on, at most maxBytes in
// all, and returns them oldest first with the number of matching messages
// that follow the last one.
//
// orbit.go's jetstreamext.GetBatch speaks the same protocol, but its
// SubscribeSync allocates a 512 KiB channel per call, which made a read of a
// short history cost eight times a single direct get. Here the reply
// subscription has a channel sized to the batch; the server sends at most
// batch messages and one end marker, so it cannot overflow.
func (l *Ledger) directGetBatch(ctx context.Context, filter string, fromSeq uint64, batch, maxBytes int) ([]*jetstream.RawStreamMsg, uint64, error) {
	req, err := json.Marshal(struct {
		Seq      uint64 `json:"seq"`
		NextFor  string `json:"next_by_subj"`
		Batch    int    `json:"batch"`
		MaxBytes int    `json:"max_bytes,omitempty"`
	}{fromSeq, filter, batch, maxBytes})
	if err != nil {
		return nil, 0, err
	}
	jsOpts := l.js.Options()
	if _, ok := ctx.Deadline(); !ok {
		timeout := jsOpts.DefaultTimeout
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	nc := l.js.Conn()
	replies := make(chan *nats.Msg, batch+2)
	inbox := nc.NewInbox()
	sub, err := nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, 0, err
	}
	defer sub.Unsubscribe() //nolint:errcheck // best effort: the inbox is never reused
	if err := nc.PublishRequest(apiPrefix(jsOpts)+"DIRECT.GET."+l.streamName, inbox, req); err != nil {
		return nil, 0, err
	}

	var msgs []*jetstream.RawStreamMsg
	for {
		var m *nats.Msg
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("batched direct get: %w", ctx.Err())
		case m = <-replies:
		}
		if status := m.Header.Get(statusHeader); status != "" && len(m.Data) == 0 {
			switch status {
			case statusNotFound:
				return msgs, 0, nil
			case statusEndOfBatch:
				pending, err := strconv.ParseUint(m.Header.Get(numPendingHeader), 10, 64)
				if err != nil {
					return nil, 0, fmt.Errorf("batched direct get: end of batch without %s: %w", numPendingHeader, err)
				}
				return msgs, pending, nil
			case "503":
				return nil, 0, fmt.Errorf("batched direct get on stream %s: %w", l.streamName, nats.ErrNoResponders)
			default:
				return nil, 0, fmt.Errorf("batched direct get on stream %s: status %s %s", l.streamName, status, m.Header.Get(descHeader))
			}
		}
		msg, err := rawStreamMsg(m)
		if err != nil {
			return nil, 0, err
		}
		msgs = append(msgs, msg)
		if len(msgs) > batch {
			return nil, 0, errors.New("batched direct get: more messages than asked for")
		}
	}
}

// rawStreamMsg turns one message of a direct get reply into the stored
// message it carries.
func rawStreamMsg(m *nats.Msg) (*jetstream.RawStreamMsg, error) {
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("batched direct get: bad %s header: %w", jetstream.SequenceHeader, err)
	}
	subj := m.Header.Get(jetstream.SubjectHeader)
	if subj == "" {
		return nil, fmt.Errorf("batched direct get: no %s header", jetstream.SubjectHeader)
	}
	ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
	return &jetstream.RawStreamMsg{Subject: subj, Sequence: seq, Header: m.Header, Data: m.Data, Time: ts}, nil
}

// apiPrefix returns the JetStream API prefix the context was made with.
func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.APIPrefix != "":
		if !strings.HasSuffix(o.APIPrefix, ".") {
			return o.APIPrefix + "."
		}
		return o.APIPrefix
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	}
	return defaultAPIPrefix
}
