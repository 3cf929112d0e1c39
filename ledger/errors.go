package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Error is an error as it crosses the wire: one of a small closed set of
// codes and a description a caller can act on. The service sends it in the
// micro headers Nats-Service-Error-Code and Nats-Service-Error; the Client
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

// ErrSeqMismatch is matched by the error Append returns when expected_seq
// does not match the consent's last sequence (a *SeqMismatchError).
var ErrSeqMismatch = errors.New("expected_seq does not match")

// SeqMismatchError is returned by Append when the command's expected_seq is
// not the sequence of the consent's last event. It matches ErrSeqMismatch
// and is a 409 on the wire.
type SeqMismatchError struct {
	Expected uint64 // the command's expected_seq
	Actual   uint64 // the sequence of the consent's last event (0: none)
}

func (e *SeqMismatchError) Error() string {
	return fmt.Sprintf("expected_seq is %d but the consent's last event is at seq %d", e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrSeqMismatch) true.
func (e *SeqMismatchError) Is(target error) bool { return target == ErrSeqMismatch }

// ErrContention is matched by the error Append returns when concurrent
// writers kept changing the consent through all its retries. It is a 409
// on the wire: the caller may retry.
var ErrContention = errors.New("too many concurrent changes to this consent")

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

// WireError maps any error to the *Error that goes on the wire. Errors the
// caller can act on keep their description; anything else becomes a 500
// that leaks no internals.
func WireError(err error) *Error {
	var we *Error
	var fe *events.FieldError
	var te *events.TransitionError
	var wr *WritesRefusedError
	switch {
	case errors.As(err, &we):
		return we
	case errors.As(err, &fe):
		return &Error{Code: 400, Description: fe.Error()}
	case errors.As(err, &te):
		return &Error{Code: 409, Description: te.Error()}
	case errors.Is(err, ErrSeqMismatch), errors.Is(err, ErrContention), errors.Is(err, events.ErrForbidden), errors.Is(err, ErrIntegrity):
		return &Error{Code: 409, Description: err.Error()}
	case errors.As(err, &wr):
		// A StreamGuard refuses writes: the stream's configuration
		// changed under the ledger.
		return &Error{Code: 503, Description: wr.Error()}
	case errors.Is(err, events.ErrStale):
		return &Error{Code: 503, Description: "index has not reached min_seq in time; retry later"}
	case errors.Is(err, events.ErrNotReady), errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: 503, Description: "service not ready; retry later"}
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		// The stream did not answer (no quorum, restarting). An append may
		// or may not have landed: a retry with the same idempotency_key is
		// safe.
		return &Error{Code: 503, Description: "event store unavailable; retry later"}
	}
	return &Error{Code: 500, Description: "internal error"}
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
