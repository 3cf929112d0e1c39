package projector

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// Options configures a Projector.
type Options struct {
	Stream string // default "CONSENT"
}

// Projector reads the stream from the index checkpoint and applies it.
// SCAFFOLD: being written (issue 3).
type Projector struct{}

// New returns a projector feeding idx from the stream.
func New(js jetstream.JetStream, idx *Index, opts Options) *Projector { return &Projector{} }

// Run projects until ctx ends or a fatal error. SCAFFOLD.
func (p *Projector) Run(ctx context.Context) error { return errors.New("not implemented") }

// Health reports the projector's progress and problems.
type Health struct {
	IndexSeq   uint64
	StreamSeq  uint64
	Violations int
	Err        string
}

// Health returns a snapshot of the projector's health. SCAFFOLD.
func (p *Projector) Health() Health { return Health{} }
