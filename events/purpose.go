package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The purpose registry: per tenant and purpose, a description, the current
// policy version, a default ttl for grants and a retention period (how long
// the records of a person's ended consent are kept before consentd erases
// the person; see ledger.Retainer). Each change is a
// PurposeEvent on consent.purposes.<tenant>.<purpose>, in the same stream
// as the consent events, hash-chained per purpose like a consent's
// history. A purpose that was never set is simply unregistered: consents
// for it work as they do without a registry (no minimum policy version, no
// default ttl).

// TypePurposeSet is the type of every purpose registry event. Purpose
// events are their own aggregate ("purpose.", not "consent."), on their
// own subjects, and are decoded by DecodePurposeEvent, never by Decode.
const TypePurposeSet Type = "purpose.set"

// PurposeSubjects is the subject filter of the purpose registry events in
// the stream.
const PurposeSubjects = "consent.purposes.>"

// PurposeSubjectPrefix starts the subject of every purpose event.
const PurposeSubjectPrefix = "consent.purposes."

// MaxDefaultTTL bounds a purpose's default ttl (100 years).
const MaxDefaultTTL = 100 * 365 * 24 * time.Hour

// MaxRetention bounds a purpose's retention period (100 years), as
// MaxDefaultTTL bounds its default ttl.
const MaxRetention = MaxDefaultTTL

// PurposeKey identifies one purpose of one tenant.
type PurposeKey struct {
	Tenant  string
	Purpose string
}

// Validate checks both parts, returning a *FieldError. An empty tenant is
// not valid here; callers default it first.
func (k PurposeKey) Validate() error {
	if err := ValidateName("tenant", k.Tenant); err != nil {
		return err
	}
	return ValidateName("purpose", k.Purpose)
}

// NATSSubject returns the subject the purpose's events are published on:
// consent.purposes.<tenant>.<purpose>.
func (k PurposeKey) NATSSubject() string {
	return PurposeSubjectPrefix + k.Tenant + "." + k.Purpose
}

// PurposeEvent is one change of the purpose registry. Each event is a full
// snapshot of the purpose (every field as it stands after the change), so
// the state it leads to follows from the event alone.
type PurposeEvent struct {
	V             int       `json:"v"`
	ID            string    `json:"id"`
	Type          Type      `json:"type"`
	Tenant        string    `json:"tenant"`
	Purpose       string    `json:"purpose"`
	Description   string    `json:"description,omitempty"`
	PolicyVersion int       `json:"policy_version"`
	DefaultTTL    string    `json:"default_ttl,omitempty"`
	Retention     string    `json:"retention,omitempty"`
	Actor         string    `json:"actor,omitempty"`
	RecordedBy    string    `json:"recorded_by,omitempty"` // the authenticated user; see Command.RecordedBy
	OccurredAt    time.Time `json:"occurred_at"`
	RecordedAt    time.Time `json:"recorded_at"`
	PrevHash      string    `json:"prev_hash"`
	Hash          string    `json:"hash,omitempty"`
}

// Key returns the purpose this event belongs to.
func (e *PurposeEvent) Key() PurposeKey { return PurposeKey{Tenant: e.Tenant, Purpose: e.Purpose} }

// Seal computes the event's hash as Event.Seal does (SHA-256 over the
// canonical encoding without "hash"), stores it in e.Hash and returns the
// canonical bytes to publish.
func (e *PurposeEvent) Seal() ([]byte, error) {
	e.Hash = ""
	raw, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode purpose event: %w", err)
	}
	if e.Hash, err = HashOf(raw); err != nil {
		return nil, err
	}
	if raw, err = json.Marshal(e); err != nil {
		return nil, fmt.Errorf("encode purpose event: %w", err)
	}
	return Canonical(raw)
}

// DecodePurposeEvent parses a purpose event strictly, as Decode does for
// consent events: a *FieldError for a malformed or missing field, an error
// matching ErrNewerSchema for a newer "v", one matching ErrUnknownType for
// a type other than TypePurposeSet. It does not check the hash.
func DecodePurposeEvent(payload []byte) (*PurposeEvent, error) {
	var e PurposeEvent
	if err := DecodeStrict(payload, &e); err != nil {
		return nil, err
	}
	switch {
	case e.V > SchemaVersionClear: // purpose records hold no personal data: v1 only
		return nil, fmt.Errorf("%w: v=%d, this reader knows purpose records up to %d", ErrNewerSchema, e.V, SchemaVersionClear)
	case e.V < 1:
		return nil, &FieldError{Field: "v", Problem: "must be at least 1"}
	case e.Type == "":
		return nil, &FieldError{Field: "type", Problem: "is required"}
	case e.Type != TypePurposeSet:
		return nil, fmt.Errorf("%w: %q on a purpose subject", ErrUnknownType, e.Type)
	case e.ID == "":
		return nil, &FieldError{Field: "id", Problem: "is required"}
	case e.OccurredAt.IsZero():
		return nil, &FieldError{Field: "occurred_at", Problem: "is required"}
	case e.RecordedAt.IsZero():
		return nil, &FieldError{Field: "recorded_at", Problem: "is required"}
	case e.PolicyVersion < 1 || e.PolicyVersion > MaxPolicyVersion:
		return nil, CheckPolicyVersion("policy_version", e.PolicyVersion)
	case e.Hash == "":
		return nil, &FieldError{Field: "hash", Problem: "is required"}
	}
	if err := e.Key().Validate(); err != nil {
		return nil, err
	}
	if e.DefaultTTL != "" {
		if _, err := parseDefaultTTL(e.DefaultTTL); err != nil {
			return nil, err
		}
	}
	if e.Retention != "" {
		if _, err := ParseRetention(e.Retention); err != nil {
			return nil, err
		}
	}
	return &e, nil
}

// Purpose is the folded state of one purpose, and the body of the
// consent.v1.purpose.get reply. A purpose never set has Registered false
// and policy version 0.
type Purpose struct {
	Tenant        string     `json:"tenant"`
	Purpose       string     `json:"purpose"`
	Registered    bool       `json:"registered"`
	Description   string     `json:"description,omitempty"`
	PolicyVersion int        `json:"policy_version"`
	DefaultTTL    string     `json:"default_ttl,omitempty"`
	Retention     string     `json:"retention,omitempty"`
	UpdatedAt     *time.Time `json:"updated_at,omitempty"`
	Seq           uint64     `json:"seq"`
	EventID       string     `json:"event_id,omitempty"`
	Hash          string     `json:"hash,omitempty"`
	IndexSeq      uint64     `json:"index_seq"` // filled by the service: the index sequence it was read at
}

// NewPurpose returns the state of a purpose that was never set.
func NewPurpose(k PurposeKey) Purpose { return Purpose{Tenant: k.Tenant, Purpose: k.Purpose} }

// Key returns the purpose's identity.
func (p *Purpose) Key() PurposeKey { return PurposeKey{Tenant: p.Tenant, Purpose: p.Purpose} }

// RequiredPolicyVersion returns the policy version a grant needs to be
// allowed for this purpose when the caller asks for no minimum: the
// current version of a registered purpose, else 0 (no minimum).
func (p *Purpose) RequiredPolicyVersion() int {
	if !p.Registered {
		return 0
	}
	return p.PolicyVersion
}

// EvolvePurpose folds one purpose event, stored at seq, into the purpose's
// state. The event is a full snapshot, so cur matters only for the
// purpose's identity.
func EvolvePurpose(cur Purpose, ev *PurposeEvent, seq uint64) Purpose {
	if ev.Type != TypePurposeSet {
		return cur
	}
	updated := ev.OccurredAt
	return Purpose{
		Tenant:        ev.Tenant,
		Purpose:       ev.Purpose,
		Registered:    true,
		Description:   ev.Description,
		PolicyVersion: ev.PolicyVersion,
		DefaultTTL:    ev.DefaultTTL,
		Retention:     ev.Retention,
		UpdatedAt:     &updated,
		Seq:           seq,
		EventID:       ev.ID,
		Hash:          ev.Hash,
	}
}

// RetentionPeriod returns how long the records of an ended consent to this
// purpose are kept (see ledger.Retainer), and false when the purpose has
// no retention period (it is not registered, or was set without one):
// then its records are kept until an operator erases the person.
func (p *Purpose) RetentionPeriod() (time.Duration, bool) {
	if !p.Registered || p.Retention == "" {
		return 0, false
	}
	d, err := ParseRetention(p.Retention)
	return d, err == nil
}

// ApplyDefaults fills what a consent command left out from the purpose, when
// it is registered: a command without policy_version is about the policy
// version now in force, and a grant without ttl or expires_at lapses after
// the purpose's default ttl (when it has one). Explicit values always win.
func (p *Purpose) ApplyDefaults(kind Kind, c *Command) {
	if !p.Registered {
		return
	}
	if c.PolicyVersion == 0 {
		c.PolicyVersion = p.PolicyVersion
	}
	if kind == KindGrant && c.TTL == "" && c.ExpiresAt == nil && p.DefaultTTL != "" {
		c.TTL = p.DefaultTTL
	}
}

// PurposeCommand is the body of consent.v1.purpose.set. Absent fields keep
// their current value: description, default_ttl and retention when null or
// missing (an empty string clears them), policy_version when missing (1 for a
// purpose set for the first time; 0 in Go stands for missing, and an
// explicit 0 on the wire is refused: see UnmarshalJSON). RecordedBy is
// set by the service, never from the body, as Command.RecordedBy is.
type PurposeCommand struct {
	Tenant         string  `json:"tenant,omitempty"`
	Purpose        string  `json:"purpose"`
	Description    *string `json:"description,omitempty"`
	PolicyVersion  int     `json:"policy_version,omitempty"`
	DefaultTTL     *string `json:"default_ttl,omitempty"`
	Retention      *string `json:"retention,omitempty"`
	Actor          string  `json:"actor,omitempty"`
	RecordedBy     string  `json:"-"`
	IdempotencyKey string  `json:"idempotency_key,omitempty"`
	ExpectedSeq    *uint64 `json:"expected_seq,omitempty"`
}

// Key returns the purpose the command is about, with the tenant defaulted.
func (c *PurposeCommand) Key() PurposeKey {
	return PurposeKey{Tenant: OrDefaultTenant(c.Tenant), Purpose: c.Purpose}
}

// UnmarshalJSON decodes a purpose command as encoding/json does, but
// refuses an explicit "policy_version" outside 1..MaxPolicyVersion with a
// *FieldError (see Command.UnmarshalJSON).
func (c *PurposeCommand) UnmarshalJSON(data []byte) error {
	type plain PurposeCommand // without this method
	aux := struct {
		*plain
		PolicyVersion *int `json:"policy_version"`
	}{plain: (*plain)(c)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	return setPolicyVersion(&c.PolicyVersion, "policy_version", aux.PolicyVersion)
}

// Validate checks every field, returning a *FieldError for the first
// problem. policy_version is 0 (absent) or 1 to MaxPolicyVersion.
func (c *PurposeCommand) Validate() error {
	if err := c.Key().Validate(); err != nil {
		return err
	}
	if c.PolicyVersion != 0 {
		if err := CheckPolicyVersion("policy_version", c.PolicyVersion); err != nil {
			return err
		}
	}
	if c.Description != nil {
		if err := checkText("description", *c.Description, MaxDescriptionLen, true); err != nil {
			return err
		}
	}
	if c.DefaultTTL != nil && *c.DefaultTTL != "" {
		if _, err := parseDefaultTTL(*c.DefaultTTL); err != nil {
			return err
		}
	}
	if c.Retention != nil && *c.Retention != "" {
		if _, err := ParseRetention(*c.Retention); err != nil {
			return err
		}
	}
	if err := checkText("actor", c.Actor, MaxNameLen, false); err != nil {
		return err
	}
	if err := checkRecordedBy(c.RecordedBy); err != nil {
		return err
	}
	return checkText("idempotency_key", c.IdempotencyKey, MaxIdempotencyKeyLen, false)
}

func parseDefaultTTL(s string) (time.Duration, error) { return parsePurposeDuration("default_ttl", s) }

// ParseRetention parses a purpose's retention period: a Go duration such
// as 720h (30 days) or 17520h (2 years), positive and at most MaxRetention.
// It returns a *FieldError naming "retention" otherwise.
func ParseRetention(s string) (time.Duration, error) { return parsePurposeDuration("retention", s) }

// parsePurposeDuration parses the duration field of a purpose (default_ttl,
// retention): positive, at most 100 years.
func parsePurposeDuration(field, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, &FieldError{Field: field, Problem: fmt.Sprintf("%.40q is not a Go duration such as 8760h", s)}
	case d <= 0:
		return 0, &FieldError{Field: field, Problem: "must be positive"}
	case d > MaxDefaultTTL:
		return 0, &FieldError{Field: field, Problem: "must be at most 876000h (100 years)"}
	}
	return d, nil
}

// ErrPolicyDowngrade is matched by the error DecidePurpose returns for a
// policy version lower than the current one. It matches ErrForbidden too
// (409 on the wire).
var ErrPolicyDowngrade = errors.New("policy versions only go up")

// PolicyDowngradeError reports a purpose.set that would lower the policy
// version: that would make grants of the newer policy look outdated, and
// older grants allowed again.
type PolicyDowngradeError struct {
	Current   int
	Requested int
}

func (e *PolicyDowngradeError) Error() string {
	return fmt.Sprintf("policy_version %d is lower than the current %d: policy versions only go up", e.Requested, e.Current)
}

// Is makes errors.Is match ErrPolicyDowngrade and ErrForbidden.
func (e *PolicyDowngradeError) Is(target error) bool {
	return target == ErrPolicyDowngrade || target == ErrForbidden
}

// DecidePurpose returns the event that applies a validated command to the
// purpose's current state cur at time now, complete but for ID and Hash, or
// a *PolicyDowngradeError when it would lower the policy version.
func DecidePurpose(cur Purpose, c PurposeCommand, now time.Time) (PurposeEvent, error) {
	now = now.UTC()
	version := cur.PolicyVersion
	if c.PolicyVersion > 0 {
		if cur.Registered && c.PolicyVersion < cur.PolicyVersion {
			return PurposeEvent{}, &PolicyDowngradeError{Current: cur.PolicyVersion, Requested: c.PolicyVersion}
		}
		version = c.PolicyVersion
	}
	ev := PurposeEvent{
		V:             SchemaVersionClear,
		Type:          TypePurposeSet,
		Tenant:        OrDefaultTenant(c.Tenant),
		Purpose:       c.Purpose,
		Description:   cur.Description,
		PolicyVersion: max(version, 1),
		DefaultTTL:    cur.DefaultTTL,
		Retention:     cur.Retention,
		Actor:         c.Actor,
		RecordedBy:    c.RecordedBy,
		OccurredAt:    now,
		RecordedAt:    now,
		PrevHash:      cur.Hash,
	}
	if c.Description != nil {
		ev.Description = *c.Description
	}
	if c.DefaultTTL != nil {
		ev.DefaultTTL = *c.DefaultTTL
	}
	if c.Retention != nil {
		ev.Retention = *c.Retention
	}
	return ev, nil
}
