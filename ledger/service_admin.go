package ledger

import (
	"context"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/nats.go/micro"
)

// SubjectQuarantine is the operator's endpoint that gets a consent past a
// message that failed the integrity checks: request events.Quarantine,
// reply Reply (the consent.quarantined event, its seq and the status it
// leads to). See Ledger.Quarantine.
const SubjectQuarantine = "consent.v1.admin.quarantine"

// adminEndpoints are the operator's: admin.quarantine and admin.erase.
func (s *Service) adminEndpoints() []endpoint {
	return []endpoint{{"admin.quarantine", s.handleQuarantine}, {"admin.erase", s.handleErase}}
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
// changing meanwhile (retry: the erasure resumes where it stopped).
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
func (c *Client) Quarantine(ctx context.Context, q events.Quarantine) (Reply, error) {
	var r Reply
	err := c.call(ctx, SubjectQuarantine, q, &r)
	return r, err
}
