package ledger

import (
	"context"
	"fmt"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/micro"
)

// IndexScanner is implemented by a StateReader whose states can be read
// in one consistent pass (the projector's index): the service then
// answers consent.v1.index_digest.
type IndexScanner interface {
	// ScanConsents calls fn with every folded consent, from one snapshot,
	// and returns the stream sequence that snapshot reflects.
	ScanConsents(ctx context.Context, fn func(c *events.Consent) error) (uint64, error)
}

// auditEndpoints are status_at, receipt and index_digest.
func (s *Service) auditEndpoints() []endpoint {
	return []endpoint{
		{"status_at", s.handleStatusAt},
		{"receipt", s.handleReceipt},
		{"index_digest", s.handleIndexDigest},
	}
}

func (s *Service) handleStatusAt(req micro.Request) {
	var q wire.StatusAtQuery
	if !s.accept(req, &q) {
		return
	}
	s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
		return s.ledger.StatusAt(ctx, q)
	})
}

func (s *Service) handleReceipt(req micro.Request) {
	if s.tooLarge(req) {
		return
	}
	var q wire.ReceiptQuery
	err := events.DecodeStrict(req.Data(), &q)
	if err == nil {
		err = scope(req, &q.Tenant)
	}
	if err == nil {
		err = q.Validate()
	}
	if err == nil && s.cfg.Signer == nil {
		err = &wire.Error{Code: 503, Description: "receipts are not signed here: no signing key is configured (start consentd with --signing-key)"}
	}
	if err != nil {
		s.respond(req, nil, err)
		return
	}
	s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
		return s.ledger.Receipt(ctx, q, s.cfg.Signer)
	})
}

func (s *Service) handleIndexDigest(req micro.Request) {
	if s.tooLarge(req) {
		return
	}
	if t := callerOf(req).Tenant; scoped(t) {
		// The digest covers every tenant's consents.
		s.respond(req, nil, &wire.Error{Code: 403, Description: fmt.Sprintf("forbidden: the index digest covers every tenant; your credentials are for tenant %q only", t)})
		return
	}
	var empty struct{}
	if len(req.Data()) > 0 {
		if err := events.DecodeStrict(req.Data(), &empty); err != nil {
			s.respond(req, nil, err)
			return
		}
	}
	scanner, ok := s.reader.(IndexScanner)
	if !ok {
		s.respond(req, nil, &wire.Error{Code: 503, Description: "this service's index cannot be digested"})
		return
	}
	s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
		return audit.DigestIndex(ctx, scanner.ScanConsents)
	})
}
