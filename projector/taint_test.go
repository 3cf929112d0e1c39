package projector

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withHistory returns a key of h that has events.
func withHistory(t *testing.T, h *history, i int) events.Key {
	t.Helper()
	k := h.keys[i]
	for _, ok := h.model[k]; !ok; _, ok = h.model[k] {
		h.add(t, 1)
	}
	return k
}

// TestProjectorGoesOnPastAMessageItCannotRead: the 7 bytes {"v":2}, and a
// newer event whose hash does not verify, are violations that mark their
// consent, not reasons to stop; the mark outlives a restart, and a consent
// looked up (and cached) before its bad message is marked after it.
func TestProjectorGoesOnPastAMessageItCannotRead(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	h := newHistory(21, 1, 3, 2)
	h.add(t, 30)
	k := withHistory(t, h, 0)
	h.publish(t, js)

	dir := t.TempDir()
	idx := openIndex(t, dir, IndexOptions{})
	p := New(js, idx, Options{Logger: testLogger(t)})
	stop := runProjector(t, p)
	waitFor(t, idx, h.seq)
	before, _, err := idx.Consent(context.Background(), k, 0) // cached now
	require.NoError(t, err)
	require.Zero(t, before.ViolationSeq)

	bad := h.queueBad(k.NATSSubject(), "", []byte(`{"v":2}`))
	h.queueBad("consent.events.x.y.z", "", []byte(`{"v":2}`))
	newer := h.nextEvent(t, k)
	newer.V = events.SchemaVersion + 1
	unverified := resealedWith(t, sealed(t, newer), "channel", "sms")
	unverified = append(unverified[:len(unverified)-3], `0"}`...) // the hash no longer matches
	h.queueBad(h.keys[1].NATSSubject(), "consent.requested", unverified)
	h.add(t, 30)
	h.publish(t, js)
	waitFor(t, idx, h.seq)

	health := p.Health()
	assert.Empty(t, health.Err, "the projector goes on")
	assert.True(t, health.Running)
	assert.Equal(t, 3, health.Violations)
	assertMatchesModel(t, idx, h)
	got, _, err := idx.Consent(context.Background(), k, 0)
	require.NoError(t, err)
	assert.Equal(t, bad, got.ViolationSeq)
	st := got.View(h.now, 0)
	assert.Equal(t, events.StateIntegrityViolation, st.State)
	assert.False(t, st.Allowed)
	assert.Equal(t, []uint64{bad}, idx.Taints(k.NATSSubject()))
	assert.Empty(t, idx.Taints("consent.events.x.y.z"), "a subject that names no consent marks none")

	// A restart neither stops nor forgets.
	require.NoError(t, stop())
	require.NoError(t, idx.Close())
	idx = openIndex(t, dir, IndexOptions{})
	p = New(js, idx, Options{Logger: testLogger(t)})
	runProjector(t, p)
	waitFor(t, idx, h.seq)
	require.Eventually(t, idx.Ready, 10*time.Second, 5*time.Millisecond)
	assertMatchesModel(t, idx, h)
	assert.Empty(t, p.Health().Err)
}

// TestQuarantineClearsTheTaint: a consent.quarantined that names the bad
// message and resumes the consent's last good state clears the mark; the
// consent goes on from there. One that does not resume that state is a
// violation itself.
func TestQuarantineClearsTheTaint(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	h := newHistory(22, 1, 3, 2)
	h.add(t, 30)
	k := withHistory(t, h, 0)
	other := withHistory(t, h, 1)
	subj := k.NATSSubject()
	bad := h.queueBad(subj, string(events.TypeGranted), []byte(`not json`))
	h.add(t, 10)

	q := events.DecideQuarantine(h.model[k], events.Quarantine{Seq: bad, Reason: "a stray publish", Actor: "ops"}, h.now)
	q.ID = uuid.NewString()
	payload, err := q.Seal() // sets q.Hash, which the next events link to
	require.NoError(t, err)
	qseq := h.queue(subj, string(q.Type), payload)
	h.model[k] = events.Evolve(h.model[k], &q, qseq)
	delete(h.taints, subj)

	lying := events.DecideQuarantine(h.model[other], events.Quarantine{Seq: bad, Reason: "resume granted", Actor: "ops"}, h.now)
	lying.State, lying.ID = events.StateGranted, uuid.NewString()
	if h.model[other].State == events.StateGranted {
		lying.State = events.StateDenied
	}
	lyingSeq := h.queueBad(other.NATSSubject(), string(lying.Type), sealed(t, lying))
	h.add(t, 20)
	h.publish(t, js)

	idx := openIndex(t, t.TempDir(), IndexOptions{})
	runProjector(t, New(js, idx, Options{MaxBatch: 8, Logger: testLogger(t)}))
	waitFor(t, idx, h.seq)
	assertMatchesModel(t, idx, h)
	assert.Empty(t, idx.Taints(subj))
	got, _, err := idx.Consent(context.Background(), k, 0)
	require.NoError(t, err)
	assert.Zero(t, got.ViolationSeq)
	assert.NotEqual(t, events.StateIntegrityViolation, got.View(h.now, 0).State)

	v, ok, err := idx.Violation(lyingSeq)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, CheckQuarantine, v.Check, "%s", v)
	v, ok, err = idx.Violation(bad)
	require.NoError(t, err)
	require.True(t, ok, "the violation stays on record")
	assert.Equal(t, CheckDecode, v.Check)
}

// TestTaintedLookupCostsNoAllocation: with a taint in the index, a lookup
// of another (cached) consent allocates no more than without one, and the
// tainted consent is answered with its violation.
func TestTaintedLookupCostsNoAllocation(t *testing.T) {
	idx := openIndex(t, t.TempDir(), IndexOptions{ReadyOnOpen: true})
	ctx := context.Background()
	k := events.Key{Tenant: "acme", SubjectID: "alice", Purpose: "p"}
	other := events.Key{Tenant: "acme", SubjectID: "bob", Purpose: "p"}
	b, err := idx.newBatch()
	require.NoError(t, err)
	for i, key := range []events.Key{k, other} {
		c := events.Consent{Tenant: key.Tenant, SubjectID: key.SubjectID, Purpose: key.Purpose, State: events.StateGranted, PolicyVersion: 1, Seq: uint64(i + 1)}
		require.NoError(t, b.Set(appendConsentKey(nil, key), appendConsent(nil, &c), nil))
	}
	require.NoError(t, idx.commit(b, nil, nil, 2, 0))
	lookup := func(key events.Key) float64 {
		return testing.AllocsPerRun(100, func() {
			if _, _, err := idx.Consent(ctx, key, 0); err != nil {
				t.Fatal(err)
			}
		})
	}
	before := lookup(other)

	r := taintRef{k.NATSSubject(), 3}
	require.NoError(t, b.Set(appendTaintKey(nil, r), nil, nil))
	require.NoError(t, idx.commit(b, nil, map[taintRef]bool{r: true}, 3, 1))
	assert.Equal(t, before, lookup(other))
	got, _, err := idx.Consent(ctx, k, 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), got.ViolationSeq)
	got, _, err = idx.Consent(ctx, other, 0)
	require.NoError(t, err)
	assert.Zero(t, got.ViolationSeq)
}

// TestOpenDerivesTaintsOfAnOlderIndex: an index written before taints
// existed gets them from its violation records when opened.
func TestOpenDerivesTaintsOfAnOlderIndex(t *testing.T) {
	dir := t.TempDir()
	idx := openIndex(t, dir, IndexOptions{ReadyOnOpen: true})
	k := events.Key{Tenant: "acme", SubjectID: "alice", Purpose: "p"}
	b, err := idx.newBatch()
	require.NoError(t, err)
	for _, v := range []Violation{{Seq: 4, Subject: k.NATSSubject(), Check: CheckLink}, {Seq: 5, Subject: "consent.events.x.y.z", Check: CheckDecode}} {
		raw, err := json.Marshal(v)
		require.NoError(t, err)
		require.NoError(t, b.Set(appendViolationKey(nil, v.Seq), raw, nil))
	}
	require.NoError(t, b.Delete(metaKey(metaTaints), nil)) // as an older index has none
	require.NoError(t, idx.commit(b, nil, nil, 5, 2))
	require.NoError(t, idx.Close())

	idx = openIndex(t, dir, IndexOptions{ReadyOnOpen: true})
	assert.Equal(t, []uint64{4}, idx.Taints(k.NATSSubject()))
	got, _, err := idx.Consent(context.Background(), k, 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), got.ViolationSeq)
}
