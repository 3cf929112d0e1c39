package projector

import (
	"fmt"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/nats.go/jetstream"
)

// delivery is one stream message after the checks that need no state:
// either a decoded, hash-verified event that came on its own consent's
// subject, or a violation, or a reason to stop; or, with none of these, a
// message that is not an event (a checkpoint), passed over.
type delivery struct {
	seq     uint64 // stream sequence
	pending uint64 // messages left in the stream after this one
	subj    string
	stamp   time.Time
	ev      *events.Event
	key     []byte               // consent key of ev
	bad     *Violation           // a failed check: record it, do not apply
	stop    error                // cannot be applied or skipped: stop before it
	purpose *events.PurposeEvent // a checked purpose registry event (purpose.go)
}

// inspect runs the stateless checks on a message whose metadata is meta
// (nil when it did not parse). It runs on a checker's worker, ahead of
// the fold, so decoding and hashing overlap with the Pebble work.
func inspect(msg jetstream.Msg, meta *jetstream.MsgMetadata) delivery {
	if meta == nil {
		_, err := msg.Metadata()
		return delivery{stop: fmt.Errorf("message metadata: %w", err)}
	}
	d := delivery{seq: meta.Sequence.Stream, pending: meta.NumPending, subj: msg.Subject(), stamp: meta.Timestamp}
	if events.IsCheckpointSubject(d.subj) {
		// A signed checkpoint (internal/audit), not an event: nothing to
		// fold. The audit verifier checks it; the projector passes it.
		return d
	}
	if isPurposeSubject(d.subj) {
		return inspectPurpose(d, msg.Headers().Get(events.HeaderEventType), msg.Data())
	}
	ev, check, err := checkEvent(d.subj, msg.Headers().Get(events.HeaderEventType), msg.Data())
	switch {
	case check == "":
		d.ev = ev
		d.key = appendConsentKey(make([]byte, 0, 128), ev.Key())
	case check == checkStop:
		d.stop = err
	default:
		d.bad = &Violation{Seq: d.seq, Subject: d.subj, Check: check, Reason: err.Error(), Timestamp: d.stamp}
		if ev != nil {
			d.bad.EventID = ev.ID
		}
	}
	return d
}

// checkStop is checkEvent's verdict for an event that must stop the
// projector: events.CheckNewer.
const checkStop = events.CheckNewer

// checkEvent decodes a payload that came on subj with the given
// Consent-Event-Type header and checks everything that does not depend on
// the consent's state, by events.CheckMessage: the rule the ledger's write
// path applies too. It returns the event and "" when it passes, else the
// failed check (one of the Check* constants, or checkStop) and why.
//
// What stops and what is a violation: a well-formed event of a newer
// schema version or of a type this code does not know, whose hash matches
// its content, on a consent's subject, is something a newer ledger wrote,
// which this projector would misread, so it stops (upgrade it; the error
// is an *events.NewerEventError naming the version). Anything else that is
// not a valid event (`{"v":2}` has no hash, say) is something the ledger
// never writes (a stray publish onto consent.events.> or a corruption), so
// it is recorded as a violation, marks the consent of its subject (see
// Index.Consent), and projection goes on: one bad message must not take
// every status lookup down.
//
// payload is handed over: the event's strings share it (a consumed
// message's data is its own, see events.DecodeOwned).
func checkEvent(subj, typeHeader string, payload []byte) (*events.Event, string, error) {
	return events.CheckMessage(subj, typeHeader, payload, true)
}
