package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
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
	msg, err := l.js.Conn().RequestWithContext(ctx, apiPrefix(l.js.Options())+"STREAM.MSG.GET."+l.streamName, req)
	if err != nil {
		return 0, fmt.Errorf("read the last event of %s from the stream leader: %w", natsSubject, err)
	}
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("read the last event of %s from the stream leader: %w", natsSubject, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == errCodeNoMessageFound:
		return 0, nil
	case resp.Error != nil:
		return 0, fmt.Errorf("read the last event of %s from the stream leader: %d %s (error code %d)",
			natsSubject, resp.Error.Code, resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return 0, errors.New("read the last event of " + natsSubject + " from the stream leader: empty reply")
	}
	return resp.Message.Seq, nil
}

// staleRead reports whether a tip read at seq on a replicated stream is
// behind the leader, so that a decision made on it (a forbidden
// transition) must be made again on a fresh read. On a stream with one
// replica every read is current.
func (l *Ledger) staleRead(ctx context.Context, natsSubject string, seq uint64) (bool, error) {
	if !l.replicated {
		return false, nil
	}
	last, err := l.leaderLastSeq(ctx, natsSubject)
	if err != nil {
		return false, err
	}
	return last != seq, nil
}
