package ledger

import (
	"context"
	"fmt"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
)

// UseKeys gives the feed the keys to answer feed.personal with (consentd
// opens its key store once the stream is found, after the feed starts).
func (f *Feed) UseKeys(k Keys) { f.keys.Store(&k) }

// personal answers feed.personal for a caller of the tenant token token
// ("" or AllTenantsToken: every tenant).
func (f *Feed) personal(ctx context.Context, token string, q *wire.FeedPersonalRequest) (*wire.FeedPersonalReply, error) {
	if len(q.Seqs) == 0 || len(q.Seqs) > wire.MaxFeedPersonal {
		return nil, &events.FieldError{Field: "seqs", Problem: fmt.Sprintf("must name 1 to %d sequences", wire.MaxFeedPersonal)}
	}
	kp := f.keys.Load()
	if kp == nil {
		return nil, &wire.Error{Code: 503, Description: "personal fields are not sealed here: consentd runs without --kek-file"}
	}
	keys := *kp
	stream, err := f.js.Stream(ctx, f.cfg.Stream)
	if err != nil {
		return nil, err
	}
	out := &wire.FeedPersonalReply{Personal: make([]wire.FeedPersonal, 0, len(q.Seqs))}
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
			return nil, &wire.Error{Code: 403, Description: fmt.Sprintf("forbidden: seq %d is an event of tenant %q; your credentials are for tenant %q only", seq, tenant, token)}
		}
		ev, err := decodeStored(m)
		if err != nil {
			return nil, err
		}
		p := wire.FeedPersonal{Seq: seq}
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
	var r wire.FeedPersonalReply
	if err := c.call(ctx, wire.SubjectFeedPersonal, wire.FeedPersonalRequest{Seqs: []uint64{seq}}, &r); err != nil {
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
