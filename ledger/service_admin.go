package ledger

import (
	"context"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/micro"
)

// adminEndpoints are the operator's: admin.quarantine, admin.erase and
// the legal holds (admin.hold.set, admin.hold.release, admin.hold.list).
func (s *Service) adminEndpoints() []endpoint {
	return []endpoint{{"admin.quarantine", s.handleQuarantine}, {"admin.erase", s.handleErase},
		{"admin.hold.set", s.handleHoldSet}, {"admin.hold.release", s.handleHoldRelease}, {"admin.hold.list", s.handleHoldList}}
}

func (s *Service) handleHoldSet(req micro.Request)     { s.handleHold(req, s.ledger.SetHold) }
func (s *Service) handleHoldRelease(req micro.Request) { s.handleHold(req, s.ledger.ReleaseHold) }

func (s *Service) handleHold(req micro.Request, do func(context.Context, HoldRequest) (HoldReply, error)) {
	var q HoldRequest
	if !s.accept(req, &q) {
		return
	}
	q.RecordedBy = callerOf(req).User
	s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
		return do(ctx, q)
	})
}

func (s *Service) handleHoldList(req micro.Request) {
	var q HoldListQuery
	if !s.accept(req, &q) {
		return
	}
	s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
		return s.ledger.ListHolds(ctx, q)
	})
}

// SetHold puts a person on legal hold (see Ledger.SetHold; admin role).
// Errors are *Error: 400 naming the field, 503 without a hold bucket.
func (c *Client) SetHold(ctx context.Context, q HoldRequest) (HoldReply, error) {
	var r HoldReply
	err := c.call(ctx, SubjectHoldSet, q, &r)
	return r, err
}

// ReleaseHold lifts a person's legal hold (see Ledger.ReleaseHold; admin
// role). Errors as SetHold's.
func (c *Client) ReleaseHold(ctx context.Context, q HoldRequest) (HoldReply, error) {
	var r HoldReply
	err := c.call(ctx, SubjectHoldRelease, q, &r)
	return r, err
}

// ListHolds returns a tenant's legal holds (see Ledger.ListHolds; admin
// role). Errors as SetHold's.
func (c *Client) ListHolds(ctx context.Context, q HoldListQuery) (HoldListReply, error) {
	var r HoldListReply
	err := c.call(ctx, SubjectHoldList, q, &r)
	return r, err
}

func (s *Service) handleErase(req micro.Request) {
	var q EraseRequest
	if !s.accept(req, &q) {
		return
	}
	q.RecordedBy = callerOf(req).User
	s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
		return s.ledger.Erase(ctx, q)
	})
}

// Erase asks the service to erase a person (see Ledger.Erase; admin
// role). Errors are *Error: 400 naming the field, 409 when a consent kept
// changing meanwhile (retry: the erasure resumes where it stopped) or the
// person is on legal hold (the description names the hold).
func (c *Client) Erase(ctx context.Context, q EraseRequest) (EraseReply, error) {
	var r EraseReply
	err := c.call(ctx, SubjectErase, q, &r)
	return r, err
}

func (s *Service) handleQuarantine(req micro.Request) {
	var q events.Quarantine
	if !s.accept(req, &q) {
		return
	}
	q.RecordedBy = callerOf(req).User
	s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
		return s.ledger.Quarantine(ctx, q)
	})
}

// Quarantine asks the service to append consent.quarantined for the
// message at q.Seq (see Ledger.Quarantine): an operator's recorded way past
// a message that failed the integrity checks. Errors are *Error: 400 for a
// request that names no such violation, 409 when the consent changed
// meanwhile.
func (c *Client) Quarantine(ctx context.Context, q events.Quarantine) (wire.Reply, error) {
	var r wire.Reply
	err := c.call(ctx, wire.SubjectQuarantine, q, &r)
	return r, err
}
