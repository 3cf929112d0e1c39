package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/consentledger/consent/events"
)

// ReceiptVersion is the version of the receipt format.
const ReceiptVersion = 1

// ReceiptQuery is the body of consent.v1.receipt.
type ReceiptQuery struct {
	Tenant    string `json:"tenant,omitempty"`
	SubjectID string `json:"subject"`
	Purpose   string `json:"purpose"`
}

// Key returns the consent asked about, with the tenant defaulted.
func (q *ReceiptQuery) Key() events.Key {
	return events.Key{Tenant: events.OrDefaultTenant(q.Tenant), SubjectID: q.SubjectID, Purpose: q.Purpose}
}

// Validate returns a *events.FieldError for the first invalid field, and
// normalises q.SubjectID in place (events.NormalizeSubjectID).
func (q *ReceiptQuery) Validate() error {
	k, err := q.Key().Normalize()
	q.SubjectID = k.SubjectID
	return err
}

// Receipt is a record, for the person, of one consent: where it stands
// and every event that led there, each with its stream sequence, hash and
// prev_hash, so that the history can be checked against the stream, and
// the latest checkpoint that covers it.
type Receipt struct {
	V          int            `json:"v"`
	IssuedAt   time.Time      `json:"issued_at"`
	Stream     string         `json:"stream"`
	Tenant     string         `json:"tenant"`
	SubjectID  string         `json:"subject"`
	Purpose    string         `json:"purpose"`
	Status     events.Status  `json:"status"`  // at IssuedAt, folded from History
	History    []ReceiptEvent `json:"history"` // oldest first
	Checkpoint *CheckpointRef `json:"checkpoint,omitempty"`
	KeyID      string         `json:"key_id"`
}

// ReceiptEvent is one event of a receipt's history.
type ReceiptEvent struct {
	Seq   uint64        `json:"seq"`
	Event *events.Event `json:"event"`
}

// SignedReceipt is what consent.v1.receipt returns: the receipt, its
// detached signature, and a rendering for people.
type SignedReceipt struct {
	// Receipt is the receipt's canonical JSON (RFC 8785): the signed bytes.
	Receipt json.RawMessage `json:"receipt"`
	// Signature is the hex ed25519 signature over Receipt, by the key
	// named in the receipt's key_id.
	Signature string `json:"signature"`
	// Text is Receipt rendered for people (Receipt.Text). It is not
	// signed: VerifyReceipt renders the signed receipt again and requires
	// the same text.
	Text string `json:"text"`
}

// NewReceipt builds the receipt of consent k from its history (oldest
// first) and the latest checkpoint, which is kept only when it covers the
// last event.
func NewReceipt(stream string, k events.Key, history []ReceiptEvent, checkpoint *CheckpointRef, now time.Time) *Receipt {
	now = now.UTC()
	state := events.NewConsent(k)
	for _, e := range history {
		state = events.Evolve(state, e.Event, e.Seq)
	}
	if checkpoint != nil && (len(history) == 0 || checkpoint.UpToSeq < history[len(history)-1].Seq) {
		checkpoint = nil
	}
	if history == nil {
		history = []ReceiptEvent{}
	}
	return &Receipt{
		V: ReceiptVersion, IssuedAt: now, Stream: stream,
		Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose,
		Status: state.View(now, 0), History: history, Checkpoint: checkpoint,
	}
}

// SignReceipt signs r (setting its KeyID) and returns it with its
// rendering.
func (s *Signer) SignReceipt(r *Receipt) (*SignedReceipt, error) {
	r.KeyID = s.KeyID()
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	canonical, err := events.Canonical(raw)
	if err != nil {
		return nil, fmt.Errorf("receipt: canonical encoding: %w", err)
	}
	return &SignedReceipt{Receipt: canonical, Signature: s.sign(canonical), Text: r.Text()}, nil
}

// ErrBadReceipt is matched by VerifyReceipt's errors about a receipt that
// is signed correctly but does not hold together.
var ErrBadReceipt = errors.New("receipt does not hold together")

// VerifyReceipt checks a signed receipt with the trusted keys alone: the
// signature over the receipt (errors matching ErrUnknownKey or
// ErrBadSignature), then that it holds together (ErrBadReceipt): every
// event's hash recomputes, each prev_hash is the previous event's hash,
// the sequences increase, the status is the fold of the history, and the
// text is the receipt's rendering. It returns the receipt.
//
// It cannot tell whether the history is still the stream's: for that, an
// auditor checks the checkpoint it names with consentctl audit verify.
func VerifyReceipt(sr *SignedReceipt, keys Keyring) (*Receipt, error) {
	var r Receipt
	if err := events.DecodeStrict(sr.Receipt, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReceipt, err)
	}
	if err := verifyObject(keys, r.KeyID, sr.Signature, sr.Receipt); err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) (*Receipt, error) {
		return nil, fmt.Errorf("%w: %s", ErrBadReceipt, fmt.Sprintf(format, args...))
	}
	k := events.Key{Tenant: r.Tenant, SubjectID: r.SubjectID, Purpose: r.Purpose}
	prev, prevSeq := events.Consent{}, uint64(0)
	for _, e := range r.History {
		if e.Event == nil {
			return bad("an entry of the history has no event")
		}
		raw, err := storedPayload(e.Event)
		if err != nil {
			return bad("the event at seq %d: %v", e.Seq, err)
		}
		if err := events.VerifyHash(raw, e.Event); err != nil {
			return bad("the event at seq %d: %v", e.Seq, err)
		}
		switch {
		case !belongs(e.Event, k) || (prev.SubjectKey != "" && e.Event.SubjectKey != "" && e.Event.SubjectKey != prev.SubjectKey):
			return bad("the event at seq %d belongs to another consent", e.Seq)
		case e.Event.PrevHash != prev.NextPrevHash():
			return bad("the event at seq %d does not link to the one before it", e.Seq)
		case e.Seq <= prevSeq:
			return bad("the sequences do not increase at seq %d", e.Seq)
		}
		prev, prevSeq = events.Evolve(prev, e.Event, e.Seq), e.Seq
	}
	again := NewReceipt(r.Stream, k, r.History, r.Checkpoint, r.IssuedAt)
	want, err1 := json.Marshal(again.Status)
	got, err2 := json.Marshal(r.Status)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	if string(want) != string(got) {
		return bad("the status does not follow from the history")
	}
	if sr.Text != "" && sr.Text != r.Text() {
		return bad("the text is not the rendering of the signed receipt")
	}
	return &r, nil
}

// storedPayload returns the bytes the ledger stored for ev, whose hash
// they carry: a v2 event (sealed, opened or not) is stored without its
// personal fields (events.Event.Seal).
func storedPayload(ev *events.Event) ([]byte, error) {
	stored := *ev
	return stored.Seal()
}

// belongs reports whether ev is an event of consent k: same tenant and
// purpose, and the same subject id unless ev carries none (a v2 event that
// was not opened: its person was erased, or the reader has no key).
func belongs(ev *events.Event, k events.Key) bool {
	return ev.Tenant == k.Tenant && ev.Purpose == k.Purpose && (ev.SubjectID == "" || ev.SubjectID == k.SubjectID)
}

// Text renders the receipt for people.
func (r *Receipt) Text() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("CONSENT RECEIPT\n\n")
	p("Person:    %s (tenant %s)\n", r.SubjectID, r.Tenant)
	p("Purpose:   %s\n", r.Purpose)
	st := r.Status
	p("Status:    %s", st.State)
	if st.Allowed {
		p(" (allowed)")
	}
	if st.State != events.StateNone {
		p(", policy version %d", st.PolicyVersion)
	}
	p("\n")
	if st.UpdatedAt != nil {
		p("Since:     %s\n", textTime(*st.UpdatedAt))
	}
	if st.ExpiresAt != nil {
		p("Expires:   %s\n", textTime(*st.ExpiresAt))
	}
	p("Issued:    %s from stream %s, signed with key %s\n", textTime(r.IssuedAt), r.Stream, r.KeyID)
	p("\nHistory, oldest first (%d events):\n", len(r.History))
	if len(r.History) == 0 {
		p("  nothing is recorded for this consent\n")
	}
	for _, e := range r.History {
		ev := e.Event
		p("\n  seq %d  %s  %s\n", e.Seq, strings.TrimPrefix(string(ev.Type), "consent."), textTime(ev.OccurredAt))
		p("    recorded %s by %s", textTime(ev.RecordedAt), orNone(ev.Actor))
		if ev.Method != "" {
			p(" via %s", ev.Method)
		}
		p(", policy version %d\n", ev.PolicyVersion)
		if ev.RecordedBy != "" {
			p("    recorded by user: %s\n", ev.RecordedBy)
		}
		if ev.Description != "" {
			p("    asked: %s\n", oneLine(ev.Description))
		}
		if ev.ExpiresAt != nil {
			p("    until: %s\n", textTime(*ev.ExpiresAt))
		}
		if ev.Reason != "" {
			p("    reason: %s\n", oneLine(ev.Reason))
		}
		if len(ev.Evidence) > 0 {
			p("    evidence: %s\n", ev.Evidence)
		}
		if ev.IsSealed() && ev.SubjectID == "" {
			p("    personal fields: erased (sealed under a destroyed key)\n")
		}
		p("    event %s\n    hash %s\n", ev.ID, ev.Hash)
	}
	p("\n")
	if c := r.Checkpoint; c != nil {
		p("Anchor: the checkpoint at seq %d, made %s and signed with key %s,\n", c.Seq, textTime(c.Time), c.KeyID)
		p("commits to every event of the ledger up to seq %d (chain %s).\n", c.UpToSeq, c.Chain)
	} else {
		p("Anchor: no signed checkpoint covers the last event yet; the hashes above\n")
		p("anchor it, and the next checkpoint will commit to it.\n")
	}
	p("\nCheck this receipt: consentctl audit verify-receipt FILE --public-key KEY.pub\n")
	return b.String()
}

func textTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func orNone(s string) string {
	if s == "" {
		return "(not recorded)"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
