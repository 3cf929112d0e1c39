package ledger

import (
	"context"
	"fmt"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
)

// UseKeys gives the feed the keys to answer feed.personal with (consentd
// opens its key store once the stream is found, after the feed starts).
func (f *Feed) UseKeys(k Keys) { f.keys.Store(&k) }

// personal answers feed.personal for a caller of the tenant token token
// ("" or AllTenantsToken: every tenant).
func (f *Feed) personal(ctx context.Context, token string, q *wire.FeedPersonalRequest) (*wire.FeedPersonalReply, error) {
	if len(q.Seqs) == 0 || len(q.Seqs) > wire.MaxFeedPersonal {
		return nil, &events.FieldError{Field: "seqs", Problem: fmt.Sprintf("must name 1 to %d sequences", wire.MaxFeedPersonal)}
	}
	kp := f.keys.Load()
	if kp == nil {
		return nil, &wire.Error{Code: 503, Description: "personal fields are not sealed here: consentd runs without --kek-file"}
	}
	keys := *kp
	stream, err := f.js.Stream(ctx, f.cfg.Stream)
	if err != nil {
		return nil, err
	}
	out := &wire.FeedPersonalReply{Personal: make([]wire.FeedPersonal, 0, len(q.Seqs))}
	for _, seq := range q.Seqs {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			return nil, fmt.Errorf("read seq %d: %w", seq, err)
		}
		tenant, _, _, ok := events.ParseConsentSubject(m.Subject)
		if !ok {
			return nil, &events.FieldError{Field: "seqs", Problem: fmt.Sprintf("seq %d is not a consent event", seq)}
		}
		if scoped(token) && tenant != token {
			return nil, &wire.Error{Code: 403, Description: fmt.Sprintf("forbidden: seq %d is an event of tenant %q; your credentials are for tenant %q only", seq, tenant, token)}
		}
		ev, err := decodeStored(m)
		if err != nil {
			return nil, err
		}
		p := wire.FeedPersonal{Seq: seq}
		if p.Erased, err = openSealed(ctx, keys, ev); err != nil {
			return nil, fmt.Errorf("seq %d: %w", seq, err)
		}
		if !p.Erased {
			p.Subject, p.Actor, p.Evidence, p.Reason = ev.SubjectID, ev.Actor, ev.Evidence, ev.Reason
		}
		out.Personal = append(out.Personal, p)
	}
	return out, nil
}
