package events

import "time"

// State is where a consent stands.
type State string

// The seven states of a consent. Expired is a grant whose expiry has
// passed: computed at read time from the clock (StateAt) until the
// consent.expired event lands, and stored from then on. Erased follows
// consent.erased (see DecideErase): never allowed; a new request, grant or
// deny starts the consent afresh, as from none.
const (
	StateNone      State = "none"
	StateRequested State = "requested"
	StateGranted   State = "granted"
	StateDenied    State = "denied"
	StateRevoked   State = "revoked"
	StateExpired   State = "expired"
	StateErased    State = "erased"
)

// StateIntegrityViolation is the state a status reports, instead of the
// consent's own, while the consent's history holds a message that failed
// the integrity checks (CheckMessage, or its link) and that no
// consent.quarantined explains: such a consent is never allowed, and
// writes to it fail, until an operator quarantines the message. It is a
// state of the answer only: no event leads to it and the index does not
// store it.
const StateIntegrityViolation State = "integrity_violation"

// Consent is the folded state of one consent: what Evolve produces and the
// index stores. It holds what the last event decided; read-time questions
// (has it expired, is it allowed) are answered by View.
type Consent struct {
	Tenant    string `json:"tenant"`
	SubjectID string `json:"subject"`
	// SubjectKey is the subject key of a consent folded from v2 events
	// (which carry it; their SubjectID is empty until opened), "" for v1.
	SubjectKey    string     `json:"subject_key,omitempty"`
	Purpose       string     `json:"purpose"`
	State         State      `json:"state"`
	PolicyVersion int        `json:"policy_version,omitempty"`
	UpdatedAt     time.Time  `json:"updated_at,omitzero"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	Seq           uint64     `json:"seq,omitempty"`
	EventID       string     `json:"event_id,omitempty"`
	Hash          string     `json:"hash,omitempty"`
	// ViolationSeq is the stream sequence of the first message of the
	// consent's history that failed the integrity checks and is not
	// quarantined; 0 when there is none. The index sets it when it reads
	// the state; Evolve leaves it alone.
	ViolationSeq uint64 `json:"violation_seq,omitempty"`
}

// NewConsent returns the state of a consent that has no events yet.
func NewConsent(k Key) Consent {
	return Consent{Tenant: k.Tenant, SubjectID: k.SubjectID, SubjectKey: k.SubjectKey, Purpose: k.Purpose, State: StateNone}
}

// Key returns the consent's identity.
func (c *Consent) Key() Key {
	return Key{Tenant: c.Tenant, SubjectID: c.SubjectID, Purpose: c.Purpose, SubjectKey: c.SubjectKey}
}

// NextPrevHash returns the prev_hash the next event of the consent must
// carry: the hash of its last event, except after consent.erased (State
// StateErased), which ends the chain: the next event starts a fresh one
// with prev_hash "". Decide, DecideExpiry and DecideQuarantine link with
// it; the link check (the projector's and audit verify's) holds events to
// it.
func (c *Consent) NextPrevHash() string {
	if c.State == StateErased {
		return ""
	}
	return c.Hash
}

// StateAt returns the state at time now: a grant whose expiry is at or
// before now is StateExpired.
func (c *Consent) StateAt(now time.Time) State {
	if c.State == StateGranted && c.ExpiresAt != nil && !now.Before(*c.ExpiresAt) {
		return StateExpired
	}
	return c.State
}

// Status is the answer to "may we?" for one consent, as the service returns
// it.
type Status struct {
	Tenant        string     `json:"tenant"`
	SubjectID     string     `json:"subject"`
	Purpose       string     `json:"purpose"`
	State         State      `json:"state"`
	Allowed       bool       `json:"allowed"`
	PolicyVersion int        `json:"policy_version"`
	UpdatedAt     *time.Time `json:"updated_at"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	Seq           uint64     `json:"seq"`
	EventID       string     `json:"event_id"`
	IndexSeq      uint64     `json:"index_seq"`
	// RequiredPolicyVersion is the policy version this answer asked of a
	// grant: the caller's min_policy_version, else the purpose's current
	// version when the purpose is registered; 0 (omitted) for none.
	RequiredPolicyVersion int `json:"required_policy_version,omitempty"`
	// Outdated is true for a live grant whose policy version is older than
	// RequiredPolicyVersion: the person agreed to an older policy and must
	// consent again before the action is allowed.
	Outdated bool `json:"outdated,omitempty"`
	// ViolationSeq is set, with State StateIntegrityViolation, when the
	// consent's history holds a message that failed the integrity checks:
	// its stream sequence. The other members then describe the consent's
	// last good state. 0 (omitted) otherwise.
	ViolationSeq uint64 `json:"violation_seq,omitempty"`
	// SubjectKey is the subject key the service looked the person up
	// under (the token of the consent's NATS subject, by the stream's
	// scheme): a pseudonym, not the person's id. Status, check and list
	// set it; View leaves it empty.
	SubjectKey string `json:"subject_key,omitempty"`
}

// View computes the status of c at time now. A consent with a ViolationSeq
// is StateIntegrityViolation and never allowed. Allowed is true only for a
// grant that has not expired and whose policy version is at least
// minPolicyVersion (0 asks for no minimum); a live grant below it is
// Outdated. IndexSeq is left for the caller to fill in.
//
// The service passes the caller's min_policy_version, or when there is
// none the purpose's current policy version (Purpose.RequiredPolicyVersion).
func (c *Consent) View(now time.Time, minPolicyVersion int) Status {
	st := Status{
		Tenant:        c.Tenant,
		SubjectID:     c.SubjectID,
		Purpose:       c.Purpose,
		State:         c.StateAt(now),
		PolicyVersion: c.PolicyVersion,
		ExpiresAt:     c.ExpiresAt,
		Seq:           c.Seq,
		EventID:       c.EventID,
	}
	if st.State == "" {
		st.State = StateNone
	}
	if !c.UpdatedAt.IsZero() {
		t := c.UpdatedAt
		st.UpdatedAt = &t
	}
	if c.ViolationSeq != 0 {
		st.State, st.ViolationSeq = StateIntegrityViolation, c.ViolationSeq
	}
	st.Allowed = st.State == StateGranted && c.PolicyVersion >= minPolicyVersion
	st.Outdated = st.State == StateGranted && !st.Allowed
	if minPolicyVersion > 0 {
		st.RequiredPolicyVersion = minPolicyVersion
	}
	return st
}
