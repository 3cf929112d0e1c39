package wire

import (
	"encoding/json"
	"time"
)

// The change feed through the service (docs/subscribers.md, "The feed
// across accounts"): a subscriber that may not create consumers (a client
// account, which has no JetStream API of its own) asks the service to
// open a consumer of its tenant's subjects, then reads it through the
// consumer API the service's account exports to it (CONSUMER.INFO,
// CONSUMER.MSG.NEXT and $JS.ACK of that consumer only).
const (
	// SubjectFeedOpen creates or finds a consumer: FeedOpenRequest,
	// reply FeedOpenReply.
	SubjectFeedOpen = "consent.v1.feed.open"
	// SubjectFeedPurposes reads the purpose registry of a tenant as it
	// stood at a stream sequence: FeedPurposesRequest, reply
	// FeedPurposesReply.
	SubjectFeedPurposes = "consent.v1.feed.purposes"
)

// DefaultAPIPrefix is the JetStream API prefix of an account that has the
// stream (a single-account deployment).
const DefaultAPIPrefix = "$JS.API"

// FeedOpenRequest asks for a consumer of a tenant's changes.
type FeedOpenRequest struct {
	// Tenant whose changes to deliver; default "default", "*" for every
	// tenant (only for the account of all tenants). When the request
	// arrives under a tenant's subject token (consent.v1.<tenant>.feed.open,
	// as a client account's import maps it) it must be empty or that
	// tenant.
	Tenant   string   `json:"tenant,omitempty"`
	Purposes []string `json:"purposes,omitempty"`
	// Durable names the subscriber's durable consumer (events.ValidateName
	// rules); empty: an ephemeral consumer.
	Durable string `json:"durable,omitempty"`
	// At most one of StartSeq and StartTime, as in client.WatchOptions; Deliver
	// "new" (or neither) starts after the last change stored.
	StartSeq  uint64     `json:"start_seq,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
	Deliver   string     `json:"deliver,omitempty"`
	// AckWait (a Go duration, e.g. "30s") and MaxAckPending: durable only.
	AckWait       string `json:"ack_wait,omitempty"`
	MaxAckPending int    `json:"max_ack_pending,omitempty"`
}

// FeedOpenReply names the consumer and how to reach it.
type FeedOpenReply struct {
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	// APIPrefix is the JetStream API prefix to read the consumer with
	// ($JS.API in a single-account deployment; the private prefix the
	// client account imports the consumer's API under otherwise).
	APIPrefix string `json:"api_prefix"`
	Durable   bool   `json:"durable"`
	// Filters are the consumer's subject filters.
	Filters []string `json:"filters"`
	// StartSeq is the first stream sequence the consumer delivers from,
	// for a consumer this request created: everything before it is not
	// delivered, everything from it on is (a request without a start
	// starts after the stream's last sequence when the service looked).
	// 0 when unknown: a start time, or a durable that existed.
	StartSeq uint64 `json:"start_seq,omitempty"`
}

// FeedPurposesRequest asks for the last purpose event of each purpose of
// the tenant (and purposes) up to a stream sequence.
type FeedPurposesRequest struct {
	Tenant   string   `json:"tenant,omitempty"`
	Purposes []string `json:"purposes,omitempty"`
	UpToSeq  uint64   `json:"up_to_seq"`
}

// FeedPurposesReply holds the stored purpose messages, as the stream holds
// them (the client checks and decodes them).
type FeedPurposesReply struct {
	Messages []FeedMessage `json:"messages"`
}

// FeedMessage is one stored message.
type FeedMessage struct {
	Subject string `json:"subject"`
	Seq     uint64 `json:"seq"`
	Data    []byte `json:"data"`
}

// AllTenantsToken is the subject token of requests from the account of
// all tenants (internal/auth.AllTenantsToken).
const AllTenantsToken = "_all"

// FeedConsumerName is the consumer the service opens for a durable feed
// of tenantToken (a tenant, or "_all" for every tenant): feed~<tenant>~<durable>.
// Tenant and durable names have no "~", so no other tenant's durable has
// this name.
func FeedConsumerName(tenantToken, durable string) string {
	return "feed~" + tenantToken + "~" + durable
}

// SubjectFeedPersonal gives a subscriber the personal fields of sealed
// events it read from its feed (schema version 2: they are sealed under
// the person's data key, which only the service holds): request
// FeedPersonalRequest, reply FeedPersonalReply. Served by ledger.ServeFeed once
// it has keys (ledger.Feed.UseKeys). The fields are never kept anywhere else:
// after an erasure the answer says erased.
const SubjectFeedPersonal = "consent.v1.feed.personal"

// MaxFeedPersonal is the most sequences one feed.personal request names.
const MaxFeedPersonal = 256

// FeedPersonalRequest names the stream sequences of consent events whose
// personal fields the caller wants.
type FeedPersonalRequest struct {
	Seqs []uint64 `json:"seqs"`
}

// FeedPersonal is the personal fields of the event at Seq, or Erased when
// its data key was destroyed.
type FeedPersonal struct {
	Seq      uint64          `json:"seq"`
	Subject  string          `json:"subject,omitempty"`
	Actor    string          `json:"actor,omitempty"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	Erased   bool            `json:"erased,omitempty"`
}

// FeedPersonalReply is the reply of feed.personal, one entry per sequence
// asked, in order.
type FeedPersonalReply struct {
	Personal []FeedPersonal `json:"personal"`
}

// SubjectAuditOpen asks the service for a consumer of the stream from seq
// 1, for audit verify and audit export by a client that has no JetStream
// API of its own (a user of a client account): request AuditOpenRequest,
// reply AuditOpenReply. Served by ledger.ServeFeed.
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
