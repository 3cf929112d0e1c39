package ledger_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is an Observer that counts what it is told.
type recorder struct {
	mu      sync.Mutex
	appends map[string]int // type/result
	lookups map[string]int // endpoint/result
	waits   map[bool]int
	groups  []int
}

func newRecorder() *recorder {
	return &recorder{appends: map[string]int{}, lookups: map[string]int{}, waits: map[bool]int{}}
}

func (r *recorder) Appended(t events.Type, result string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d <= 0 {
		panic("no duration")
	}
	r.appends[string(t)+"/"+result]++
}

func (r *recorder) Looked(endpoint, result string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d <= 0 {
		panic("no duration")
	}
	r.lookups[endpoint+"/"+result]++
}

func (r *recorder) MinSeqWaited(reached bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits[reached]++
}

func (r *recorder) GroupCommitted(n int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.groups = append(r.groups, n)
}

func (r *recorder) snapshot() (appends, lookups map[string]int, waits map[bool]int, groups []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	clone := func(m map[string]int) map[string]int {
		out := map[string]int{}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	return clone(r.appends), clone(r.lookups), map[bool]int{true: r.waits[true], false: r.waits[false]}, append([]int(nil), r.groups...)
}

// The service tells its Observer the result of every command and lookup
// it answers, classified as the metrics name them, and of every wait for
// min_seq.
func TestServiceTellsItsObserver(t *testing.T) {
	rec := newRecorder()
	reader := newFakeReader(1, consent("alice", "p", events.StateGranted, 1, 1, nil))
	env := startService(t, reader, ledger.ServiceConfig{Observer: rec, MinSeqTimeout: 50 * time.Millisecond})
	ctx := t.Context()

	cmd := events.Command{SubjectID: "carol", Purpose: "q", IdempotencyKey: "k1"}
	_, err := env.client.Grant(ctx, cmd)
	require.NoError(t, err)
	_, err = env.client.Grant(ctx, cmd)
	require.NoError(t, err)
	_, err = env.client.Deny(ctx, events.Command{SubjectID: "carol", Purpose: "q"})
	require.ErrorIs(t, err, wire.ErrConflict, "a grant is revoked, not denied")
	stale := uint64(0)
	_, err = env.client.Revoke(ctx, events.Command{SubjectID: "carol", Purpose: "q", ExpectedSeq: &stale})
	require.ErrorIs(t, err, wire.ErrConflict)
	_, err = env.client.Request(ctx, events.Command{SubjectID: "carol", Purpose: "Q"})
	require.ErrorIs(t, err, wire.ErrBadRequest)

	_, err = env.client.Check(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "p"})
	require.NoError(t, err)
	_, err = env.client.Check(ctx, wire.StatusQuery{SubjectID: "bob", Purpose: "p"})
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	_, err = env.client.Status(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "p", MinSeq: 1})
	require.NoError(t, err)
	_, err = env.client.Status(ctx, wire.StatusQuery{SubjectID: "alice", Purpose: "p", MinSeq: 5})
	require.ErrorIs(t, err, wire.ErrUnavailable, "min_seq 5 is not reached in time")
	_, err = env.client.List(ctx, wire.ListQuery{SubjectID: ""})
	require.ErrorIs(t, err, wire.ErrBadRequest)
	_, err = env.client.History(ctx, wire.HistoryQuery{SubjectID: "carol"})
	require.NoError(t, err)

	appends, lookups, waits, _ := rec.snapshot()
	assert.Equal(t, map[string]int{
		"consent.granted/stored":        1,
		"consent.granted/duplicate":     1,
		"consent.denied/forbidden":      1,
		"consent.revoked/conflict":      1,
		"consent.requested/bad_request": 1,
	}, appends)
	assert.Equal(t, map[string]int{
		"check/allowed":          1,
		"check/consent_required": 1,
		"status/found":           1,
		"status/unavailable":     1,
		"list/bad_request":       1,
		"history/found":          1,
	}, lookups)
	assert.Equal(t, map[bool]int{true: 1, false: 1}, waits)
}

// The ledger tells its Observer of the expiries it appends and of every
// group group commit sends.
func TestLedgerTellsItsObserver(t *testing.T) {
	rec := newRecorder()
	clock := newManualClock(time.Now().UTC())
	l, _, _ := startLedger(t, ledger.StreamOptions{}, ledger.Options{Observer: rec, Now: clock.Now, GroupCommit: eager})
	ctx := t.Context()

	var wg sync.WaitGroup
	replies := make([]wire.Reply, 4)
	for i := range replies {
		wg.Go(func() {
			var err error
			replies[i], err = l.Append(ctx, events.KindGrant, events.Command{SubjectID: fmt.Sprintf("p%d", i), Purpose: "p", TTL: "1h"})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	clock.Advance(time.Hour + time.Second)
	c := events.Evolve(events.NewConsent(replies[0].Event.Key()), replies[0].Event, replies[0].Seq)
	_, err := l.Expire(ctx, c)
	require.NoError(t, err)
	again, err := l.Expire(ctx, c)
	if err == nil {
		assert.True(t, again.Duplicate, "expired already")
	} else {
		require.ErrorIs(t, err, ledger.ErrExpiryLost, "expired already")
	}

	appends, _, _, groups := rec.snapshot()
	assert.Equal(t, 1, appends["consent.expired/stored"])
	assert.Equal(t, 1, appends["consent.expired/conflict"]+appends["consent.expired/duplicate"])
	assert.Len(t, appends, 2, "commands are observed by the service, not by Append: %v", appends)
	total := 0
	for _, n := range groups {
		total += n
	}
	assert.Equal(t, len(replies), total, "every grant went out in a group")
}
