package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/nats-io/nuid"
)

// lockDir takes an exclusive flock on dir/.lock, waiting for another
// process (or another Authority of this one) that holds it, and returns
// the function that releases it. The lock is released as well when the
// process exits, however it exits.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { _ = f.Close() }, nil // closing the descriptor releases the flock
}

// generationFile names the file (in the authority's directory) that every
// change rewrites with a new random token, last: a reader whose token
// differs knows its state is out of date, without reading the rest.
const generationFile = "generation"

// change runs fn under a.mu and the directory's lock, on the state read
// from the directory just before: a change another process (or another
// Authority on the same directory) made is never overwritten.
func (a *Authority) change(fn func() error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changeLocked(fn)
}

// changeLocked is change for a caller that holds a.mu.
func (a *Authority) changeLocked(fn func() error) error {
	unlock, err := lockDir(a.dir)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer unlock()
	if err := a.reloadIfChanged(); err != nil {
		return err
	}
	err = fn()
	// Even a change that failed may have written some files.
	gen := nuid.Next()
	if werr := writePrivate(filepath.Join(a.dir, generationFile), []byte(gen)); werr != nil {
		return errors.Join(err, fmt.Errorf("auth: %w", werr))
	}
	a.generation = gen
	return err
}

// refresh reads the directory again when another process (or Authority)
// changed it since this one last read it. The caller holds a.mu. On an
// error the state stays as last read.
func (a *Authority) refresh() error {
	if gen, err := a.readGeneration(); err == nil && gen == a.generation {
		return nil
	}
	unlock, err := lockDir(a.dir)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer unlock()
	return a.reloadIfChanged()
}

// readGeneration returns the token in the generation file; "" when there
// is none yet (no change since the directory was created).
func (a *Authority) readGeneration() (string, error) {
	b, err := os.ReadFile(filepath.Join(a.dir, generationFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return string(b), err
}

// reloadIfChanged reloads the state unless the generation file says it is
// the one this Authority read or wrote last. The caller holds a.mu and the
// directory's lock.
func (a *Authority) reloadIfChanged() error {
	gen, err := a.readGeneration()
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if gen == a.generation {
		return nil
	}
	if err := a.reload(); err != nil {
		return err
	}
	a.generation = gen
	return nil
}

// reload reads the operator and every account from the directory again,
// replacing the state in memory. The accounts whose JWT changed (another
// process created, revoked or granted) go to the running server's
// resolver, if ServerOptions configured one, and to PushChanges' servers. The caller holds a.mu and
// the directory's lock.
func (a *Authority) reload() error {
	fresh := &Authority{dir: a.dir, clients: map[string]*account{}}
	if err := fresh.load(); err != nil {
		return fmt.Errorf("auth: %s: %w", a.dir, err)
	}
	if a.resolver != nil || a.pushTo != nil {
		known := map[string]string{}
		for _, acc := range a.accounts() {
			known[acc.pub] = acc.jwt
		}
		for _, acc := range fresh.accounts() {
			if known[acc.pub] == acc.jwt {
				continue
			}
			if err := a.deliver(acc); err != nil {
				return fmt.Errorf("auth: %w", err)
			}
		}
	}
	a.operator, a.operatorJWT, a.operatorCl = fresh.operator, fresh.operatorJWT, fresh.operatorCl
	a.sys, a.svc, a.clients = fresh.sys, fresh.svc, fresh.clients
	return nil
}

// Reload reads the directory again, and hands the accounts another process
// changed since (a tenant created, a user revoked, a feed granted) to the
// server ServerOptions configured and to PushChanges' servers, which apply
// them at once (a revoked user is disconnected). Without it such changes
// reach them at this Authority's next change. Errors: the directory cannot be
// locked or read, or the server's resolver refuses an account.
func (a *Authority) Reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refresh()
}
