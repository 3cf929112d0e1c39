package ledger

import (
	"context"
	"fmt"

	"github.com/consentledger/consent/events"

	"github.com/consentledger/consent/internal/audit"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// SubjectAuditOpen asks the service for a consumer of the stream from seq
// 1, for audit verify and audit export by a client that has no JetStream
// API of its own (a user of a client account): request AuditOpenRequest,
// reply AuditOpenReply. Served by ServeFeed.
const SubjectAuditOpen = "consent.v1.audit.open"

// AuditOpenRequest asks for a consumer of every message of the stream
// (Every: what audit verify reads, for callers of every tenant only), or
// of the consent events of a tenant and a purpose (either may be empty,
// for all; a caller of one tenant gets its own), as audit export reads
// them.
type AuditOpenRequest struct {
	Every   bool   `json:"every,omitempty"`
	Tenant  string `json:"tenant,omitempty"`
	Purpose string `json:"purpose,omitempty"`
}

// AuditOpenReply names the consumer (ack none, deleted by the server
// after DefaultFeedInactiveThreshold without a pull), how to reach it, and
// the stream's first and last sequences when it was made.
type AuditOpenReply struct {
	Stream    string   `json:"stream"`
	Consumer  string   `json:"consumer"`
	APIPrefix string   `json:"api_prefix"`
	Filters   []string `json:"filters"`
	FirstSeq  uint64   `json:"first_seq"`
	LastSeq   uint64   `json:"last_seq"`
}

// auditOpen creates the consumer of an AuditOpenRequest and lets the
// caller's account read it.
func (f *Feed) auditOpen(ctx context.Context, token string, q *AuditOpenRequest) (*AuditOpenReply, error) {
	tenant := q.Tenant
	if q.Every && (scoped(token) || tenant != "" || q.Purpose != "") {
		if scoped(token) {
			return nil, &Error{Code: 403, Description: fmt.Sprintf("forbidden: every message of the stream holds every tenant's events; your credentials are for tenant %q only", token)}
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
		owner = AllTenantsToken
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
	out := &AuditOpenReply{Stream: f.cfg.Stream, Consumer: name, APIPrefix: prefix, Filters: filters, LastSeq: state.LastSeq}
	if state.Msgs > 0 {
		out.FirstSeq = state.FirstSeq
	}
	return out, nil
}

// AuditSource opens a consumer through the service (consent.v1.audit.open)
// and returns it as the source of audit.Verify or audit.Export. Errors are
// the service's (*Error) and NATS errors.
func (c *Client) AuditSource(ctx context.Context, q AuditOpenRequest) (*audit.Source, error) {
	var r AuditOpenReply
	if err := c.call(ctx, SubjectAuditOpen, q, &r); err != nil {
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
