package ledger

import (
	"context"
	"sync"
)

// keyLocks serialises the appends of one process to one consent. Without
// it, concurrent appends to a consent in the same process race each other
// through the stream's optimistic check, and a writer that loses keeps
// losing to writers that do not back off (a goroutine appending in a loop
// starves the others). Queued on a lock they run in arrival order and never
// conflict with each other; conflicts (and retries) remain only for writers
// in other processes.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds one token while locked
	refs int           // holders and waiters; the entry is dropped at zero
}

// lock waits until the caller holds key's lock or ctx ends. The returned
// function unlocks it.
func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()

	select {
	case l.ch <- struct{}{}:
		return func() {
			<-l.ch
			k.release(key, l)
		}, nil
	case <-ctx.Done():
		k.release(key, l)
		return nil, ctx.Err()
	}
}

func (k *keyLocks) release(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(k.locks, key)
	}
}
