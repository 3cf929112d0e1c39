package projector

import (
	"encoding/json"
	"errors"
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
// projector.
const checkStop = "stop"

// checkEvent decodes a payload that came on subj with the given
// Consent-Event-Type header and checks everything that does not depend on
// the consent's state. It returns the event and "" when it passes, else
// the failed check (one of the Check* constants, or checkStop) and why.
//
// What stops and what is a violation: an event of a newer schema version
// or of a type this code does not know is something a newer ledger wrote,
// which this projector would misread, so it stops (upgrade it). Anything
// else that is not a valid event, including a payload that is not a JSON
// object with a string "type" at all, is something the ledger never
// writes (a stray publish onto consent.events.> or a corruption), so it is
// recorded as a violation and projection goes on: one bad message must not
// take every status lookup down.
//
// payload is handed over: the event's strings share it (a consumed
// message's data is its own, see events.DecodeOwned).
func checkEvent(subj, typeHeader string, payload []byte) (*events.Event, string, error) {
	ev, err := events.DecodeOwnedVerified(payload)
	if ev == nil {
		if errors.Is(err, events.ErrNewerSchema) || errors.Is(err, events.ErrUnknownType) {
			return nil, checkStop, err
		}
		if newer := fromTheFuture(payload); newer != nil {
			return nil, checkStop, newer
		}
		return nil, CheckDecode, err
	}
	hashErr := err
	if typeHeader != string(ev.Type) {
		return ev, CheckHeader, fmt.Errorf("header %s is %q, the event's type is %q", events.HeaderEventType, typeHeader, ev.Type)
	}
	if k := ev.Key(); !k.IsNATSSubject(subj) {
		return ev, CheckSubject, fmt.Errorf("the event belongs on %s", k.NATSSubject())
	}
	if hashErr != nil {
		return ev, CheckHash, hashErr
	}
	return ev, "", nil
}

// fromTheFuture looks at a payload that failed to decode: when it is an
// object whose "v" is newer than events.SchemaVersion, or whose "type" is a
// string naming no known type, strict decoding failed because a newer
// writer added fields, and the projector must stop rather than call it a
// violation.
func fromTheFuture(payload []byte) error {
	var head struct {
		V    json.RawMessage `json:"v"`
		Type json.RawMessage `json:"type"`
	}
	if json.Unmarshal(payload, &head) != nil {
		return nil
	}
	var v int64
	if json.Unmarshal(head.V, &v) == nil && v > events.SchemaVersion {
		return fmt.Errorf("%w: v=%d, this reader knows up to %d", events.ErrNewerSchema, v, events.SchemaVersion)
	}
	var t string
	if json.Unmarshal(head.Type, &t) == nil && t != "" && !events.Type(t).Known() {
		return fmt.Errorf("%w: %q", events.ErrUnknownType, t)
	}
	return nil
}
