package ledger

import (
	"context"
	"github.com/consentledger/consent/wire"

	"github.com/consentledger/consent/events"
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

func (s *Service) handleHold(req micro.Request, do func(context.Context, wire.HoldRequest) (wire.HoldReply, error)) {
	var q wire.HoldRequest
	if !s.accept(req, &q) {
		return
	}
	q.RecordedBy = callerOf(req).User
	s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
		return do(ctx, q)
	})
}

func (s *Service) handleHoldList(req micro.Request) {
	var q wire.HoldListQuery
	if !s.accept(req, &q) {
		return
	}
	s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
		return s.ledger.ListHolds(ctx, q)
	})
}

func (s *Service) handleErase(req micro.Request) {
	var q wire.EraseRequest
	if !s.accept(req, &q) {
		return
	}
	q.RecordedBy = callerOf(req).User
	s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
		return s.ledger.Erase(ctx, q)
	})
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
