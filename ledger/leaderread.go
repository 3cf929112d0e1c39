package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// errCodeNoMessageFound is JetStream's error code for a get that matches
// no message (JSNoMessageFoundErr).
const errCodeNoMessageFound = 10037

// leaderLastSeq returns the sequence of the last message on natsSubject as
// the stream's leader has it, 0 when there is none.
//
// Append reads a consent's tip with direct gets, which any replica of a
// replicated stream answers, including a follower that has not applied the
// latest append yet. The stream's MSG.GET API is answered by the leader
// alone, which holds every acknowledged append: one round trip to it tells
// whether a tip read is current.
func (l *Ledger) leaderLastSeq(ctx context.Context, natsSubject string) (uint64, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{natsSubject})
	if err != nil {
		return 0, err
	}
	if _, ok := ctx.Deadline(); !ok {
		timeout := l.js.Options().DefaultTimeout
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
	}
	err = attempt(ctx, l.readTimeout, func(ctx context.Context) error {
		msg, err := l.js.Conn().RequestWithContext(ctx, apiPrefix(l.js.Options())+"STREAM.MSG.GET."+l.streamName, req)
		if err != nil {
			return err
		}
		resp.Error, resp.Message = nil, nil
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return err
		}
		if resp.Error != nil && resp.Error.Code == 503 {
			return resp.Error // no stream leader at the moment: asked again
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read the last event of %s from the stream leader: %w", natsSubject, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == errCodeNoMessageFound:
		return 0, nil
	case resp.Error != nil:
		return 0, fmt.Errorf("read the last event of %s from the stream leader: %w", natsSubject, resp.Error)
	case resp.Message == nil:
		return 0, errors.New("read the last event of " + natsSubject + " from the stream leader: empty reply")
	}
	return resp.Message.Seq, nil
}
