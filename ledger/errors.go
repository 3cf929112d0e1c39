package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// WireError maps any error to the *wire.Error that goes on the wire. Errors the
// caller can act on keep their description; anything else becomes a 500
// that leaks no internals.
func WireError(err error) *wire.Error {
	var we *wire.Error
	var fe *events.FieldError
	var te *events.TransitionError
	var wr *WritesRefusedError
	switch {
	case errors.As(err, &we):
		return we
	case errors.As(err, &fe):
		return &wire.Error{Code: 400, Description: fe.Error()}
	case errors.As(err, &te):
		return &wire.Error{Code: 409, Description: te.Error()}
	case errors.Is(err, ErrSeqMismatch), errors.Is(err, ErrContention), errors.Is(err, events.ErrForbidden), errors.Is(err, ErrIntegrity):
		return &wire.Error{Code: 409, Description: err.Error()}
	case errors.As(err, &wr):
		// A StreamGuard refuses writes: the stream's configuration
		// changed under the ledger.
		return &wire.Error{Code: 503, Description: wr.Error()}
	case errors.Is(err, events.ErrStale):
		return &wire.Error{Code: 503, Description: "index has not reached min_seq in time; retry later"}
	case errors.Is(err, events.ErrNotReady), errors.Is(err, context.DeadlineExceeded):
		return &wire.Error{Code: 503, Description: "service not ready; retry later"}
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		// The stream did not answer (no quorum, restarting). An append may
		// or may not have landed: a retry with the same idempotency_key is
		// safe.
		return &wire.Error{Code: 503, Description: "event store unavailable; retry later"}
	}
	return &wire.Error{Code: 500, Description: "internal error"}
}
