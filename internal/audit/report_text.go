package audit

import (
	"fmt"
	"io"
	"time"
)

// WriteText writes the report for a person: what was checked, what it
// found, and the first problems.
func (r *Report) WriteText(w io.Writer) error {
	p := &printer{w: w}
	p.f("Stream %s: checked seq %d to %d (%d messages) in %s\n", r.Stream, r.FirstSeq, r.LastSeq, r.Messages, r.Took.Round(time.Millisecond))
	p.f("  events %d (%d consents in the fresh fold), checkpoints %d, other records %d\n", r.Events, r.Consents, r.Checkpoints, r.Records)
	if r.Chain != "" {
		p.f("  chain at seq %d: %s\n", r.ChainSeq, r.Chain)
		if r.OK() {
			p.f("    keep it to check this history later: consentctl audit verify --anchor %d:%s\n", r.ChainSeq, r.Chain)
		}
	}
	switch {
	case r.Checkpoints == 0:
		p.f("  checkpoints: none in the stream (consentd signs them when given --signing-key)\n")
	case !r.Signed:
		p.f("  checkpoints: %d of %d match the stream; signatures NOT checked (give --public-key)\n", r.Verified, r.Checkpoints)
	default:
		p.f("  checkpoints: %d of %d verified (signature and chain)\n", r.Verified, r.Checkpoints)
	}
	if c := r.LastVerified; c != nil {
		p.f("  last verified sequence: %d (checkpoint at seq %d, made %s, key %s)\n", c.UpToSeq, c.Seq, c.Time.Format(time.RFC3339), c.KeyID)
	}
	if l := r.Live; l != nil {
		switch {
		case l.Err != "":
			p.f("  live index: not compared (%s)\n", l.Err)
		case l.Match:
			p.f("  live index: at seq %d, %d consents, digest %s: equal to a fresh fold\n", l.Live.IndexSeq, l.Live.Consents, l.Live.Digest)
		default:
			p.f("  live index: at seq %d DIFFERS from a fresh fold\n", l.Live.IndexSeq)
		}
	}
	if a := r.Anchor; a != nil && r.AnchorOK {
		p.f("  anchor %d: the chain matches\n", a.Seq)
	}
	if len(r.Explained) > 0 {
		p.f("  explained: %d integrity violation(s) quarantined by an operator:\n", len(r.Explained))
		for i := range r.Explained {
			p.f("    %s\n", r.Explained[i].String())
		}
	}
	if r.OK() {
		p.f("OK: no problems found\n")
		return p.err
	}
	p.f("FAILED: %d problem(s); the first at seq %d\n", r.ProblemCount, r.First().Seq)
	for i := range r.Problems {
		p.f("  %s\n", r.Problems[i].String())
	}
	if n := r.ProblemCount - uint64(len(r.Problems)); n > 0 {
		p.f("  ... and %d more\n", n)
	}
	return p.err
}

// printer writes formatted lines and keeps the first error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}
