// Package changefeed holds what the ledger's feed (the server side of
// consent.v1.feed.open) and the client's Watch share about a watch's
// JetStream consumer: the checks of its options, its subject filters and
// start, and opening a durable consumer that must have the same filters.
package changefeed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Spec is what a watch delivers and where it starts; client.WatchOptions
// documents its fields and converts to it.
type Spec struct {
	Tenant        string
	Purposes      []string
	StartSeq      uint64
	StartTime     time.Time
	Durable       string
	AckWait       time.Duration
	MaxAckPending int
}

// Defaults of Spec for durable watches.
const (
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAckPending = 256
)

// Validate checks the spec, returning a *events.FieldError.
func (o *Spec) Validate() error {
	if o.Tenant != "*" {
		if err := events.ValidateName("tenant", events.OrDefaultTenant(o.Tenant)); err != nil {
			return err
		}
	}
	for _, p := range o.Purposes {
		if err := events.ValidateName("purpose", p); err != nil {
			return err
		}
	}
	if o.StartSeq > 0 && !o.StartTime.IsZero() {
		return &events.FieldError{Field: "start", Problem: "give a start sequence or a start time, not both"}
	}
	if o.Durable != "" && (len(o.Durable) > 64 || strings.ContainsAny(o.Durable, ".*> \t\r\n")) {
		return &events.FieldError{Field: "durable", Problem: "must be a name of at most 64 characters without dots, spaces, * or >"}
	}
	if o.AckWait < 0 || o.MaxAckPending < 0 {
		return &events.FieldError{Field: "ack_wait", Problem: "must not be negative"}
	}
	return nil
}

// Filters returns the subject filters of the watch: the consent events and
// the purpose registry events of its tenant and purposes.
func (o *Spec) Filters() []string {
	tenant := o.Tenant
	if tenant != "*" {
		tenant = events.OrDefaultTenant(tenant)
	}
	if len(o.Purposes) == 0 {
		return []string{"consent.events." + tenant + ".*.*", events.PurposeSubjectPrefix + tenant + ".*"}
	}
	var out []string
	for _, p := range o.Purposes {
		out = append(out, "consent.events."+tenant+"."+p+".*", events.PurposeSubjectPrefix+tenant+"."+p)
	}
	return out
}

// DeliverPolicy returns the consumer's deliver policy and its start
// sequence or time.
func (o *Spec) DeliverPolicy() (jetstream.DeliverPolicy, uint64, *time.Time) {
	switch {
	case o.StartSeq > 0:
		return jetstream.DeliverByStartSequencePolicy, o.StartSeq, nil
	case !o.StartTime.IsZero():
		t := o.StartTime
		return jetstream.DeliverByStartTimePolicy, 0, &t
	}
	return jetstream.DeliverNewPolicy, 0, nil
}

// OrDefault returns v when it is set (positive), else def.
func OrDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// OpenDurable finds the durable consumer cfg.Durable, or creates it
// (created is then true). It returns an error matching ErrDurableMismatch (a 409 on the wire) when
// one of that name has other filters.
func OpenDurable(ctx context.Context, stream jetstream.Stream, cfg jetstream.ConsumerConfig) (cons jetstream.Consumer, created bool, err error) {
	cons, err = stream.Consumer(ctx, cfg.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		cons, err = stream.CreateConsumer(ctx, cfg)
		if err != nil {
			return nil, false, fmt.Errorf("consent: create durable watch %s: %w", cfg.Durable, err)
		}
		return cons, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("consent: durable watch %s: %w", cfg.Durable, err)
	}
	have := slices.Clone(cons.CachedInfo().Config.FilterSubjects)
	if len(have) == 0 && cons.CachedInfo().Config.FilterSubject != "" {
		have = []string{cons.CachedInfo().Config.FilterSubject}
	}
	want := slices.Clone(cfg.FilterSubjects)
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		return nil, false, &wire.Error{Code: 409, Description: fmt.Sprintf("%v: %s filters %v, this watch %v", wire.ErrDurableMismatch, cfg.Durable, have, want)}
	}
	return cons, false, nil
}

// DecodeStoredPurpose decodes a stored purpose event, with an error
// matching wire.ErrUnreadableEvent when it cannot.
func DecodeStoredPurpose(m *jetstream.RawStreamMsg) (*events.PurposeEvent, error) {
	ev, err := events.DecodePurposeEvent(m.Data)
	if err == nil && ev.Key().NATSSubject() != m.Subject {
		err = fmt.Errorf("it belongs on %s", ev.Key().NATSSubject())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: seq %d on %s: %v", wire.ErrUnreadableEvent, m.Sequence, m.Subject, err)
	}
	return ev, nil
}
