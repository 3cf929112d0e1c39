package keystore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// The store reads its entries with the stream's message API, which the
// stream leader answers, rather than with direct gets (which any replica
// may answer, possibly before it has applied the latest write) or with a
// consumer (which a cluster with a node down may fail to place). So a read
// right after another instance's write sees it, and Destroy verifies its
// erase against the leader. The exception is get on a bucket of one
// replica, where the only server answers direct gets too.

// revision is one stored message of a bucket key.
type revision struct {
	seq    uint64
	value  []byte
	marker bool // a delete or purge marker, not a value
}

type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

type msgGetResponse struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *struct {
		Sequence uint64 `json:"seq"`
		Header   []byte `json:"hdrs,omitempty"`
		Data     []byte `json:"data,omitempty"`
	} `json:"message,omitempty"`
}

// apiPrefix is the JetStream API prefix of the store's context.
func (s *Store) apiPrefix() string {
	o := s.js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return jetstream.DefaultAPIPrefix
}

// leaderGet asks the stream leader for one message. It returns
// jetstream.ErrMsgNotFound if there is none.
func (s *Store) leaderGet(ctx context.Context, req msgGetRequest) (revision, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return revision{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.js.Options().DefaultTimeout)
		defer cancel()
	}
	msg, err := s.js.Conn().RequestWithContext(ctx, s.apiPrefix()+"STREAM.MSG.GET."+s.stream.CachedInfo().Config.Name, body)
	if err != nil {
		return revision{}, err
	}
	var resp msgGetResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return revision{}, fmt.Errorf("message get: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return revision{}, jetstream.ErrMsgNotFound
		}
		return revision{}, resp.Error
	}
	if resp.Message == nil {
		return revision{}, fmt.Errorf("message get: empty reply")
	}
	return revision{
		seq:    resp.Message.Sequence,
		value:  resp.Message.Data,
		marker: bytes.Contains(resp.Message.Header, []byte("KV-Operation")),
	}, nil
}

// subject is the stream subject of a bucket key.
func (s *Store) subject(name string) string { return "$KV." + s.kv.Bucket() + "." + name }

// get returns the latest revision of a bucket key, or
// jetstream.ErrKeyNotFound if it has none or the latest is a marker. On a
// bucket of one replica it reads with a direct get: the one server answers
// it from its store, which holds every acknowledged write, without the
// JetStream API's queue.
func (s *Store) get(ctx context.Context, name string) ([]byte, error) {
	if s.direct {
		msg, err := s.stream.GetLastMsgForSubject(ctx, s.subject(name))
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && msg.Header.Get("KV-Operation") != "" {
			return nil, jetstream.ErrKeyNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("keystore: get %s: %w", name, err)
		}
		return msg.Data, nil
	}
	rev, err := s.leaderGet(ctx, msgGetRequest{LastFor: s.subject(name)})
	if err == jetstream.ErrMsgNotFound || err == nil && rev.marker {
		return nil, jetstream.ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: get %s: %w", name, err)
	}
	return rev.value, nil
}

// history returns every revision of a bucket key, oldest first, markers
// included, or none.
func (s *Store) history(ctx context.Context, name string) ([]revision, error) {
	var revs []revision
	for seq := uint64(1); ; {
		rev, err := s.leaderGet(ctx, msgGetRequest{Seq: seq, NextFor: s.subject(name)})
		if err == jetstream.ErrMsgNotFound {
			return revs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("keystore: history of %s: %w", name, err)
		}
		revs = append(revs, rev)
		seq = rev.seq + 1
	}
}
