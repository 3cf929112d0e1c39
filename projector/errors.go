package projector

import (
	"errors"
	"fmt"
)

// Errors of the index itself.
var (
	// ErrLocked: another process (or another Open in this one) has the
	// index directory open.
	ErrLocked = errors.New("projector: index directory is in use")
	// ErrClosed: the index has been closed.
	ErrClosed = errors.New("projector: index is closed")
	// ErrBusy: a projector is already running on this index.
	ErrBusy = errors.New("projector: another projector is running on this index")
	// ErrFormat: the index was written by an incompatible version; delete
	// the directory and let the projector rebuild it from the stream.
	ErrFormat = errors.New("projector: unsupported index format")
)

// Reasons a projector stops; each comes wrapped in a *StopError. The
// projector never skips an event it cannot apply: it stops before it, so a
// restart (after an upgrade or a repair) resumes at that event.
// An event a newer ledger wrote stops it too: an *events.NewerEventError,
// matching events.ErrUnknownType or events.ErrNewerSchema.
var (
	// ErrGap: the stream delivered a sequence other than checkpoint+1.
	ErrGap = errors.New("gap in stream sequences")
	// ErrIndexAhead: the index has applied sequences the stream does not
	// have (the stream was replaced, or the index belongs to another one).
	ErrIndexAhead = errors.New("index is ahead of the stream")
	// ErrStreamMismatch: the index was built from a different stream (same
	// name, different creation time, or another name).
	ErrStreamMismatch = errors.New("index was built from another stream")
)

// StopError is the fatal error Run returns when it meets something it must
// not get past. Seq is the stream sequence it stopped at (the index
// checkpoint is Seq-1 or lower), Subject the message's NATS subject when
// there is one.
type StopError struct {
	Seq     uint64
	Subject string
	Err     error
}

func (e *StopError) Error() string {
	if e.Subject != "" {
		return fmt.Sprintf("projector stopped at seq %d (%s): %v", e.Seq, e.Subject, e.Err)
	}
	return fmt.Sprintf("projector stopped at seq %d: %v", e.Seq, e.Err)
}

// Unwrap returns the reason, so errors.Is(err, ErrGap) and
// errors.Is(err, events.ErrUnknownType) work.
func (e *StopError) Unwrap() error { return e.Err }
