package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultStream is the name of the stream that holds the audit trail.
const DefaultStream = "CONSENT"

// StreamOptions configures the CONSENT stream EnsureStream creates.
type StreamOptions struct {
	Name       string        // default DefaultStream
	Replicas   int           // default 1
	Duplicates time.Duration // Nats-Msg-Id window; default 2m
}

// EnsureStream creates the stream, or checks an existing one, refusing one
// whose settings would let events be deleted, purged, rolled up or aged out.
// SCAFFOLD: body is being written (issue 2).
func EnsureStream(ctx context.Context, js jetstream.JetStream, opts StreamOptions) (jetstream.Stream, error) {
	return nil, errors.New("not implemented")
}

// Options configures a Ledger.
type Options struct {
	MaxRetries int              // conflict retries without expected_seq; default 5
	Now        func() time.Time // clock; default time.Now
}

// Ledger appends events to the CONSENT stream and reads histories back.
type Ledger struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	opts   Options
}

// New returns a Ledger over an existing stream (see EnsureStream).
func New(js jetstream.JetStream, stream jetstream.Stream, opts Options) *Ledger {
	return &Ledger{js: js, stream: stream, opts: opts}
}

// Append validates a command of the given kind, decides its event and
// appends it. SCAFFOLD: body is being written (issue 2).
func (l *Ledger) Append(ctx context.Context, kind events.Kind, cmd events.Command) (Reply, error) {
	return Reply{}, errors.New("not implemented")
}

// History reads events from the stream, oldest first.
// SCAFFOLD: body is being written (issue 2).
func (l *Ledger) History(ctx context.Context, q HistoryQuery) (History, error) {
	return History{}, errors.New("not implemented")
}
