package projector

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/internal/residue"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testDataKey seals the v2 events of these tests.
func testDataKey() events.DataKey {
	k := sha256.Sum256([]byte("projector test data key: published, never use it"))
	return events.DataKey{ID: "dk-projector-test", Key: k[:]}
}

// addV2 decides kind for the consent k (SubjectID and SubjectKey set, the
// person the v1 events of k would name), writes the event in schema v2
// (SealWith: the id only in the sealed blob) and folds it into the model,
// under the key without the id, as a fold of the stored event gives it.
func (h *history) addV2(tb testing.TB, k events.Key, kind events.Kind, cmd events.Command) {
	tb.Helper()
	mk := events.Key{Tenant: k.Tenant, SubjectKey: k.SubjectKey, Purpose: k.Purpose}
	cur, ok := h.model[mk]
	if !ok {
		cur = events.NewConsent(mk)
	}
	cmd.Tenant, cmd.SubjectID, cmd.Purpose, cmd.Actor = k.Tenant, k.SubjectID, k.Purpose, "test"
	h.now = h.now.Add(time.Second)
	ev, err := events.Decide(cur, kind, cmd, h.now)
	require.NoError(tb, err)
	ev.ID = uuid.Must(uuid.NewV7()).String()
	payload, err := ev.SealWith(testDataKey())
	require.NoError(tb, err)
	h.queueV2(tb, mk, cur, string(ev.Type), payload)
}

// eraseV2 appends consent.erased to the consent mk (keyed, no id).
func (h *history) eraseV2(tb testing.TB, mk events.Key) {
	tb.Helper()
	cur := h.model[mk]
	h.now = h.now.Add(time.Second)
	ev, err := events.DecideErase(cur, events.Erase{Reason: "the person asked"}, h.now)
	require.NoError(tb, err)
	ev.ID = uuid.Must(uuid.NewV7()).String()
	payload, err := ev.Seal()
	require.NoError(tb, err)
	h.queueV2(tb, mk, cur, string(ev.Type), payload)
}

func (h *history) queueV2(tb testing.TB, mk events.Key, cur events.Consent, eventType string, payload []byte) {
	tb.Helper()
	h.queue(mk.NATSSubject(), eventType, payload)
	decoded, err := events.Decode(payload)
	require.NoError(tb, err)
	require.Empty(tb, decoded.SubjectID, "a stored v2 event names no subject id")
	h.model[mk] = events.Evolve(cur, decoded, h.seq)
}

// TestIndexFoldsV1AndV2EventsBySubjectKey: v2 events (subject key only,
// not opened) fold into the same index as v1 events, one person's
// consents of both schemas share the person's token, a lookup by id echoes
// the id, and consent.erased folds to StateErased.
func TestIndexFoldsV1AndV2EventsBySubjectKey(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	h := newHistory(31, 2, 4, 2)
	h.add(t, 200) // v1, every key of the history

	const tenant, id = "t0", "v2-person@example.com"
	person := events.Key{Tenant: tenant, SubjectID: id, SubjectKey: events.SubjectKey(tenant, id)}
	kept, erased, v1 := person, person, events.Key{Tenant: tenant, SubjectID: id, Purpose: "v1_purpose"}
	kept.Purpose, erased.Purpose = "v2_kept", "v2_erased"
	h.addV2(t, kept, events.KindRequest, events.Command{Description: "may we?"})
	h.addV2(t, kept, events.KindGrant, events.Command{TTL: "1h"})
	h.addV2(t, erased, events.KindGrant, events.Command{})
	h.eraseV2(t, events.Key{Tenant: tenant, SubjectKey: erased.SubjectKey, Purpose: erased.Purpose})
	// A consent of v1 events of the same person.
	h.now = h.now.Add(time.Second)
	ev, err := events.Decide(events.NewConsent(v1), events.KindGrant, events.Command{Tenant: tenant, SubjectID: id, Purpose: v1.Purpose, Actor: "test"}, h.now)
	require.NoError(t, err)
	ev.ID = uuid.Must(uuid.NewV7()).String()
	payload := sealed(t, ev)
	h.queue(v1.NATSSubject(), string(ev.Type), payload)
	decoded, err := events.Decode(payload)
	require.NoError(t, err)
	h.model[v1] = events.Evolve(events.NewConsent(v1), decoded, h.seq)
	h.publish(t, js)

	idx := openIndex(t, t.TempDir(), IndexOptions{})
	runProjector(t, New(js, idx, Options{Logger: testLogger(t)}))
	waitFor(t, idx, h.seq)
	violations, err := idx.Violations()
	require.NoError(t, err)
	require.Empty(t, violations, "every event links and folds")

	ctx := context.Background()
	byKey := func(k events.Key) events.Key {
		return events.Key{Tenant: k.Tenant, SubjectKey: k.SubjectKey, Purpose: k.Purpose}
	}
	for _, k := range []events.Key{kept, erased} {
		want := h.model[byKey(k)]
		require.NotZero(t, want.Seq)
		require.Empty(t, want.SubjectID)

		got, _, err := idx.Consent(ctx, byKey(k), 0)
		require.NoError(t, err)
		assert.Equal(t, want, got, "by subject key: as folded")

		lookup := events.Key{Tenant: tenant, SubjectID: id, Purpose: k.Purpose}
		got, _, err = idx.Consent(ctx, lookup, 0)
		require.NoError(t, err)
		want.SubjectID = id
		assert.Equal(t, want, got, "by id (the v1 token of the same person): the id echoed, the subject key kept")
	}
	c, _, err := idx.Consent(ctx, events.Key{Tenant: tenant, SubjectID: id, Purpose: kept.Purpose}, 0)
	require.NoError(t, err)
	assert.Equal(t, events.StateGranted, c.State)
	c, _, err = idx.Consent(ctx, events.Key{Tenant: tenant, SubjectID: id, Purpose: erased.Purpose}, 0)
	require.NoError(t, err)
	assert.Equal(t, events.StateErased, c.State)

	list, _, err := idx.Consents(ctx, events.Key{Tenant: tenant, SubjectID: id}, 0)
	require.NoError(t, err)
	require.Len(t, list, 3, "v1 and v2 consents of one person")
	assert.Equal(t, h.model[v1], list[0], "v1: as folded, no subject key")
	for i, k := range []events.Key{erased, kept} { // by purpose
		want := h.model[byKey(k)]
		want.SubjectID = id
		assert.Equal(t, want, list[i+1])
	}
	// The v1 history reads as before: with its id, without a subject key.
	assertMatchesModel(t, idx, h)

	// The expirer's source names the v2 grant by subject key.
	due, _, err := idx.DueGrants(ctx, h.now.Add(2*time.Hour), MaxDueGrants)
	require.NoError(t, err)
	assert.Contains(t, due, h.model[byKey(kept)])
}

// TestIndexOfAnOlderFormatIsRebuilt: an index an older version wrote
// (format 1: consents keyed by subject id) is wiped on Open, with nothing
// of it left on disk, and folded again from the stream.
func TestIndexOfAnOlderFormatIsRebuilt(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	h := newHistory(32, 2, 4, 2)
	h.add(t, 100)
	h.publish(t, js)

	const oldID = "old-layout-5c1e@example.com"
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
	require.NoError(t, err)
	// Format 1's layout, written by hand: kindConsent tenant subject_id
	// purpose, a value of value format 1, and a checkpoint at the stream's
	// end (which a reopened index of the same format would trust).
	oldKey := appendEscaped(appendEscaped(appendEscaped([]byte{kindConsent}, "t0"), oldID), "purpose_0")
	require.NoError(t, db.Set(metaKey(metaFormat), binary.BigEndian.AppendUint64(nil, 1), nil))
	require.NoError(t, db.Set(oldKey, []byte{1, 7, 'g', 'r', 'a', 'n', 't', 'e', 'd', 2, 0, 0, 0, 0, 0, 0}, nil))
	require.NoError(t, db.Set(metaKey(metaCheckpoint), binary.BigEndian.AppendUint64(nil, h.seq), nil))
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())
	require.NotEmpty(t, residue.Scan(t, dir, []byte(oldID)), "the old index holds the id")

	idx := openIndex(t, dir, IndexOptions{})
	assert.Zero(t, idx.Checkpoint(), "the old index is gone")
	assert.Empty(t, residue.Scan(t, dir, []byte(oldID)), "nothing of it is left on disk")
	runProjector(t, New(js, idx, Options{Logger: testLogger(t)}))
	waitFor(t, idx, h.seq)
	assertMatchesModel(t, idx, h)
	c, _, err := idx.Consent(context.Background(), events.Key{Tenant: "t0", SubjectID: oldID, Purpose: "purpose_0"}, 0)
	require.NoError(t, err)
	assert.Equal(t, events.StateNone, c.State, "the old index's consent was not in the stream")
}

// TestIndexHoldsNoSubjectID: once folded, flushed to tables and closed,
// the index directory (tables decoded, WAL, MANIFEST) holds no subject id.
func TestIndexHoldsNoSubjectID(t *testing.T) {
	_, _, js := natstest.Run(t)
	createStream(t, js, testStreamConfig())
	const marker = "residue-marker-7f3a@example.com"
	h := newHistory(33, 1, 1, 1)
	k := events.Key{Tenant: "t0", SubjectID: marker, Purpose: "purpose_0"}
	h.keys = []events.Key{k}
	h.now = h.now.Add(time.Second)
	ev, err := events.Decide(events.NewConsent(k), events.KindGrant, events.Command{Tenant: k.Tenant, SubjectID: marker, Purpose: k.Purpose, Actor: "test", TTL: "1h"}, h.now)
	require.NoError(t, err)
	ev.ID = uuid.Must(uuid.NewV7()).String()
	payload := sealed(t, ev)
	h.queue(k.NATSSubject(), string(ev.Type), payload)
	decoded, err := events.Decode(payload)
	require.NoError(t, err)
	h.model[k] = events.Evolve(events.NewConsent(k), decoded, h.seq)
	h.add(t, 5)
	h.publish(t, js)

	dir := t.TempDir()
	idx := openIndex(t, dir, IndexOptions{})
	stop := runProjector(t, New(js, idx, Options{Logger: testLogger(t)}))
	waitFor(t, idx, h.seq)
	got, _, err := idx.Consent(context.Background(), k, 0)
	require.NoError(t, err)
	assert.Equal(t, h.model[k], got, "found by id, the id echoed")
	require.NoError(t, stop())
	require.NoError(t, idx.db.Flush())
	require.NoError(t, idx.Close())

	assert.Empty(t, residue.Scan(t, dir, []byte(marker), []byte("residue-marker-7f3a")))
}
