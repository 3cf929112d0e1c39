package client

import (
	"context"
	"fmt"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
)

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

// AuditSource opens a consumer through the service (consent.v1.audit.open)
// and returns it as the source of audit.Verify or audit.Export. Errors are
// the service's (*wire.Error) and NATS errors.
func (c *Client) AuditSource(ctx context.Context, q wire.AuditOpenRequest) (*audit.Source, error) {
	var r wire.AuditOpenReply
	if err := c.call(ctx, wire.SubjectAuditOpen, q, &r); err != nil {
		return nil, err
	}
	js, err := jetstream.NewWithAPIPrefix(c.nc, r.APIPrefix)
	if err != nil {
		return nil, err
	}
	cons, err := js.Consumer(ctx, r.Stream, r.Consumer)
	if err != nil {
		return nil, fmt.Errorf("consent: audit consumer %s: %w", r.Consumer, err)
	}
	return &audit.Source{Consumer: cons, FirstSeq: r.FirstSeq, LastSeq: r.LastSeq}, nil
}
