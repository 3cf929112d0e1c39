package ledger

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/consentledger/consent/events"
)

// SubjectFeedPersonal gives a subscriber the personal fields of sealed
// events it read from its feed (schema version 2: they are sealed under
// the person's data key, which only the service holds): request
// FeedPersonalRequest, reply FeedPersonalReply. Served by ServeFeed once
// it has keys (Feed.UseKeys). The fields are never kept anywhere else:
// after an erasure the answer says erased.
const SubjectFeedPersonal = "consent.v1.feed.personal"

// MaxFeedPersonal is the most sequences one feed.personal request names.
const MaxFeedPersonal = 256

// FeedPersonalRequest names the stream sequences of consent events whose
// personal fields the caller wants.
type FeedPersonalRequest struct {
	Seqs []uint64 `json:"seqs"`
}

// FeedPersonal is the personal fields of the event at Seq, or Erased when
// its data key was destroyed.
type FeedPersonal struct {
	Seq      uint64          `json:"seq"`
	Subject  string          `json:"subject,omitempty"`
	Actor    string          `json:"actor,omitempty"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	Erased   bool            `json:"erased,omitempty"`
}

// FeedPersonalReply is the reply of feed.personal, one entry per sequence
// asked, in order.
type FeedPersonalReply struct {
	Personal []FeedPersonal `json:"personal"`
}

// UseKeys gives the feed the keys to answer feed.personal with (consentd
// opens its key store once the stream is found, after the feed starts).
func (f *Feed) UseKeys(k Keys) { f.keys.Store(&k) }

// personal answers feed.personal for a caller of the tenant token token
// ("" or AllTenantsToken: every tenant).
func (f *Feed) personal(ctx context.Context, token string, q *FeedPersonalRequest) (*FeedPersonalReply, error) {
	if len(q.Seqs) == 0 || len(q.Seqs) > MaxFeedPersonal {
		return nil, &events.FieldError{Field: "seqs", Problem: fmt.Sprintf("must name 1 to %d sequences", MaxFeedPersonal)}
	}
	kp := f.keys.Load()
	if kp == nil {
		return nil, &Error{Code: 503, Description: "personal fields are not sealed here: consentd runs without --kek-file"}
	}
	keys := *kp
	stream, err := f.js.Stream(ctx, f.cfg.Stream)
	if err != nil {
		return nil, err
	}
	out := &FeedPersonalReply{Personal: make([]FeedPersonal, 0, len(q.Seqs))}
	for _, seq := range q.Seqs {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			return nil, fmt.Errorf("read seq %d: %w", seq, err)
		}
		tenant, _, _, ok := events.ParseConsentSubject(m.Subject)
		if !ok {
			return nil, &events.FieldError{Field: "seqs", Problem: fmt.Sprintf("seq %d is not a consent event", seq)}
		}
		if scoped(token) && tenant != token {
			return nil, &Error{Code: 403, Description: fmt.Sprintf("forbidden: seq %d is an event of tenant %q; your credentials are for tenant %q only", seq, tenant, token)}
		}
		ev, err := decodeStored(m)
		if err != nil {
			return nil, err
		}
		p := FeedPersonal{Seq: seq}
		if p.Erased, err = openSealed(ctx, keys, ev); err != nil {
			return nil, fmt.Errorf("seq %d: %w", seq, err)
		}
		if !p.Erased {
			p.Subject, p.Actor, p.Evidence, p.Reason = ev.SubjectID, ev.Actor, ev.Evidence, ev.Reason
		}
		out.Personal = append(out.Personal, p)
	}
	return out, nil
}

// OpenSealed returns a function that fills in the personal fields of a
// sealed event at a stream sequence through the service (feed.personal),
// returning an error matching events.ErrKeyErased when the person was
// erased: audit.ExportOptions.Open. It is safe for concurrent use.
func (c *Client) OpenSealed(ctx context.Context) func(seq uint64, ev *events.Event) error {
	return func(seq uint64, ev *events.Event) error {
		erased, err := c.openPersonal(ctx, ev, seq)
		if err == nil && erased {
			return events.ErrKeyErased
		}
		return err
	}
}

// openFromFeed fills in the personal fields of ev, a sealed event at seq,
// from the service (feed.personal); an erased person's event stays
// sealed.
func (c *Client) openFromFeed(ctx context.Context, ev *events.Event, seq uint64) error {
	_, err := c.openPersonal(ctx, ev, seq)
	return err
}

// openPersonal asks feed.personal for the event at seq and fills in ev;
// erased says the person was erased (ev stays sealed).
func (c *Client) openPersonal(ctx context.Context, ev *events.Event, seq uint64) (erased bool, err error) {
	var r FeedPersonalReply
	if err := c.call(ctx, SubjectFeedPersonal, FeedPersonalRequest{Seqs: []uint64{seq}}, &r); err != nil {
		return false, err
	}
	if len(r.Personal) != 1 || r.Personal[0].Seq != seq {
		return false, fmt.Errorf("consent: feed.personal answered for other sequences than %d", seq)
	}
	p := r.Personal[0]
	if !p.Erased {
		ev.SubjectID, ev.Actor, ev.Evidence, ev.Reason = p.Subject, p.Actor, p.Evidence, p.Reason
	}
	return p.Erased, nil
}
