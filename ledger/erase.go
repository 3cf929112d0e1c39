package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Keys are the persons' data keys (internal/keystore's Store): the
// ledger seals the personal fields of every consent event it appends under
// a key of the person (schema version 2), opens them for history, and
// destroys the keys when it erases the person.
//
// EnsureDataKey returns the key to seal the person's next event under,
// durable before it is returned (a person may have several keys over
// time); KeyByID the key of an id (a sealed event names the tenant, the
// subject key and the id), with an error matching ErrKeyDestroyed once
// destroyed; Destroy destroys the person's keys of ids (every key id the
// person's events name), is idempotent and returns whether a key was
// there to destroy.
type Keys interface {
	EnsureDataKey(ctx context.Context, tenant, subjectKey string) (id string, key []byte, err error)
	KeyByID(ctx context.Context, tenant, subjectKey, id string) ([]byte, error)
	Destroy(ctx context.Context, tenant, subjectKey string, ids []string) (bool, error)
}

// Erase erases a person: it appends consent.erased (events.DecideErase) to
// each of the person's consents in the stream, then destroys the person's
// data keys (Options.Keys: every key the person's events name), so that
// every sealed personal field of the person is unreadable; the consents' states become erased, never allowed,
// and a new consent of the same person starts a fresh chain.
//
// Erase is idempotent, and an erasure cut short (a crash, a timeout) is
// finished by calling it again: consents erased already are skipped (and
// listed in Already), and the key is destroyed once every consent is
// erased. Events of schema version 1 hold their personal fields in the
// clear: erasing their consents records the erasure and hides them from
// lookups, but their stored bytes, like every event's, stay.
//
// A person on legal hold (Options.Holds) is not erased: the hold is
// checked before each consent.erased and before the key is destroyed, and
// a hold set meanwhile stops the erasure there (a repeat after the hold is
// released finishes it).
//
// Errors: a *events.FieldError for a bad request, a *HeldError (matching
// ErrHeld, 409) for a person on legal hold, ErrContention when a consent
// kept changing meanwhile, and NATS errors.
func (l *Ledger) Erase(ctx context.Context, q wire.EraseRequest) (wire.EraseReply, error) {
	if err := q.Validate(); err != nil {
		return wire.EraseReply{}, err
	}
	tenant := events.OrDefaultTenant(q.Tenant)
	token, err := l.personToken(ctx, tenant, q.SubjectID)
	if err != nil {
		return wire.EraseReply{}, err
	}
	subjects, err := l.personSubjects(ctx, tenant, token)
	if err != nil {
		return wire.EraseReply{}, err
	}
	out, err := l.eraseSubjects(ctx, tenant, token, subjects, events.Erase{Reason: q.Reason, RecordedBy: q.RecordedBy}, nil)
	if err != nil {
		return wire.EraseReply{}, err
	}
	return out, nil
}

// eraseSubjects erases the consents on subjects, the person's, then
// destroys the person's data keys (every key id the consents' events
// name, also those of consents erased before). before, when set, is called for each
// consent under its lock with its fold from the stream, right before its
// consent.erased is appended: an error from it stops the erasure. The
// legal hold is checked at the start, after before and before the key is
// destroyed; the key is kept (ErrContention) when the person has a consent
// that was not in subjects by then. On error, the reply holds what was
// erased before it.
func (l *Ledger) eraseSubjects(ctx context.Context, tenant, token string, subjects []string, x events.Erase, before func(subject string, f storedFold) error) (wire.EraseReply, error) {
	if err := l.holds.check(ctx, tenant, token); err != nil {
		return wire.EraseReply{}, err
	}
	out := wire.EraseReply{Erased: []wire.Reply{}}
	var keyIDs []string
	for _, subject := range subjects {
		r, ids, err := l.eraseConsent(ctx, subject, x, func(ctx context.Context, f storedFold) error {
			if before != nil {
				if err := before(subject, f); err != nil {
					return err
				}
			}
			return l.holds.check(ctx, tenant, token)
		})
		keyIDs = append(keyIDs, ids...)
		var te *events.TransitionError
		switch {
		case errors.As(err, &te) && te.From == events.StateErased:
			_, purpose, _, _ := events.ParseConsentSubject(subject)
			out.Already = append(out.Already, purpose)
		case err != nil:
			return out, err
		default:
			out.Erased = append(out.Erased, r)
		}
	}
	if l.keys != nil {
		if err := l.holds.check(ctx, tenant, token); err != nil {
			return out, err
		}
		// A consent the person started meanwhile keeps the key: its
		// events are sealed under it.
		now, err := l.personSubjects(ctx, tenant, token)
		if err != nil {
			return out, err
		}
		for _, s := range now {
			if !slices.Contains(subjects, s) {
				return out, fmt.Errorf("%w: a new consent of the person was recorded during the erasure; retry", ErrContention)
			}
		}
		slices.Sort(keyIDs)
		if out.KeyDestroyed, err = l.keys.Destroy(ctx, tenant, token, slices.Compact(keyIDs)); err != nil {
			return out, fmt.Errorf("destroy the data key: %w", err)
		}
	}
	return out, nil
}

// personSubjects lists the NATS subjects of a person's consents in the
// stream, sorted: consent.events.<tenant>.*.<token>.
func (l *Ledger) personSubjects(ctx context.Context, tenant, token string) ([]string, error) {
	filter := "consent.events." + tenant + ".*." + token
	info, err := l.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("list the consents of the person: %w", err)
	}
	subjects := make([]string, 0, len(info.State.Subjects))
	for s := range info.State.Subjects {
		subjects = append(subjects, s)
	}
	sort.Strings(subjects)
	return subjects, nil
}

// eraseConsent appends consent.erased to the consent on subject, chained
// to its last good event and conditional on its last message, once
// check, called with the fold right before the append, returns nil (no
// legal hold, nothing changed). It returns the ids of the data keys the
// consent's events name once it has read them, also with an error (a
// consent erased already).
func (l *Ledger) eraseConsent(ctx context.Context, subject string, x events.Erase, check func(context.Context, storedFold) error) (reply wire.Reply, keyIDs []string, err error) {
	defer func(start time.Time) { l.observeAppend(events.TypeErased, start, &reply, err) }(time.Now())
	f, unlock, err := l.lockAndFold(ctx, subject)
	if err != nil {
		return wire.Reply{}, nil, err
	}
	defer unlock()
	now := l.now().UTC()
	ev, err := events.DecideErase(f.cur, x, now)
	if err != nil {
		return wire.Reply{}, f.keyIDs, err
	}
	if err := check(ctx, f); err != nil {
		return wire.Reply{}, f.keyIDs, err
	}
	seq, err := l.appendDecided(ctx, subject, &ev, f.last, "erasure")
	if err != nil {
		return wire.Reply{}, f.keyIDs, err
	}
	next := events.Evolve(f.cur, &ev, seq)
	l.remember(subject, next)
	return wire.Reply{Seq: seq, Event: &ev, Status: next.View(now, 0)}, f.keyIDs, nil
}
