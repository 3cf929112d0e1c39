package keystore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Rotate rewraps every record of the bucket from oldKEK to newKEK: for each
// key it writes the rewrapped record as a new revision, then erases the old
// revision (secure delete), so no record under oldKEK is left. Records
// already under newKEK are skipped, so a Rotate that stopped half way is
// finished by running it again. From its start the store wraps new keys
// under newKEK; when it returns nil, the store forgets oldKEK and the old
// KEK file may be destroyed.
//
// Every instance sharing the bucket must run with newKEK as its KEK and
// oldKEK among its previous KEKs before Rotate, or they keep writing under
// oldKEK (docs/privacy.md, Keys). It returns how many records it rewrapped,
// an *UnknownKEKError for a record under a third KEK, or the bucket's
// error.
func (s *Store) Rotate(ctx context.Context, oldKEK, newKEK *KEK) (int, error) {
	if oldKEK == nil || newKEK == nil {
		return 0, errors.New("keystore: Rotate needs the old and the new KEK")
	}
	s.mu.Lock()
	s.keks[oldKEK.ID()] = oldKEK
	s.keks[newKEK.ID()] = newKEK
	s.kek = newKEK
	s.mu.Unlock()

	// The stream leader lists the subjects in use (no consumer needed).
	prefix := s.subject("")
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return 0, fmt.Errorf("keystore: list keys: %w", err)
	}
	names := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		names = append(names, strings.TrimPrefix(subj, prefix))
	}
	slices.Sort(names)
	rotated := 0
	for _, name := range names {
		did, err := s.rotateOne(ctx, name, oldKEK, newKEK)
		if err != nil {
			return rotated, err
		}
		if did {
			rotated++
		}
	}
	if oldKEK.ID() != newKEK.ID() {
		s.mu.Lock()
		delete(s.keks, oldKEK.ID())
		s.mu.Unlock()
	}
	return rotated, nil
}

// rotateOne rewraps the latest revision of one key if it is under oldKEK,
// and erases every earlier revision.
func (s *Store) rotateOne(ctx context.Context, name string, oldKEK, newKEK *KEK) (bool, error) {
	entries, err := s.history(ctx, name)
	if err != nil || len(entries) == 0 {
		return false, err // gone meanwhile (destroyed)
	}
	latest := entries[len(entries)-1]
	// Revisions before the latest are leftovers of a rotation that stopped
	// between its two steps: erase them.
	for _, rev := range entries[:len(entries)-1] {
		if err := s.secureDelete(ctx, rev.seq); err != nil {
			return false, fmt.Errorf("keystore: erase %s revision %d: %w", name, rev.seq, err)
		}
	}
	if latest.marker {
		return false, nil
	}
	var rec record
	if err := json.Unmarshal(latest.value, &rec); err != nil {
		return false, fmt.Errorf("keystore: %s is not a key record", name)
	}
	switch rec.KEKID {
	case newKEK.ID():
		return false, nil
	case oldKEK.ID():
	default:
		return false, &UnknownKEKError{KEKID: rec.KEKID, Key: name}
	}
	aad, err := recordAAD(name, rec)
	if err != nil {
		return false, err
	}
	plain, err := oldKEK.unwrap(rec.Wrapped, aad)
	if err != nil {
		return false, fmt.Errorf("keystore: %s does not open under KEK %s: %w", name, rec.KEKID, err)
	}
	rec.KEKID, rec.Wrapped = newKEK.ID(), newKEK.wrap(plain, aad)
	clear(plain)
	value, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	if _, err := s.kv.Update(ctx, name, value, latest.seq); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			// Destroyed or rotated by another instance meanwhile: look again.
			return s.rotateOne(ctx, name, oldKEK, newKEK)
		}
		return false, fmt.Errorf("keystore: rewrap %s: %w", name, err)
	}
	if err := s.secureDelete(ctx, latest.seq); err != nil {
		return false, fmt.Errorf("keystore: erase %s revision %d: %w", name, latest.seq, err)
	}
	return true, nil
}

// recordAAD is the additional data a record of bucket key name is wrapped
// with.
func recordAAD(name string, rec record) ([]byte, error) {
	switch {
	case strings.HasPrefix(name, "pk."), strings.HasPrefix(name, "dk."), strings.HasPrefix(name, "kid."):
		if !isHex32(rec.KeyID) {
			return nil, fmt.Errorf("keystore: %s is not a data key record", name)
		}
		return dataKeyAAD(name, rec.KeyID), nil
	case strings.HasPrefix(name, "tk."):
		return tenantAAD(strings.TrimPrefix(name, "tk.")), nil
	}
	return nil, fmt.Errorf("keystore: %s is not a key of this store", name)
}
