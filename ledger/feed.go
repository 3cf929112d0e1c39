package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/changefeed"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// DefaultFeedInactiveThreshold is how long the server keeps an ephemeral
// feed's consumer nobody pulls from.
const DefaultFeedInactiveThreshold = 2 * time.Minute

// FeedAuthorizer lets the client account of tenantToken (a tenant, or
// "_all" for the account of all tenants) read consumer of stream, and
// returns the API prefix the account reaches it under. live lists the
// tenant's feed consumers that exist on the stream now, for the authorizer
// to drop what it granted for consumers that are gone (ephemeral feeds
// the server deleted). internal/auth's Authority.GrantFeed is one.
type FeedAuthorizer func(ctx context.Context, tenantToken, stream, consumer string, live func(context.Context) (map[string]bool, error)) (apiPrefix string, err error)

// FeedConfig configures ServeFeed.
type FeedConfig struct {
	// Stream is the stream to open feeds on; default DefaultStream.
	Stream string
	// Authorize, when set, is called for every feed opened under a
	// tenant's subject token (a client account's request); nil: the
	// API prefix is DefaultAPIPrefix (a single-account deployment).
	Authorize FeedAuthorizer
	// Identify, when set, listens only under tenant tokens
	// (consent.v1.<token>.feed.*) and puts every request to it first, as
	// ServiceConfig.Authorize does for the service (403 when refused).
	Identify Authorize
	// Logger receives the causes of 500s; default slog.Default().
	Logger *slog.Logger
	// InactiveThreshold of ephemeral feeds; default
	// DefaultFeedInactiveThreshold.
	InactiveThreshold time.Duration
	// Timeout bounds the handling of one request; default
	// DefaultCommandTimeout.
	Timeout time.Duration
}

// Feed answers consent.v1.feed.open and consent.v1.feed.purposes, plain
// and under a tenant token, in ServiceQueueGroup. Stop it with Stop.
type Feed struct {
	js   jetstream.JetStream
	cfg  FeedConfig
	subs []*nats.Subscription
	keys atomic.Pointer[Keys] // set by UseKeys, for feed.personal
}

// ServeFeed subscribes the feed endpoints on js's connection (a
// connection in the stream's account with its JetStream API). It returns
// an error when a subscription fails. The caller keeps owning the
// connection.
func ServeFeed(js jetstream.JetStream, cfg FeedConfig) (*Feed, error) {
	if cfg.Stream == "" {
		cfg.Stream = wire.DefaultStream
	}
	if cfg.InactiveThreshold <= 0 {
		cfg.InactiveThreshold = DefaultFeedInactiveThreshold
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultCommandTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := &Feed{js: js, cfg: cfg}
	nc := js.Conn()
	// Under tenant tokens only what can grant the client accounts their
	// feeds; plain subjects only where callers are not identified.
	var subjects []string
	if cfg.Identify == nil {
		subjects = append(subjects, wire.SubjectFeedOpen, wire.SubjectFeedPurposes, wire.SubjectFeedPersonal, wire.SubjectAuditOpen)
	}
	if cfg.Authorize != nil || cfg.Identify != nil {
		subjects = append(subjects, "consent.v1.*.feed.open", "consent.v1.*.feed.purposes", "consent.v1.*.feed.personal", "consent.v1.*.audit.open")
	}
	for _, subj := range subjects {
		sub, err := nc.QueueSubscribe(subj, ServiceQueueGroup, f.handle)
		if err != nil {
			f.Stop()
			return nil, fmt.Errorf("consent: feed: subscribe %s: %w", subj, err)
		}
		f.subs = append(f.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		f.Stop()
		return nil, fmt.Errorf("consent: feed: %w", err)
	}
	return f, nil
}

// Stop ends the subscriptions.
func (f *Feed) Stop() {
	for _, s := range f.subs {
		_ = s.Unsubscribe()
	}
}

func (f *Feed) handle(m *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.Timeout)
	defer cancel()
	var body any
	var err error
	token, endpoint := feedSubject(m.Subject)
	if f.cfg.Identify != nil {
		_, err = identify(f.cfg.Identify, endpoint, token, m.Header.Get(HeaderRequestInfo))
	}
	switch {
	case err != nil:
	case len(m.Data) > wire.MaxRequestSize:
		err = &wire.Error{Code: 413, Description: fmt.Sprintf("request is %d bytes; the limit is %d bytes (64 KiB)", len(m.Data), wire.MaxRequestSize)}
	case endpoint == "feed.open":
		var q wire.FeedOpenRequest
		if err = events.DecodeStrict(m.Data, &q); err == nil {
			body, err = f.open(ctx, token, &q)
		}
	case endpoint == "feed.personal":
		var q wire.FeedPersonalRequest
		if err = events.DecodeStrict(m.Data, &q); err == nil {
			body, err = f.personal(ctx, token, &q)
		}
	case endpoint == "audit.open":
		var q wire.AuditOpenRequest
		if err = events.DecodeStrict(m.Data, &q); err == nil {
			body, err = f.auditOpen(ctx, token, &q)
		}
	default:
		var q wire.FeedPurposesRequest
		if err = events.DecodeStrict(m.Data, &q); err == nil {
			body, err = f.purposes(ctx, token, &q)
		}
	}
	reply := nats.NewMsg(m.Reply)
	if err != nil {
		we := WireError(err)
		if we.Code == 500 {
			f.cfg.Logger.Error("consent feed: internal error", "subject", m.Subject, "error", err)
		}
		description := we.Text()
		reply.Header.Set(micro.ErrorCodeHeader, fmt.Sprint(we.Code))
		reply.Header.Set(micro.ErrorHeader, description)
	} else if reply.Data, err = json.Marshal(body); err != nil {
		reply.Header.Set(micro.ErrorCodeHeader, "500")
		reply.Header.Set(micro.ErrorHeader, "internal error")
	}
	_ = m.RespondMsg(reply)
}

// feedSubject splits consent.v1[.<token>].feed.<name> (the subjects
// ServeFeed subscribes to).
func feedSubject(subj string) (token, endpoint string) {
	rest := strings.TrimPrefix(subj, "consent.v1.")
	if strings.Count(rest, ".") == 1 {
		return "", rest
	}
	token, endpoint, _ = strings.Cut(rest, ".")
	return token, endpoint
}

// feedTenant decides the tenant of a request: the subject's token when
// there is one (a tenant may name only itself), else the body's.
func feedTenant(token, tenant string) (string, error) {
	if !scoped(token) {
		if tenant == "*" {
			return "*", nil
		}
		t := events.OrDefaultTenant(tenant)
		return t, events.ValidateName("tenant", t)
	}
	if tenant != "" && tenant != token {
		return "", forbiddenTenant(tenant, token)
	}
	return token, events.ValidateName("tenant", token)
}

func (f *Feed) open(ctx context.Context, token string, q *wire.FeedOpenRequest) (*wire.FeedOpenReply, error) {
	tenant, err := feedTenant(token, q.Tenant)
	if err != nil {
		return nil, err
	}
	opts := changefeed.Spec{Tenant: tenant, Purposes: q.Purposes, Durable: q.Durable, StartSeq: q.StartSeq, MaxAckPending: q.MaxAckPending}
	if q.StartTime != nil {
		opts.StartTime = *q.StartTime
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	switch q.Deliver {
	case "":
	case "new":
		if q.StartSeq > 0 || q.StartTime != nil {
			return nil, &events.FieldError{Field: "deliver", Problem: `"new" excludes start_seq and start_time`}
		}
	default:
		return nil, &events.FieldError{Field: "deliver", Problem: `must be "new" or absent`}
	}
	if q.Durable != "" {
		if err := events.ValidateName("durable", q.Durable); err != nil {
			return nil, err
		}
	}
	if q.AckWait != "" {
		d, err := time.ParseDuration(q.AckWait)
		if err != nil || d <= 0 {
			return nil, &events.FieldError{Field: "ack_wait", Problem: "must be a positive duration such as 30s"}
		}
		opts.AckWait = d
	}
	// Feeds are named for the account that reads them (the subject's
	// token), which is the one whose imports reach them.
	tokenOf := token
	if tokenOf == "" {
		tokenOf = tenant
		if tenant == "*" {
			tokenOf = wire.AllTenantsToken
		}
	}
	stream, err := f.js.Stream(ctx, f.cfg.Stream)
	if err != nil {
		return nil, err
	}
	policy, seq, at := opts.DeliverPolicy()
	if policy == jetstream.DeliverNewPolicy {
		// New changes: after the last one stored when the stream was
		// looked up, which the reply can name.
		policy, seq = jetstream.DeliverByStartSequencePolicy, stream.CachedInfo().State.LastSeq+1
	}
	startSeq := seq
	cfg := jetstream.ConsumerConfig{
		FilterSubjects: opts.Filters(),
		DeliverPolicy:  policy,
		OptStartSeq:    seq,
		OptStartTime:   at,
	}
	if q.Durable != "" {
		cfg.Durable = wire.FeedConsumerName(tokenOf, q.Durable)
		cfg.Description = "consent feed " + q.Durable + " of " + tenant
		cfg.AckPolicy = jetstream.AckExplicitPolicy
		cfg.AckWait = changefeed.OrDefault(opts.AckWait, changefeed.DefaultAckWait)
		cfg.MaxAckPending = changefeed.OrDefault(opts.MaxAckPending, changefeed.DefaultMaxAckPending)
		_, created, err := changefeed.OpenDurable(ctx, stream, cfg)
		if err != nil {
			return nil, err
		}
		if !created {
			startSeq = 0
		}
	} else {
		// A named consumer that goes away when nobody pulls: ordered
		// delivery (one pull at a time, no acknowledgements), which the
		// client checks by the consumer sequence.
		cfg.Name = "feed~" + tokenOf + "~~" + nuid.Next()
		cfg.Description = "consent ephemeral feed of " + tenant
		cfg.AckPolicy = jetstream.AckNonePolicy
		cfg.InactiveThreshold = f.cfg.InactiveThreshold
		if _, err := stream.CreateConsumer(ctx, cfg); err != nil {
			return nil, err
		}
	}
	name := cfg.Durable + cfg.Name
	prefix, err := f.grant(ctx, stream, token, tokenOf, name)
	if err != nil {
		return nil, err
	}
	return &wire.FeedOpenReply{Stream: f.cfg.Stream, Consumer: name, APIPrefix: prefix, Durable: q.Durable != "", Filters: cfg.FilterSubjects, StartSeq: startSeq}, nil
}

func (f *Feed) purposes(ctx context.Context, token string, q *wire.FeedPurposesRequest) (*wire.FeedPurposesReply, error) {
	tenant, err := feedTenant(token, q.Tenant)
	if err != nil {
		return nil, err
	}
	opts := changefeed.Spec{Tenant: tenant, Purposes: q.Purposes}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	out := &wire.FeedPurposesReply{Messages: []wire.FeedMessage{}}
	if q.UpToSeq == 0 {
		return out, nil
	}
	var subjects []string
	for _, s := range opts.Filters() {
		if strings.HasPrefix(s, events.PurposeSubjectPrefix) {
			subjects = append(subjects, s)
		}
	}
	// The server answers nothing for an up_to_seq beyond the stream's
	// last sequence: ask as of the last sequence then.
	stream, err := f.js.Stream(ctx, f.cfg.Stream)
	if err != nil {
		return nil, err
	}
	upTo := min(q.UpToSeq, stream.CachedInfo().State.LastSeq)
	if upTo == 0 {
		return out, nil
	}
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, f.js, f.cfg.Stream, subjects, jetstreamext.GetLastMsgsUpToSeq(upTo))
	if err != nil {
		return nil, err
	}
	for m, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break
		}
		if err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, wire.FeedMessage{Subject: m.Subject, Seq: m.Sequence, Data: m.Data})
	}
	return out, nil
}

// grant lets the account of tokenOf read consumer name (FeedConfig.Authorize)
// when the request came from a client account (token set), and returns the
// API prefix to read it under.
func (f *Feed) grant(ctx context.Context, stream jetstream.Stream, token, tokenOf, name string) (string, error) {
	if f.cfg.Authorize == nil || token == "" {
		return wire.DefaultAPIPrefix, nil
	}
	live := func(ctx context.Context) (map[string]bool, error) {
		out := map[string]bool{}
		names := stream.ConsumerNames(ctx)
		for n := range names.Name() {
			if strings.HasPrefix(n, "feed~"+tokenOf+"~") {
				out[n] = true
			}
		}
		return out, names.Err()
	}
	prefix, err := f.cfg.Authorize(ctx, tokenOf, f.cfg.Stream, name, live)
	if err != nil {
		return "", fmt.Errorf("consent: feed: authorize %s: %w", name, err)
	}
	return prefix, nil
}
