package events

import (
	"errors"
	"fmt"
)

// ErrInvalid is matched (with errors.Is) by every *FieldError.
var ErrInvalid = errors.New("invalid input")

// ErrForbidden is matched by every *TransitionError.
var ErrForbidden = errors.New("transition not allowed")

// FieldError reports a missing or invalid field of a command, query or event.
type FieldError struct {
	Field   string // the JSON name of the field
	Problem string // what is wrong, in words a caller can act on
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Is makes errors.Is(err, ErrInvalid) true for every FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// TransitionError reports a command the transition table forbids in the
// consent's current state. Its message is "cannot KIND: REASON", where
// REASON says in words where the consent stands and why that refuses it.
type TransitionError struct {
	Kind   Kind  // the command that was refused
	From   State // the state it was refused in
	Reason string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s: %s", e.Kind, e.Reason)
}

// Is makes errors.Is(err, ErrForbidden) true for every TransitionError.
func (e *TransitionError) Is(target error) bool { return target == ErrForbidden }

// Errors of a read model (the index) that is not current enough to answer.
// Both mean "retry later" and are 503 on the wire.
var (
	// ErrNotReady: the index cannot answer at all yet (opening, or stopped).
	ErrNotReady = errors.New("index is not ready")
	// ErrStale: the index did not reach the requested min_seq in time.
	ErrStale = errors.New("index has not reached min_seq in time")
)
