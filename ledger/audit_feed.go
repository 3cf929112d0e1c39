package ledger

import (
	"context"
	"fmt"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"

	"github.com/consentledger/consent/internal/audit"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// auditOpen creates the consumer of an AuditOpenRequest and lets the
// caller's account read it.
func (f *Feed) auditOpen(ctx context.Context, token string, q *wire.AuditOpenRequest) (*wire.AuditOpenReply, error) {
	tenant := q.Tenant
	if q.Every && (scoped(token) || tenant != "" || q.Purpose != "") {
		if scoped(token) {
			return nil, &wire.Error{Code: 403, Description: fmt.Sprintf("forbidden: every message of the stream holds every tenant's events; your credentials are for tenant %q only", token)}
		}
		return nil, &events.FieldError{Field: "every", Problem: "excludes tenant and purpose"}
	}
	if scoped(token) {
		t, err := feedTenant(token, q.Tenant)
		if err != nil {
			return nil, err
		}
		tenant = t
	}
	var filters []string // every message
	if !q.Every {
		filter, err := audit.ExportFilter(tenant, q.Purpose)
		if err != nil {
			return nil, err
		}
		filters = []string{filter}
	}
	owner := token
	if owner == "" {
		owner = wire.AllTenantsToken
	}
	stream, err := f.js.Stream(ctx, f.cfg.Stream)
	if err != nil {
		return nil, err
	}
	state := stream.CachedInfo().State
	name := "feed~" + owner + "~~audit-" + nuid.Next()
	cfg := jetstream.ConsumerConfig{
		Name:              name,
		Description:       "consent audit read",
		FilterSubjects:    filters,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: f.cfg.InactiveThreshold,
	}
	if _, err := stream.CreateConsumer(ctx, cfg); err != nil {
		return nil, err
	}
	prefix, err := f.grant(ctx, stream, token, owner, name)
	if err != nil {
		return nil, err
	}
	out := &wire.AuditOpenReply{Stream: f.cfg.Stream, Consumer: name, APIPrefix: prefix, Filters: filters, LastSeq: state.LastSeq}
	if state.Msgs > 0 {
		out.FirstSeq = state.FirstSeq
	}
	return out, nil
}
