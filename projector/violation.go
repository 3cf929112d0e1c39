package projector

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/consentledger/consent/events"
)

// Checks an event can fail; the Check field of a Violation. They are the
// events package's, the one rule the write path applies too.
const (
	CheckDecode     = events.CheckDecode     // the payload is not a valid event
	CheckHeader     = events.CheckHeader     // Consent-Event-Type is missing or disagrees with the payload
	CheckSubject    = events.CheckSubject    // the NATS subject is not the event's consent subject
	CheckHash       = events.CheckHash       // the hash does not match the content
	CheckLink       = events.CheckLink       // prev_hash is not the hash of the consent's last applied event
	CheckQuarantine = events.CheckQuarantine // a consent.quarantined that does not resume the consent's last good state
)

// Violation is a stream message that failed an integrity check and was
// therefore not applied. It is stored in the index at its stream sequence,
// in the same commit as the checkpoint that passes it.
type Violation struct {
	Seq       uint64    `json:"seq"`
	Subject   string    `json:"subject"`            // NATS subject the message came on
	Check     string    `json:"check"`              // one of the Check* constants
	Reason    string    `json:"reason"`             // what exactly failed
	EventID   string    `json:"event_id,omitempty"` // when the payload had one
	Timestamp time.Time `json:"timestamp"`          // when the stream stored the message
}

func (v Violation) String() string {
	return fmt.Sprintf("seq %d on %s: %s: %s", v.Seq, v.Subject, v.Check, v.Reason)
}

// Violations returns every integrity violation recorded in the index,
// ordered by stream sequence. It returns ErrClosed after Close.
func (i *Index) Violations() ([]Violation, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.db == nil {
		return nil, ErrClosed
	}
	lower := []byte{kindViolation}
	it, err := i.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, err
	}
	var out []Violation
	for ok := it.First(); ok; ok = it.Next() {
		seq, err := decodeViolationKey(it.Key())
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		var v Violation
		if err := json.Unmarshal(it.Value(), &v); err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("projector: violation at seq %d: %w", seq, err)
		}
		out = append(out, v)
	}
	return out, it.Close()
}

// ViolationCount returns how many violations the index has recorded.
func (i *Index) ViolationCount() uint64 { return i.violations.Load() }
