package keystore

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// forgetSubject is the core NATS subject on which Destroy tells the other
// instances sharing the bucket to forget a person's key. No stream
// captures it, so the notice is never stored; it carries the tenant, the
// (keyed) subject key and the ids of the destroyed keys, separated by
// spaces: an instance forgets the key it handed the person and the keys
// of those ids it read.
func (s *Store) forgetSubject() string { return "consent.keystore." + s.kv.Bucket() + ".forget" }

// notifyForget tells other instances (Watch) that the person's key is
// gone. A notice that does not arrive is covered by Watch's reconnect rule.
func (s *Store) notifyForget(tenant, subjectKey string, ids []string) {
	notice := strings.Join(append([]string{tenant, subjectKey}, ids...), " ")
	_ = s.js.Conn().Publish(s.forgetSubject(), []byte(notice))
}

// Watch makes this store forget the keys that other instances destroy
// (the person's current key, and the keys of the destroyed ids): it
// listens for their notices and, because a notice sent while this
// connection was down is lost, forgets every cached data key whenever the
// connection reconnects. Keys still cached in the moment between another
// instance's Destroy and the notice's arrival remain usable; callers that
// must not use a destroyed key read it with Forget first. Stop ends the
// watch; calling it again does nothing. It returns an error if the subscription fails.
func (s *Store) Watch() (stop func(), err error) {
	nc := s.js.Conn()
	sub, err := nc.Subscribe(s.forgetSubject(), func(m *nats.Msg) {
		fields := strings.Fields(string(m.Data))
		if len(fields) < 2 || checkPerson(fields[0], fields[1]) != nil {
			return
		}
		ids := slices.DeleteFunc(fields[2:], func(id string) bool { return !isHex32(id) })
		s.forget(fields[0], fields[1], ids)
	})
	if err != nil {
		return nil, fmt.Errorf("keystore: watch: %w", err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("keystore: watch: %w", err)
	}
	status := nc.StatusChanged(nats.CONNECTED)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range status {
			s.forgetAll()
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = sub.Unsubscribe()
			nc.RemoveStatusListener(status)
			<-done
		})
	}, nil
}

// forgetAll empties the cache of data keys (tenant secrets stay: they are
// never destroyed).
func (s *Store) forgetAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, dk := range s.byCur {
		clear(dk.key)
	}
	for _, dk := range s.byID {
		clear(dk.key)
	}
	s.byCur = map[string]dataKey{}
	s.byID = map[string]dataKey{}
}
