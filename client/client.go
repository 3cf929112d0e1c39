package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/wirecodec"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// DefaultClientTimeout bounds a Client call whose context has no deadline.
const DefaultClientTimeout = 5 * time.Second

// ClientOptions configures a Client. The zero value is ready to use.
type ClientOptions struct {
	// Timeout bounds each call whose context has no deadline of its own;
	// default DefaultClientTimeout.
	Timeout time.Duration
	// Stream is the name of the stream Watch and NewChecker follow;
	// default wire.DefaultStream.
	Stream string
	// ServiceFeed makes Watch ask the service to open its consumer
	// (consent.v1.feed.open) and read it through the JetStream API prefix
	// the service names, instead of creating the consumer itself: what a
	// subscriber in a client account, which has no JetStream API of its
	// own, must do (docs/subscribers.md).
	ServiceFeed bool
}

// Client speaks to the consent service over NATS request-reply.
//
// Every method returns, for an error the service answered with, an *wire.Error
// that matches its sentinel (errors.Is(err, wire.ErrConflict), ...). When no
// instance of the service is running the error matches wire.ErrUnavailable and
// nats.ErrNoResponders. A context that ends first gives its own error.
//
// A Client is safe for concurrent use. It does not own the connection. Its
// first call subscribes the connection to a reply inbox, which every
// Client on the connection shares until the connection closes.
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
	stream  string
	feed    bool
	mux     atomic.Pointer[requester] // nc's, once a call has needed it
}

// NewClient returns a Client that sends its requests on nc.
func NewClient(nc *nats.Conn, opts ClientOptions) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultClientTimeout
	}
	if opts.Stream == "" {
		opts.Stream = wire.DefaultStream
	}
	return &Client{nc: nc, timeout: opts.Timeout, stream: opts.Stream, feed: opts.ServiceFeed}
}

// Request records that the person was asked to consent (consent.requested).
func (c *Client) Request(ctx context.Context, cmd events.Command) (wire.Reply, error) {
	return c.command(ctx, wire.SubjectRequest, cmd)
}

// Grant records that the person consented (consent.granted).
func (c *Client) Grant(ctx context.Context, cmd events.Command) (wire.Reply, error) {
	return c.command(ctx, wire.SubjectGrant, cmd)
}

// Deny records that the person declined (consent.denied). A granted
// consent cannot be denied (wire.ErrConflict): revoke it.
func (c *Client) Deny(ctx context.Context, cmd events.Command) (wire.Reply, error) {
	return c.command(ctx, wire.SubjectDeny, cmd)
}

// Revoke records that the person withdrew a grant (consent.revoked). Only a
// granted or expired consent can be revoked (wire.ErrConflict otherwise).
func (c *Client) Revoke(ctx context.Context, cmd events.Command) (wire.Reply, error) {
	return c.command(ctx, wire.SubjectRevoke, cmd)
}

func (c *Client) command(ctx context.Context, subj string, cmd events.Command) (wire.Reply, error) {
	var r wire.Reply
	err := c.call(ctx, subj, cmd, &r)
	return r, err
}

// Status returns the status of one consent, State none when it has no
// events. With q.MinSeq it reflects at least that stream sequence, or fails
// with wire.ErrUnavailable.
func (c *Client) Status(ctx context.Context, q wire.StatusQuery) (events.Status, error) {
	return c.status(ctx, wire.SubjectStatus, &q)
}

// Check returns the status when the consent allows the action. Otherwise it
// returns an *wire.Error matching wire.ErrConsentRequired whose Status field holds the
// status that did not allow it; that status is also returned.
func (c *Client) Check(ctx context.Context, q wire.StatusQuery) (events.Status, error) {
	st, err := c.status(ctx, wire.SubjectCheck, &q)
	if we, ok := errors.AsType[*wire.Error](err); ok && we.Status != nil {
		st = *we.Status
	}
	return st, err
}

// status is call for status and check, the hot lookups, with neither the
// query nor the status behind an interface: the request is encoded on the
// stack (the connection copies it) and the status decoded in place.
func (c *Client) status(ctx context.Context, subj string, q *wire.StatusQuery) (events.Status, error) {
	var buf [256]byte
	var st events.Status
	msg, err := c.exchange(ctx, subj, wirecodec.AppendStatusQuery(buf[:0], q))
	if err != nil {
		return st, err
	}
	if err := wirecodec.UnmarshalOwnedStatus(msg.Data, &st); err != nil {
		return st, fmt.Errorf("consent: decode %s reply: %w", subj, err)
	}
	return st, nil
}

// List returns the status of every purpose the person has events for,
// ordered by purpose.
func (c *Client) List(ctx context.Context, q wire.ListQuery) ([]events.Status, error) {
	var l wire.StatusList
	err := c.call(ctx, wire.SubjectList, q, &l)
	return l.Statuses, err
}

// History returns one page of events read from the stream, oldest first.
func (c *Client) History(ctx context.Context, q wire.HistoryQuery) (wire.History, error) {
	var h wire.History
	err := c.call(ctx, wire.SubjectHistory, q, &h)
	return h, err
}

// call sends body to subj and decodes the reply into out, or returns the
// service's error.
func (c *Client) call(ctx context.Context, subj string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("consent: encode %s request: %w", subj, err)
	}
	msg, err := c.exchange(ctx, subj, data)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(msg.Data, out); err != nil {
		return fmt.Errorf("consent: decode %s reply: %w", subj, err)
	}
	return nil
}

// exchange sends a request and returns the reply. An error the service
// answered with is returned as an *wire.Error (a 403 with the status it
// carried), and no service answering as a 503.
func (c *Client) exchange(ctx context.Context, subj string, data []byte) (*nats.Msg, error) {
	msg, err := c.request(ctx, subj, data)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, fmt.Errorf("%w: %w", &wire.Error{Code: 503, Description: "no consent service is answering on " + subj + "; is consentd running?"}, err)
		}
		return nil, fmt.Errorf("consent: %s: %w", subj, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		we := wire.FromWire(code, msg.Header.Get(micro.ErrorHeader))
		if we.Code == 403 && len(msg.Data) > 0 {
			st := new(events.Status)
			if wirecodec.UnmarshalOwnedStatus(msg.Data, st) == nil {
				we.Status = st
			}
		}
		return nil, we
	}
	return msg, nil
}

// request sends data to subj and waits for the reply, for at most the
// Client's timeout when ctx has no deadline; that timeout matches
// context.DeadlineExceeded, as a timed-out context would.
func (c *Client) request(ctx context.Context, subj string, data []byte) (*nats.Msg, error) {
	r := c.mux.Load()
	if r == nil {
		var err error
		if r, err = requesterFor(c.nc); err != nil {
			return nil, err
		}
		c.mux.Store(r)
	}
	return r.request(ctx, subj, data, c.timeout)
}
