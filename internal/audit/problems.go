package audit

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/consentledger/consent/events"
)

// Checks Verify runs; the Check of a Problem.
const (
	CheckGap        = "gap"        // a sequence the stream counts was not delivered: deleted, or a stored record the server could not read
	CheckDecode     = "decode"     // the payload is not a valid event (or record)
	CheckHeader     = "header"     // Consent-Event-Type disagrees with the payload
	CheckSubject    = "subject"    // stored on a subject that is not its consent's (or that the ledger never writes)
	CheckHash       = "hash"       // the hash does not match the content
	CheckLink       = "link"       // prev_hash is not the hash of the consent's previous event
	CheckSchema     = "schema"     // written by a newer ledger: this verifier cannot check it
	CheckCheckpoint = "checkpoint" // a checkpoint is malformed, badly signed, or its chain does not match the stream
	CheckAnchor     = "anchor"     // the chain does not match the anchor the auditor gave
	CheckIndex      = "index"      // the live index differs from a fresh fold of the stream
	CheckQuarantine = "quarantine" // a consent.quarantined names no unexplained violation of its consent
)

// ConsentRef names a consent in a report.
// A consent of v2 events is named by its subject key (its events carry no
// subject id in the clear; verify opens nothing).
type ConsentRef struct {
	Tenant     string `json:"tenant"`
	SubjectID  string `json:"subject,omitempty"`
	SubjectKey string `json:"subject_key,omitempty"`
	Purpose    string `json:"purpose"`
}

func refOf(k events.Key) *ConsentRef {
	return &ConsentRef{Tenant: k.Tenant, SubjectID: k.SubjectID, SubjectKey: k.SubjectKey, Purpose: k.Purpose}
}

func (c *ConsentRef) String() string {
	if c.SubjectID == "" && c.SubjectKey != "" {
		return fmt.Sprintf("tenant %s, subject key %s, purpose %s", c.Tenant, c.SubjectKey, c.Purpose)
	}
	return fmt.Sprintf("tenant %s, subject %s, purpose %s", c.Tenant, strconv.Quote(c.SubjectID), c.Purpose)
}

// Problem is one failed check, at the stream sequence where it was found.
type Problem struct {
	Seq     uint64      `json:"seq"`
	Subject string      `json:"nats_subject,omitempty"`
	Check   string      `json:"check"`
	Reason  string      `json:"reason"`
	Consent *ConsentRef `json:"consent,omitempty"`
	EventID string      `json:"event_id,omitempty"`
}

func (p *Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seq %d: %s: %s", p.Seq, p.Check, p.Reason)
	if p.Consent != nil {
		fmt.Fprintf(&b, " [consent: %s]", p.Consent)
	} else if p.Subject != "" {
		fmt.Fprintf(&b, " [on %s]", p.Subject)
	}
	if p.EventID != "" {
		fmt.Fprintf(&b, " [event %s]", p.EventID)
	}
	return b.String()
}
