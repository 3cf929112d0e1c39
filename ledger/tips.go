package ledger

import (
	"context"
	"hash/maphash"
	"sync"

	"github.com/consentledger/consent/events"
)

// Tips is where a Ledger may learn a consent's last state without reading
// the stream: the projector index of the same process. Its answers are
// hints. Each append names the sequence it was decided on, and the stream
// refuses it when another event came after; the Ledger then reads the
// stream and decides again. So a stale hint costs a refused publish, never
// a wrong event.
type Tips interface {
	// Consent is StateReader.Consent: the folded state, State "" when
	// the consent has no events, an error when it cannot answer.
	Consent(ctx context.Context, k events.Key, minSeq uint64) (events.Consent, uint64, error)
}

// ownTipSlots is the number of consents whose last appended state a Ledger
// remembers (about 1 MiB): the index may not have folded an append of a
// moment ago, so the Ledger's own appends come first.
const ownTipSlots = 4096

// ownTips remembers the state each recent append of this Ledger left,
// direct-mapped by the consent's subject: a newer append to a consent
// takes its slot, another consent may take it over.
type ownTips struct {
	mu    sync.Mutex
	slots [ownTipSlots]struct {
		subject string
		c       events.Consent
	}
}

var ownTipsSeed = maphash.MakeSeed()

func (o *ownTips) slot(subject string) int {
	return int(maphash.String(ownTipsSeed, subject) & (ownTipSlots - 1))
}

func (o *ownTips) get(subject string) (events.Consent, bool) {
	i := o.slot(subject)
	o.mu.Lock()
	defer o.mu.Unlock()
	if s := &o.slots[i]; s.subject == subject {
		return s.c, true
	}
	return events.Consent{}, false
}

// put records c as subject's state after an append at c.Seq, unless the
// slot holds a later state of the same consent.
func (o *ownTips) put(subject string, c events.Consent) {
	i := o.slot(subject)
	o.mu.Lock()
	defer o.mu.Unlock()
	s := &o.slots[i]
	if s.subject == subject && s.c.Seq > c.Seq {
		return
	}
	s.subject, s.c = subject, c
}

// hint returns what the Ledger's own appends and its Tips say of the
// consent's last state, and false when neither can say. It returns an
// *IntegrityError when the Tips mark the consent (see IntegrityError),
// unless they have not folded this Ledger's own last append to it yet (a
// quarantine, say): a message stored after that append would make the
// append decided on it fail the stream's sequence check anyway.
func (l *Ledger) hint(ctx context.Context, key events.Key, subject string) (events.Consent, bool, error) {
	if l.tips == nil {
		return events.Consent{}, false, nil
	}
	c, at, err := l.tips.Consent(ctx, key, 0)
	own, haveOwn := l.own.get(subject)
	if err == nil && c.ViolationSeq != 0 && !(haveOwn && at < own.Seq) {
		return events.Consent{}, false, &IntegrityError{Seq: c.ViolationSeq, Subject: subject}
	}
	if haveOwn && own.ViolationSeq != 0 { // left by a quarantine of one of several
		return events.Consent{}, false, &IntegrityError{Seq: own.ViolationSeq, Subject: subject}
	}
	if haveOwn {
		return own, true, nil
	}
	if err != nil {
		return events.Consent{}, false, nil
	}
	if c.State == "" {
		c = events.NewConsent(key)
	}
	return c, true, nil
}

// remember records the state an append of this Ledger left (with Tips).
func (l *Ledger) remember(subject string, c events.Consent) {
	if l.own != nil {
		l.own.put(subject, c)
	}
}
