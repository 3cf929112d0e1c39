package ledger

import (
	"context"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/micro"
)

// The purpose registry's side of the service: the purpose.set, get and
// list endpoints, and what the registry changes in the consent endpoints
// (defaults for commands, the policy version a status requires).

// errNoRegistry answers the purpose endpoints of a service whose reader
// keeps no purpose registry.
var errNoRegistry = &wire.Error{Code: 503, Description: "this consent service keeps no purpose registry"}

// purposeEndpoints returns the purpose endpoints, named by their subject
// under consent.v1 (the micro endpoint name has "_" for ".").
func (s *Service) purposeEndpoints() []endpoint {
	return []endpoint{
		{"purpose.set", s.handlePurposeSet},
		{"purpose.get", s.handlePurposeGet},
		{"purpose.list", s.handlePurposeList},
	}
}

// purposes returns the service's purpose registry, or nil when its reader
// keeps none.
func (s *Service) purposes() PurposeReader {
	pr, _ := s.reader.(PurposeReader)
	return pr
}

func (s *Service) handlePurposeSet(req micro.Request) {
	var cmd events.PurposeCommand
	if !s.accept(req, &cmd) {
		return
	}
	cmd.RecordedBy = callerOf(req).User
	s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
		return s.ledger.SetPurpose(ctx, cmd)
	})
}

func (s *Service) handlePurposeGet(req micro.Request) {
	var q wire.PurposeQuery
	if !s.accept(req, &q) {
		return
	}
	s.lookup(req, q.MinSeq, func(ctx context.Context) (any, error) {
		pr := s.purposes()
		if pr == nil {
			return nil, errNoRegistry
		}
		p, indexSeq, err := pr.Purpose(ctx, q.Key(), q.MinSeq)
		if err != nil {
			return nil, err
		}
		p.IndexSeq = indexSeq
		return p, nil
	})
}

func (s *Service) handlePurposeList(req micro.Request) {
	var q wire.PurposeListQuery
	if !s.accept(req, &q) {
		return
	}
	s.lookup(req, q.MinSeq, func(ctx context.Context) (any, error) {
		pr := s.purposes()
		if pr == nil {
			return nil, errNoRegistry
		}
		list, indexSeq, err := pr.Purposes(ctx, events.OrDefaultTenant(q.Tenant), q.MinSeq)
		if err != nil {
			return nil, err
		}
		for i := range list {
			list[i].IndexSeq = indexSeq
		}
		return wire.PurposeList{Purposes: list}, nil
	})
}

// purpose returns the registry entry of k as this instance's index knows
// it (not registered when there is no registry or it cannot answer).
func (s *Service) purpose(ctx context.Context, k events.PurposeKey, minSeq uint64) events.Purpose {
	if pr := s.purposes(); pr != nil {
		if p, _, err := pr.Purpose(ctx, k, minSeq); err == nil {
			return p
		}
	}
	return events.NewPurpose(k)
}

// commandStatus is the status a command's reply carries: exactly what a
// check with min_seq = r.Seq answers for the consent as the event left it.
// The consent's state is the event's; its policy version is judged against
// the purpose's as of r.Seq or later (requiredPolicyVersionAt), so that a
// grant under an outdated policy says "not allowed" in its reply as in
// every check after it. When neither the index nor the stream can say in
// time, the status is not allowed: never "allowed" when unsure.
func (s *Service) commandStatus(ctx context.Context, r *wire.Reply) events.Status {
	c := events.Evolve(events.NewConsent(r.Event.Key()), r.Event, r.Seq)
	required, err := s.requiredPolicyVersionAt(ctx, c.Key(), r.Seq)
	st := c.View(s.cfg.Now(), required)
	st.SubjectKey = c.Key().Token() // as status and check say it
	if err != nil {
		s.log.Warn("consent service: command reply judged not allowed: the purpose's policy version at its seq is unknown",
			"type", r.Event.Type, "tenant", r.Event.Tenant, "seq", r.Seq, "error", err)
		st.Allowed = false
	}
	return st
}

// commandStatusIndexWait is how long a command's reply waits for the index
// to apply the command's seq before it reads the purpose from the stream
// instead: a healthy index is there within milliseconds, one that catches
// up or lost its consumer in a failover is not, and the command's answer
// must not wait for it.
const commandStatusIndexWait = 50 * time.Millisecond

// requiredPolicyVersionAt is requiredPolicyVersion without a caller's
// minimum, as of minSeq or later: from the index once it has applied minSeq
// (waiting commandStatusIndexWait for it), else from the purpose's records
// in the stream, read now (at most MinSeqTimeout). Without a registry
// there is no minimum, as for check. It returns the stream read's error
// when neither can say.
func (s *Service) requiredPolicyVersionAt(ctx context.Context, k events.Key, minSeq uint64) (int, error) {
	pr := s.purposes()
	if pr == nil {
		return 0, nil
	}
	key := events.PurposeKey{Tenant: k.Tenant, Purpose: k.Purpose}
	waitCtx, cancel := context.WithTimeout(ctx, commandStatusIndexWait)
	p, _, err := pr.Purpose(waitCtx, key, minSeq)
	cancel()
	if err == nil {
		return p.RequiredPolicyVersion(), nil
	}
	readCtx, cancel := context.WithTimeout(ctx, s.cfg.MinSeqTimeout)
	defer cancel()
	p, _, err = s.ledger.readPurpose(readCtx, key, "")
	if err != nil {
		return 0, err
	}
	return p.RequiredPolicyVersion(), nil
}

// requiredPolicyVersion is the policy version a status must judge grants
// against: the caller's min_policy_version, else the purpose's current
// version (0 for an unregistered purpose: no minimum).
func (s *Service) requiredPolicyVersion(ctx context.Context, k events.Key, minPolicyVersion int, minSeq uint64) int {
	if minPolicyVersion > 0 {
		return minPolicyVersion
	}
	p := s.purpose(ctx, events.PurposeKey{Tenant: k.Tenant, Purpose: k.Purpose}, minSeq)
	return p.RequiredPolicyVersion()
}

// applyPurposeDefaults fills a command's policy version (and a grant's
// ttl) from the purpose registry, as this instance's index knows it when
// the command arrives (see events.Purpose.ApplyDefaults).
func (s *Service) applyPurposeDefaults(kind events.Kind, cmd *events.Command) {
	if cmd.PolicyVersion > 0 && (kind != events.KindGrant || cmd.TTL != "" || cmd.ExpiresAt != nil) {
		return // nothing left to default
	}
	p := s.purpose(s.ctx, events.PurposeKey{Tenant: events.OrDefaultTenant(cmd.Tenant), Purpose: cmd.Purpose}, 0)
	p.ApplyDefaults(kind, cmd)
}
