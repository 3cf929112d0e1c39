package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is a command verb: what a caller asks the ledger to record.
type Kind string

// The four command kinds, one per endpoint.
const (
	KindRequest Kind = "request"
	KindGrant   Kind = "grant"
	KindDeny    Kind = "deny"
	KindRevoke  Kind = "revoke"
)

// Kinds lists the command kinds in the order of the contract.
var Kinds = []Kind{KindRequest, KindGrant, KindDeny, KindRevoke}

// EventType returns the event a command of this kind appends.
func (k Kind) EventType() Type {
	switch k {
	case KindRequest:
		return TypeRequested
	case KindGrant:
		return TypeGranted
	case KindDeny:
		return TypeDenied
	case KindRevoke:
		return TypeRevoked
	}
	return ""
}

// Command is the body of consent.v1.request, grant, deny and revoke.
// PolicyVersion 0 stands for an absent policy_version (the default
// applies); otherwise it is 1 to MaxPolicyVersion. ExpectedSeq, when set,
// is any uint64 (0: the consent has no events yet). See Validate for the
// other bounds.
//
// RecordedBy is not part of the body (a member "recorded_by" is refused as
// unknown): the service sets it from the caller's authenticated identity,
// "<user>@<tenant token>" (such as "alice@acme", or "admin@_all" for a user
// of every tenant), and Decide copies it into the event. Empty means
// recorded without authentication: the event then has no recorded_by.
type Command struct {
	Tenant         string          `json:"tenant,omitempty"`
	SubjectID      string          `json:"subject"`
	Purpose        string          `json:"purpose"`
	PolicyVersion  int             `json:"policy_version,omitempty"`
	Description    string          `json:"description,omitempty"`
	ExpiresAt      *time.Time      `json:"expires_at,omitempty"`
	TTL            string          `json:"ttl,omitempty"`
	Actor          string          `json:"actor,omitempty"`
	RecordedBy     string          `json:"-"`
	Method         string          `json:"method,omitempty"`
	Evidence       json.RawMessage `json:"evidence,omitempty"`
	Reason         string          `json:"reason,omitempty"`
	OccurredAt     *time.Time      `json:"occurred_at,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	ExpectedSeq    *uint64         `json:"expected_seq,omitempty"`
}

// DecodeCommand parses a command body strictly. Errors are *FieldError.
// A member whose value is null counts as absent ("evidence": null too).
// The command is not validated; see Command.Validate.
func DecodeCommand(data []byte) (Command, error) {
	var c Command
	err := DecodeStrict(data, &c)
	if string(c.Evidence) == "null" {
		c.Evidence = nil
	}
	return c, err
}

// UnmarshalJSON decodes a command as encoding/json does, but refuses an
// explicit "policy_version" outside 1..MaxPolicyVersion with a *FieldError:
// the field is omitted when 0, so only the decoder can tell an explicit 0
// (refused) from an absent policy_version (the default).
func (c *Command) UnmarshalJSON(data []byte) error {
	type plain Command // without this method
	aux := struct {
		*plain
		PolicyVersion *int `json:"policy_version"`
	}{plain: (*plain)(c)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	return setPolicyVersion(&c.PolicyVersion, "policy_version", aux.PolicyVersion)
}

// setPolicyVersion stores an explicit policy version v (nil when absent or
// null) in dst, refusing one outside 1..MaxPolicyVersion.
func setPolicyVersion(dst *int, field string, v *int) error {
	if v == nil {
		return nil
	}
	if err := CheckPolicyVersion(field, *v); err != nil {
		return err
	}
	*dst = *v
	return nil
}

// MaxPolicyVersion is the highest policy version (2^31-1): policy versions
// are 1 to MaxPolicyVersion everywhere, in commands, queries and stored
// events, so that every JSON reader holds them exactly.
const MaxPolicyVersion = 1<<31 - 1

// CheckPolicyVersion returns a *FieldError naming field unless v is 1 to
// MaxPolicyVersion.
func CheckPolicyVersion(field string, v int) error {
	if v < 1 || v > MaxPolicyVersion {
		return &FieldError{Field: field, Problem: fmt.Sprintf("must be between 1 and %d", MaxPolicyVersion)}
	}
	return nil
}

// Bounds on the times of a command, checked against the ledger's clock
// when the event is decided (see Decide).
const (
	// MaxFutureSkew is how far past the ledger's clock an occurred_at may
	// be: room for a caller's clock running a little ahead, not for
	// recording the future.
	MaxFutureSkew = 5 * time.Minute
	// MaxBackdate is how far before the ledger's clock an occurred_at may
	// be (3650 days, about 10 years): consent given on paper can be
	// recorded later, and the event then carries both times (see
	// IsBackdated).
	MaxBackdate = 3650 * 24 * time.Hour
	// MaxGrantLifetime bounds a grant's expires_at: at most this long
	// after its occurred_at (100 years), whether given as expires_at or
	// ttl. It is MaxDefaultTTL, a purpose's default ttl bound.
	MaxGrantLifetime = MaxDefaultTTL
)

// IsBackdated reports whether an event was recorded more than
// MaxFutureSkew after it occurred: one recorded late (a paper form), as
// opposed to one recorded as it happened.
func (e *Event) IsBackdated() bool {
	return e.RecordedAt.Sub(e.OccurredAt) > MaxFutureSkew
}

// Key returns the consent the command is about, with the tenant defaulted.
func (c *Command) Key() Key {
	return Key{Tenant: OrDefaultTenant(c.Tenant), SubjectID: c.SubjectID, Purpose: c.Purpose}
}

// Validate checks every field of a command of the given kind, returning a
// *FieldError for the first problem found, and normalises c.SubjectID in
// place (NormalizeSubjectID), so that the command names the consent the
// ledger records. Fields that do not belong to the kind (a ttl on a revoke,
// a reason on a grant) are refused rather than silently dropped.
// recorded_by, when set, is at most MaxRecordedByLen bytes without control
// characters. policy_version is 0 (absent: the default) or 1 to MaxPolicyVersion; a
// ttl is at most MaxGrantLifetime; evidence is an object of at most
// MaxEvidenceLen bytes and MaxEvidenceDepth levels whose numbers keep their
// value in canonical form (see CanonicalEvidence). What only the clock can
// tell (the bounds of occurred_at and expires_at) Decide checks.
func (c *Command) Validate(kind Kind) error {
	if kind.EventType() == "" {
		return &FieldError{Field: "kind", Problem: fmt.Sprintf("unknown command %q", kind)}
	}
	k, err := c.Key().Normalize()
	if err != nil {
		return err
	}
	c.SubjectID = k.SubjectID
	if c.PolicyVersion != 0 {
		if err := CheckPolicyVersion("policy_version", c.PolicyVersion); err != nil {
			return err
		}
	}
	if err := checkText("description", c.Description, MaxDescriptionLen, true); err != nil {
		return err
	}
	if err := checkText("reason", c.Reason, MaxReasonLen, true); err != nil {
		return err
	}
	if err := checkText("actor", c.Actor, MaxNameLen, false); err != nil {
		return err
	}
	if err := checkText("method", c.Method, MaxNameLen, false); err != nil {
		return err
	}
	if err := checkRecordedBy(c.RecordedBy); err != nil {
		return err
	}
	if err := checkText("idempotency_key", c.IdempotencyKey, MaxIdempotencyKeyLen, false); err != nil {
		return err
	}
	if c.Description != "" && kind != KindRequest {
		return &FieldError{Field: "description", Problem: "is only allowed on request"}
	}
	if c.Reason != "" && kind != KindDeny && kind != KindRevoke {
		return &FieldError{Field: "reason", Problem: "is only allowed on deny and revoke"}
	}
	if (c.TTL != "" || c.ExpiresAt != nil) && kind != KindGrant {
		field := "ttl"
		if c.ExpiresAt != nil {
			field = "expires_at"
		}
		return &FieldError{Field: field, Problem: "is only allowed on grant"}
	}
	if c.TTL != "" && c.ExpiresAt != nil {
		return &FieldError{Field: "ttl", Problem: "give either ttl or expires_at, not both"}
	}
	if c.TTL != "" {
		d, err := time.ParseDuration(c.TTL)
		if err != nil {
			return &FieldError{Field: "ttl", Problem: fmt.Sprintf("%.40q is not a Go duration such as 8760h", c.TTL)}
		}
		if d <= 0 {
			return &FieldError{Field: "ttl", Problem: "must be positive"}
		}
		if d > MaxGrantLifetime {
			return &FieldError{Field: "ttl", Problem: "must be at most 876000h (100 years)"}
		}
	}
	if c.OccurredAt != nil {
		if err := checkTime("occurred_at", *c.OccurredAt); err != nil {
			return err
		}
	}
	if c.ExpiresAt != nil {
		if err := checkTime("expires_at", *c.ExpiresAt); err != nil {
			return err
		}
	}
	if c.ExpiresAt != nil && c.OccurredAt != nil && !c.ExpiresAt.After(*c.OccurredAt) {
		return &FieldError{Field: "expires_at", Problem: "must be after occurred_at"}
	}
	if len(c.Evidence) > 0 {
		if len(c.Evidence) > MaxEvidenceLen {
			return &FieldError{Field: "evidence", Problem: fmt.Sprintf("must be at most %d bytes, got %d", MaxEvidenceLen, len(c.Evidence))}
		}
		// The evidence becomes part of the hashed payload, so it must be
		// something every canonicalizer reads the same way, and what is
		// stored must mean what the caller sent.
		if _, err := CanonicalEvidence(c.Evidence); err != nil {
			detail := strings.TrimPrefix(err.Error(), ErrNotCanonicalizable.Error()+": ")
			return &FieldError{Field: "evidence", Problem: "must be a JSON object (" + detail + ")"}
		}
	}
	return nil
}

// checkTime refuses times an event cannot carry: the zero time (which
// Decode reads as missing) and years outside 1..9999 in UTC (which RFC 3339
// cannot write).
func checkTime(field string, t time.Time) error {
	if y := t.UTC().Year(); t.IsZero() || y < 1 || y > 9999 {
		return &FieldError{Field: field, Problem: "must be a time between years 0001 and 9999 (UTC)"}
	}
	return nil
}

// checkRecordedBy checks the authenticated user a command is recorded by
// (empty: none): at most MaxRecordedByLen bytes of UTF-8 without control
// characters, else a *FieldError naming recorded_by.
func checkRecordedBy(v string) error {
	return checkText("recorded_by", v, MaxRecordedByLen, false)
}

func checkText(field, v string, max int, multiline bool) error {
	if len(v) > max {
		return &FieldError{Field: field, Problem: fmt.Sprintf("must be at most %d bytes, got %d", max, len(v))}
	}
	if !utf8.ValidString(v) {
		return &FieldError{Field: field, Problem: "must be valid UTF-8"}
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			if multiline && (r == '\n' || r == '\r' || r == '\t') {
				continue
			}
			return &FieldError{Field: field, Problem: "must not contain control characters"}
		}
	}
	return nil
}

// Decide applies the transition table to a validated command in the
// consent's current state cur, at time now (the ledger's clock). It returns
// the event to append, complete but for ID and Hash, in schema version 1
// (SchemaVersionClear; SealWith makes it version 2), with SubjectKey
// cur.SubjectKey and PrevHash linked to cur (cur.NextPrevHash: "" after
// consent.erased, which ends the chain); or a *TransitionError when the table forbids the command; or a
// *FieldError for what only now can tell: an occurred_at more than
// MaxFutureSkew after now or more than MaxBackdate before it, an expires_at
// not after the occurred_at that defaults to now or more than
// MaxGrantLifetime after it, or a ttl reaching past year 9999.
//
// A zero cur (State "") is treated as StateNone. All times of the event are
// in UTC. Decide is pure: the same inputs give the same event.
func Decide(cur Consent, kind Kind, c Command, now time.Time) (Event, error) {
	now = now.UTC()
	from := cur.StateAt(now)
	if from == "" {
		from = StateNone
	}
	policy := max(c.PolicyVersion, 1)
	if err := checkTransition(cur, from, kind, policy); err != nil {
		return Event{}, err
	}
	occurred := now
	if c.OccurredAt != nil {
		occurred = c.OccurredAt.UTC()
		switch {
		case occurred.After(now.Add(MaxFutureSkew)):
			return Event{}, &FieldError{Field: "occurred_at", Problem: "must not be more than 5 minutes after the ledger's clock (" + now.Format(time.RFC3339) + ")"}
		case occurred.Before(now.Add(-MaxBackdate)):
			return Event{}, &FieldError{Field: "occurred_at", Problem: "must not be more than 3650 days (about 10 years) before the ledger's clock (" + now.Format(time.RFC3339) + ")"}
		}
	}
	var expires *time.Time
	switch {
	case c.ExpiresAt != nil:
		t := c.ExpiresAt.UTC()
		if !t.After(occurred) {
			return Event{}, &FieldError{Field: "expires_at", Problem: "must be after occurred_at (which defaults to now)"}
		}
		if t.Sub(occurred) > MaxGrantLifetime {
			return Event{}, &FieldError{Field: "expires_at", Problem: "must be at most 100 years (876000h) after occurred_at (which defaults to now)"}
		}
		expires = &t
	case c.TTL != "":
		d, err := time.ParseDuration(c.TTL)
		if err != nil || d <= 0 {
			return Event{}, &FieldError{Field: "ttl", Problem: "must be a positive Go duration such as 8760h"}
		}
		t := occurred.Add(d)
		if err := checkTime("ttl", t); err != nil {
			return Event{}, &FieldError{Field: "ttl", Problem: "puts expires_at past year 9999"}
		}
		expires = &t
	}
	ev := Event{
		V:             SchemaVersionClear,
		Type:          kind.EventType(),
		Tenant:        OrDefaultTenant(c.Tenant),
		SubjectID:     c.SubjectID,
		SubjectKey:    cur.SubjectKey,
		Purpose:       c.Purpose,
		OccurredAt:    occurred,
		RecordedAt:    now,
		PolicyVersion: policy,
		Description:   c.Description,
		Actor:         c.Actor,
		RecordedBy:    c.RecordedBy,
		Method:        c.Method,
		Evidence:      c.Evidence,
		Reason:        c.Reason,
		ExpiresAt:     expires,
		PrevHash:      cur.NextPrevHash(),
	}
	return ev, nil
}

func checkTransition(cur Consent, from State, kind Kind, policy int) error {
	refuse := func(reason string) error { return &TransitionError{Kind: kind, From: from, Reason: reason} }
	switch kind {
	case KindRequest:
		if from == StateGranted && policy <= cur.PolicyVersion {
			return refuse(fmt.Sprintf("the consent is already granted at policy version %d; a new request needs a higher policy_version", cur.PolicyVersion))
		}
	case KindDeny:
		if from == StateGranted {
			return refuse("the consent is granted; use revoke to withdraw a grant")
		}
	case KindRevoke:
		switch from {
		case StateGranted, StateExpired:
		case StateNone:
			return refuse("there is no consent to revoke for this person and purpose")
		case StateRequested:
			return refuse("the consent was requested but never granted; only a grant can be revoked")
		case StateDenied:
			return refuse("the person denied it; only a grant can be revoked")
		case StateRevoked:
			return refuse("the consent is revoked already")
		default:
			return refuse(fmt.Sprintf("the consent is %s; only a grant can be revoked", from))
		}
	}
	return nil
}

// Evolve folds one event, stored at stream sequence seq, into the state of
// its consent. It trusts the event (the ledger decided it); validation and
// hash checks happen before.
//
// The state after an event follows from the event alone, whatever cur was
// (cur is returned unchanged only for a type this version does not know):
// every event carries the policy version, and a grant and an expiry carry
// their expires_at. So a reader that starts in the middle of the stream (a
// watcher, a cache) knows a consent's state from the first event it sees of
// it, without reading its history.
func Evolve(cur Consent, ev *Event, seq uint64) Consent {
	next := Consent{
		Tenant:        ev.Tenant,
		SubjectID:     ev.SubjectID,
		SubjectKey:    ev.SubjectKey,
		Purpose:       ev.Purpose,
		PolicyVersion: ev.PolicyVersion,
		UpdatedAt:     ev.OccurredAt,
		Seq:           seq,
		EventID:       ev.ID,
		Hash:          ev.Hash,
	}
	switch ev.Type {
	case TypeRequested:
		next.State = StateRequested
	case TypeGranted:
		next.State = StateGranted
		next.ExpiresAt = ev.ExpiresAt
	case TypeDenied:
		next.State = StateDenied
	case TypeRevoked:
		next.State = StateRevoked
	case TypeExpired:
		next.State = StateExpired
		next.ExpiresAt = ev.ExpiresAt
	case TypeQuarantined:
		next.State = ev.State
		next.ExpiresAt = ev.ExpiresAt
	case TypeErased:
		next.State = StateErased
	default:
		return cur
	}
	return next
}
