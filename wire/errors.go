package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/consentledger/consent/events"
)

// Error is an error as it crosses the wire: one of a small closed set of
// codes and a description a caller can act on. The service sends it in the
// micro headers Nats-Service-Error-Code and Nats-Service-Error; the Go client
// turns those back into an *Error, so errors.Is(err, ErrConflict) works on
// both sides.
type Error struct {
	Code        int
	Description string
	// Status is set on a 403 from Check: the status that did not allow the
	// action.
	Status *events.Status
}

func (e *Error) Error() string {
	if e.Description == "" {
		return fmt.Sprintf("consent: %d %s", e.Code, codeText(e.Code))
	}
	return fmt.Sprintf("consent: %s (%d)", e.Description, e.Code)
}

// Is reports whether target is the sentinel of e's code, so that
// errors.Is(err, ErrConflict) matches any 409. A 403 is ErrForbidden when
// its description starts with "forbidden" (the caller's credentials do
// not allow the request), else ErrConsentRequired.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || t.Status != nil || t.Code != e.Code || (t.Description != "" && t != ErrForbidden) {
		return false
	}
	if e.Code == 403 {
		return (t == ErrForbidden) == strings.HasPrefix(e.Description, "forbidden")
	}
	return true
}

// Sentinels, one per wire code; compare with errors.Is.
var (
	ErrBadRequest      = &Error{Code: 400} // malformed JSON, unknown field, missing or invalid field
	ErrConsentRequired = &Error{Code: 403} // Check: the action is not allowed
	// ErrForbidden is a 403 whose description starts "forbidden:": the
	// caller's credentials do not allow this request (another tenant, an
	// endpoint of another role).
	ErrForbidden   = &Error{Code: 403, Description: "forbidden"}
	ErrConflict    = &Error{Code: 409} // expected_seq mismatch, forbidden transition, or a consent with an integrity violation
	ErrTooLarge    = &Error{Code: 413} // request over MaxRequestSize
	ErrUnavailable = &Error{Code: 503} // not ready, or min_seq not reached in time
	ErrInternal    = &Error{Code: 500} // anything else
)

// Text is the description, or for an error without one the standard text
// of its code ("conflict" for a 409): what goes in the micro header
// Nats-Service-Error.
func (e *Error) Text() string {
	if e.Description == "" {
		return codeText(e.Code)
	}
	return e.Description
}

func codeText(code int) string {
	switch code {
	case 400:
		return "bad request"
	case 403:
		return "consent required"
	case 409:
		return "conflict"
	case 413:
		return "request too large"
	case 503:
		return "unavailable"
	}
	return "internal error"
}

// FromWire builds the *Error for a code and description received in micro
// error headers. Unknown codes become 500 with the description kept.
func FromWire(code, description string) *Error {
	c, err := strconv.Atoi(code)
	switch c {
	case 400, 403, 409, 413, 503, 500:
	default:
		c = 500
	}
	if err != nil {
		c = 500
	}
	return &Error{Code: c, Description: description}
}

// ConsentRequired returns the 403 a check answers when st does not allow
// the action: it matches ErrConsentRequired, its Description says why
// ("consent required: <state>", with the policy versions when the grant is
// older than minPolicyVersion), and its Status is a copy of st.
func ConsentRequired(st events.Status, minPolicyVersion int) *Error {
	denied := st // a copy, so that the caller's st stays off the heap
	return &Error{Code: 403, Description: consentRequiredText(st, minPolicyVersion), Status: &denied}
}

// consentRequiredText describes why a check failed: "consent required: <state>",
// with the policy versions when the grant is too old for the caller.
func consentRequiredText(st events.Status, minPolicyVersion int) string {
	d := "consent required: " + string(st.State)
	if st.State == events.StateIntegrityViolation {
		d += fmt.Sprintf(" at seq %d; an operator must quarantine it (consentctl admin quarantine %d --reason TEXT)", st.ViolationSeq, st.ViolationSeq)
	}
	if st.State == events.StateGranted {
		d += fmt.Sprintf(" at policy version %d, but policy version %d is required", st.PolicyVersion, minPolicyVersion)
	}
	return d
}

// ErrUnreadableEvent is matched by errors about a message in the stream that
// is not an event this version can read (malformed, newer schema, unknown
// type, or stored on another consent's subject). It is a 500 on the wire:
// the caller cannot fix it.
var ErrUnreadableEvent = errors.New("stored event cannot be read")

// ErrDurableMismatch is matched by the error client.Client.Watch returns when a durable
// consumer of that name exists with other filters: pick another name, or
// delete the old consumer.
var ErrDurableMismatch = errors.New("durable watch exists with other filters")
