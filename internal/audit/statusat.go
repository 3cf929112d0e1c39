package audit

import (
	"slices"
	"time"

	"github.com/consentledger/consent/events"
)

// TimeBasis says which time of an event a point-in-time question goes by.
type TimeBasis string

// The two bases of a point-in-time status.
const (
	// ByRecorded goes by recorded_at: the status as the ledger had
	// recorded it at that time (what a service asking then was told).
	ByRecorded TimeBasis = "recorded"
	// ByOccurred goes by occurred_at: what had happened by that time, as
	// the ledger knows it now, including events recorded later (imports,
	// late reports).
	ByOccurred TimeBasis = "occurred"
)

// StatusAtQuery is the body of consent.v1.status_at.
type StatusAtQuery struct {
	Tenant    string    `json:"tenant,omitempty"`
	SubjectID string    `json:"subject"`
	Purpose   string    `json:"purpose"`
	At        time.Time `json:"at"`
	By        TimeBasis `json:"by,omitempty"` // default ByRecorded
}

// Key returns the consent asked about, with the tenant defaulted.
func (q *StatusAtQuery) Key() events.Key {
	return events.Key{Tenant: events.OrDefaultTenant(q.Tenant), SubjectID: q.SubjectID, Purpose: q.Purpose}
}

// Validate returns a *events.FieldError for the first invalid field, and
// normalises q.SubjectID in place (events.NormalizeSubjectID).
func (q *StatusAtQuery) Validate() error {
	k, err := q.Key().Normalize()
	if err != nil {
		return err
	}
	q.SubjectID = k.SubjectID
	if q.At.IsZero() {
		return &events.FieldError{Field: "at", Problem: "is required: the time to answer for (RFC 3339)"}
	}
	switch q.By {
	case "", ByRecorded, ByOccurred:
		return nil
	}
	return &events.FieldError{Field: "by", Problem: `must be "recorded" or "occurred"`}
}

// StatusAt is the reply of consent.v1.status_at: the status the consent
// had at At, by the given time basis. Its seq and event_id name the event
// that decided it; index_seq is 0, because it is folded from the stream,
// not read from the index.
type StatusAt struct {
	events.Status
	At     time.Time `json:"at"`
	By     TimeBasis `json:"by"`
	Events int       `json:"events"` // events of the consent that count at At
}

// PointInTime folds one consent's history, offered in stream order, into
// its status at a past time, with events.Evolve as the index does.
type PointInTime struct {
	key     events.Key
	at      time.Time
	by      TimeBasis
	state   events.Consent
	last    *events.Event // the deciding event so far (ByOccurred)
	lastSeq uint64
	events  int
	done    bool
	taints  []uint64 // violations counted and not quarantined, ascending
}

// NewPointInTime starts a fold of k's history at time at by the basis by
// ("" is ByRecorded).
func NewPointInTime(k events.Key, at time.Time, by TimeBasis) *PointInTime {
	if by == "" {
		by = ByRecorded
	}
	return &PointInTime{key: k, at: at, by: by, state: events.NewConsent(k)}
}

// Add offers the consent's next event, stored at seq. It returns false
// when no later event can count: by recorded time, the first event
// recorded after At ends the fold (the ledger had not recorded it, nor
// anything after it, at At). By occurred time every event is looked at,
// and the one that occurred last at or before At (the later in the stream
// on a tie) decides.
func (p *PointInTime) Add(seq uint64, ev *events.Event) bool {
	if p.done {
		return false
	}
	switch p.by {
	case ByOccurred:
		if ev.OccurredAt.After(p.at) {
			return true
		}
		p.events++
		p.quarantine(ev)
		if p.last == nil || !ev.OccurredAt.Before(p.last.OccurredAt) {
			p.last, p.lastSeq = ev, seq
		}
	default:
		if ev.RecordedAt.After(p.at) {
			p.done = true
			return false
		}
		p.events++
		p.quarantine(ev)
		p.state = events.Evolve(p.state, ev, seq)
	}
	return true
}

// AddViolation offers the consent's next message when it failed the
// integrity rule (docs/audit.md): it was stored at seq at time stored
// (the stream's time, the message having no recorded_at to trust). Once
// counted (stored at or before At), the status is integrity_violation
// with that seq until an event counted quarantines it. It returns false
// as Add does: by recorded time, a message stored after At ends the fold.
func (p *PointInTime) AddViolation(seq uint64, stored time.Time) bool {
	if p.done {
		return false
	}
	if stored.After(p.at) {
		p.done = p.by != ByOccurred
		return !p.done
	}
	p.taints = append(p.taints, seq)
	return true
}

// quarantine clears the taint a counted consent.quarantined names.
func (p *PointInTime) quarantine(ev *events.Event) {
	if ev.Type != events.TypeQuarantined {
		return
	}
	if i, found := slices.BinarySearch(p.taints, ev.QuarantinedSeq); found {
		p.taints = slices.Delete(p.taints, i, i+1)
	}
}

// Status returns the status at At: expiry is judged at At.
func (p *PointInTime) Status() StatusAt {
	state := p.state
	if p.by == ByOccurred && p.last != nil {
		state = events.Evolve(state, p.last, p.lastSeq)
	}
	if len(p.taints) > 0 {
		state.ViolationSeq = p.taints[0]
	}
	return StatusAt{Status: state.View(p.at, 0), At: p.at, By: p.by, Events: p.events}
}
