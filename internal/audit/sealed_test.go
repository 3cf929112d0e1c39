package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sealedLedger is a stream holding v2 events written as consentd will
// write them once wired: alice granted, then erased (her first data key
// destroyed), then asked again under a fresh key; bob granted and
// revoked; and one v1 event of carol.
type sealedLedger struct {
	tl        *testLedger
	keys      map[string]events.DataKey // the data keys still held, by id
	erased    map[string]bool           // destroyed key ids
	seqs      map[string]uint64         // by label
	evs       map[string]events.Event   // as sealed (opened), by label
	aliceKey  string                    // alice's subject key
	bobKey    string
	aliceTips events.Consent
}

func dataKey(id string) events.DataKey {
	k := sha256.Sum256([]byte("audit test data key " + id))
	return events.DataKey{ID: id, Key: k[:]}
}

// subjectKeyFor stands for the keyed subject key a caller computes.
func subjectKeyFor(subject string) string {
	sum := sha256.Sum256([]byte("keyed " + subject))
	return fmt.Sprintf("%x", sum[:16])
}

func newSealedLedger(t *testing.T) *sealedLedger {
	sl := &sealedLedger{tl: newTestLedger(t), keys: map[string]events.DataKey{}, erased: map[string]bool{},
		seqs: map[string]uint64{}, evs: map[string]events.Event{},
		aliceKey: subjectKeyFor("alice@example.com"), bobKey: subjectKeyFor("bob@example.com")}
	at := t0
	consents := map[string]events.Consent{}
	decide := func(label string, kind events.Kind, subject, sk, keyID string, edit func(*events.Command)) {
		t.Helper()
		c := events.Command{SubjectID: subject, Purpose: "marketing_email", Actor: "subject", Method: "dialog"}
		if edit != nil {
			edit(&c)
		}
		require.NoError(t, c.Validate(kind))
		cur, ok := consents[sk]
		if !ok {
			cur = events.NewConsent(events.Key{Tenant: events.DefaultTenant, SubjectID: subject, Purpose: "marketing_email", SubjectKey: sk})
		}
		at = at.Add(time.Minute)
		ev, err := events.Decide(cur, kind, c, at)
		require.NoError(t, err)
		ev.ID = label
		ev.SubjectKey = sk
		if _, ok := sl.keys[keyID]; !ok {
			sl.keys[keyID] = dataKey(keyID)
		}
		payload, err := ev.SealWith(sl.keys[keyID])
		require.NoError(t, err)
		sl.seqs[label] = sl.tl.publishRaw(ev.Key().NATSSubject(), string(ev.Type), payload)
		sl.evs[label] = ev
		consents[sk] = events.Evolve(cur, &ev, sl.seqs[label])
	}
	decide("alice-grant", events.KindGrant, "alice@example.com", sl.aliceKey, "dk-alice-1", func(c *events.Command) {
		c.Evidence = json.RawMessage(`{"ip":"203.0.113.7"}`)
	})
	decide("bob-grant", events.KindGrant, "bob@example.com", sl.bobKey, "dk-bob-1", nil)

	// Alice is erased: the erasure, then her key is destroyed.
	at = at.Add(time.Minute)
	erased, err := events.DecideErase(consents[sl.aliceKey], events.Erase{Reason: "asked to be forgotten", RecordedBy: "dpo@default"}, at)
	require.NoError(t, err)
	erased.ID = "alice-erased"
	payload, err := erased.Seal()
	require.NoError(t, err)
	sl.seqs["alice-erased"] = sl.tl.publishRaw(erased.Key().NATSSubject(), string(erased.Type), payload)
	sl.evs["alice-erased"] = erased
	consents[sl.aliceKey] = events.Evolve(consents[sl.aliceKey], &erased, sl.seqs["alice-erased"])
	delete(sl.keys, "dk-alice-1")
	sl.erased["dk-alice-1"] = true

	decide("bob-revoke", events.KindRevoke, "bob@example.com", sl.bobKey, "dk-bob-1", func(c *events.Command) { c.Reason = "moved abroad" })
	decide("alice-request", events.KindRequest, "alice@example.com", sl.aliceKey, "dk-alice-2", nil) // a fresh chain, a fresh key
	sl.aliceTips = consents[sl.aliceKey]
	// A v1 event in the same stream.
	sl.seqs["carol-request"] = sl.tl.append(events.KindRequest, "carol@example.com", "marketing_email").Seq
	return sl
}

// lookup is the DataKey option of Export: the keys still held.
func (sl *sealedLedger) lookup(keyID string) (events.DataKey, error) {
	if sl.erased[keyID] {
		return events.DataKey{}, fmt.Errorf("key %s: %w", keyID, events.ErrKeyErased)
	}
	dk, ok := sl.keys[keyID]
	if !ok {
		return events.DataKey{}, fmt.Errorf("no key %s", keyID)
	}
	return dk, nil
}

// Verify needs no key: hashes, links (a fresh chain after consent.erased),
// the fold and the chain all pass on sealed events.
func TestVerifySealedEventsWithoutKeys(t *testing.T) {
	sl := newSealedLedger(t)
	assert.Empty(t, sl.evs["alice-request"].PrevHash, "the request after the erasure starts a fresh chain")

	r := verify(t, sl.tl.js, audit.VerifyOptions{})
	assert.True(t, r.OK(), "problems: %v", r.Problems)
	assert.Equal(t, uint64(6), r.Events)
	assert.Equal(t, uint64(3), r.Consents, "alice, bob, carol")
}

// After a consent.erased, an event that links to the erasure instead of
// starting a fresh chain is a link violation.
func TestVerifyHoldsTheEventAfterAnErasureToAFreshChain(t *testing.T) {
	sl := newSealedLedger(t)
	erased := sl.evs["alice-erased"]
	cur := events.Evolve(events.Consent{}, &erased, sl.seqs["alice-erased"])
	cur.State = events.StateRequested // pretend the erasure did not end the chain
	ev, err := events.Decide(sl.aliceTips, events.KindGrant, events.Command{SubjectID: "alice@example.com", Purpose: "marketing_email"}, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, sl.evs["alice-request"].Hash, ev.PrevHash, "a grant after the fresh request links to it")
	ev.ID = "alice-forged"
	ev.PrevHash = cur.NextPrevHash() // the erasure's hash
	ev.SubjectKey = sl.aliceKey
	payload, err := ev.SealWith(dataKey("dk-alice-2"))
	require.NoError(t, err)
	// Published on its own subject right after the erasure would be the
	// case to catch; a new stream keeps the test simple: the erasure, then
	// the forged link.
	tl := newTestLedger(t)
	stored, err := sl.tl.stream.GetMsg(context.Background(), sl.seqs["alice-grant"])
	require.NoError(t, err)
	tl.publishRaw(stored.Subject, string(events.TypeGranted), stored.Data)
	stored, err = sl.tl.stream.GetMsg(context.Background(), sl.seqs["alice-erased"])
	require.NoError(t, err)
	tl.publishRaw(stored.Subject, string(events.TypeErased), stored.Data)
	seq := tl.publishRaw(ev.Key().NATSSubject(), string(ev.Type), payload)

	r := verify(t, tl.js, audit.VerifyOptions{})
	require.False(t, r.OK())
	p := r.First()
	require.NotNil(t, p)
	assert.Equal(t, seq, p.Seq)
	assert.Equal(t, audit.CheckLink, p.Check)
	assert.Contains(t, p.Reason, "consent.erased")
	require.NotNil(t, p.Consent)
	assert.Equal(t, sl.aliceKey, p.Consent.SubjectKey, "named by its subject key: verify opens nothing")
	assert.Empty(t, p.Consent.SubjectID)
}

type sealedLine struct {
	Seq       uint64          `json:"seq"`
	StoredAt  time.Time       `json:"stored_at"`
	Event     json.RawMessage `json:"event"`
	Personal  json.RawMessage `json:"personal"`
	Erased    bool            `json:"erased"`
	Sealed    bool            `json:"sealed"`
	OpenError string          `json:"open_error"`
}

func exportSealed(t *testing.T, sl *sealedLedger, opts audit.ExportOptions) map[uint64]sealedLine {
	t.Helper()
	data, st := export(t, sl.tl, opts)
	assert.Equal(t, uint64(6), st.Events)
	out := map[uint64]sealedLine{}
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var l sealedLine
		require.NoError(t, events.DecodeStrict(line, &l), "%s", line)
		out[l.Seq] = l
	}
	return out
}

func TestExportShowsSealedEvents(t *testing.T) {
	sl := newSealedLedger(t)

	t.Run("with the keys", func(t *testing.T) {
		rows := exportSealed(t, sl, audit.ExportOptions{DataKey: sl.lookup})
		for label, seq := range sl.seqs {
			row := rows[seq]
			stored, err := sl.tl.stream.GetMsg(context.Background(), seq)
			require.NoError(t, err)
			assert.Equal(t, string(stored.Data), string(row.Event), "%s: the event is written as stored", label)
			ev, err := events.Decode(row.Event)
			require.NoError(t, err)
			require.NoError(t, events.VerifyHash(row.Event, ev), "%s: the hash recomputes from the file", label)
		}
		assert.JSONEq(t, `{"subject":"bob@example.com","actor":"subject"}`, string(rows[sl.seqs["bob-grant"]].Personal))
		assert.JSONEq(t, `{"subject":"bob@example.com","actor":"subject","reason":"moved abroad"}`, string(rows[sl.seqs["bob-revoke"]].Personal))
		assert.JSONEq(t, `{"subject":"alice@example.com","actor":"subject"}`, string(rows[sl.seqs["alice-request"]].Personal), "the fresh key opens")

		grant := rows[sl.seqs["alice-grant"]]
		assert.True(t, grant.Erased, "the destroyed key: shown as erased")
		assert.Empty(t, grant.Personal)
		assert.NotContains(t, string(grant.Event), "alice@example.com")
		assert.NotContains(t, string(grant.Event), "203.0.113.7")

		erasure := rows[sl.seqs["alice-erased"]]
		assert.False(t, erasure.Erased || erasure.Sealed, "consent.erased has nothing sealed")
		assert.Empty(t, erasure.Personal)
		assert.Contains(t, string(erasure.Event), `"reason":"asked to be forgotten"`)

		carol := rows[sl.seqs["carol-request"]]
		assert.Empty(t, carol.Personal, "v1 rows are as they were")
		assert.False(t, carol.Erased || carol.Sealed)
		assert.Contains(t, string(carol.Event), `"subject":"carol@example.com"`)
	})

	t.Run("without keys", func(t *testing.T) {
		rows := exportSealed(t, sl, audit.ExportOptions{})
		for _, label := range []string{"alice-grant", "bob-grant", "bob-revoke", "alice-request"} {
			row := rows[sl.seqs[label]]
			assert.True(t, row.Sealed, label)
			assert.False(t, row.Erased, label)
			assert.Empty(t, row.Personal, label)
		}
	})

	t.Run("a key that does not open", func(t *testing.T) {
		wrong := func(keyID string) (events.DataKey, error) {
			if keyID == "dk-bob-1" {
				return events.DataKey{ID: keyID, Key: make([]byte, events.DataKeySize)}, nil
			}
			return sl.lookup(keyID)
		}
		rows := exportSealed(t, sl, audit.ExportOptions{DataKey: wrong})
		row := rows[sl.seqs["bob-grant"]]
		assert.True(t, row.Sealed)
		assert.Contains(t, row.OpenError, events.ErrSealedOpen.Error())
	})

	t.Run("a key store that fails stops the export", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		broken := errors.New("key store unreachable")
		_, err := audit.Export(ctx, sl.tl.js, &bytes.Buffer{}, audit.ExportOptions{Idle: 100 * time.Millisecond,
			DataKey: func(string) (events.DataKey, error) { return events.DataKey{}, broken }})
		require.ErrorIs(t, err, broken)
	})

	t.Run("csv", func(t *testing.T) {
		data, _ := export(t, sl.tl, audit.ExportOptions{Format: audit.FormatCSV, DataKey: sl.lookup})
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, 7)
		col := map[string]int{}
		for i, name := range rows[0] {
			col[name] = i
		}
		bySeq := map[string][]string{}
		for _, r := range rows[1:] {
			bySeq[r[0]] = r
		}
		row := func(label string) []string { return bySeq[fmt.Sprint(sl.seqs[label])] }
		assert.Equal(t, audit.PersonalErased, row("alice-grant")[col["personal"]])
		assert.Empty(t, row("alice-grant")[col["subject"]])
		assert.Empty(t, row("alice-grant")[col["evidence"]])
		assert.Equal(t, sl.aliceKey, row("alice-grant")[col["subject_key"]])
		assert.Equal(t, audit.PersonalNone, row("alice-erased")[col["personal"]])
		assert.Equal(t, "asked to be forgotten", row("alice-erased")[col["reason"]])
		assert.Equal(t, audit.PersonalOpened, row("bob-revoke")[col["personal"]])
		assert.Equal(t, "bob@example.com", row("bob-revoke")[col["subject"]])
		assert.Equal(t, "moved abroad", row("bob-revoke")[col["reason"]])
		assert.Equal(t, audit.PersonalClear, row("carol-request")[col["personal"]])
		assert.Equal(t, "carol@example.com", row("carol-request")[col["subject"]])
	})
}

// A receipt of opened v2 events verifies: each event's hash is over its
// stored form, and the erasure ends the chain.
func TestReceiptOfSealedEvents(t *testing.T) {
	sl := newSealedLedger(t)
	var history []audit.ReceiptEvent
	for _, label := range []string{"alice-grant", "alice-erased", "alice-request"} {
		ev := sl.evs[label]
		history = append(history, audit.ReceiptEvent{Seq: sl.seqs[label], Event: &ev})
	}
	k := events.Key{Tenant: events.DefaultTenant, SubjectID: "alice@example.com", Purpose: "marketing_email", SubjectKey: sl.aliceKey}
	seed := sha256.Sum256([]byte("receipt test key"))
	signer := audit.NewSigner(ed25519.NewKeyFromSeed(seed[:]))
	r := audit.NewReceipt("CONSENT", k, history, nil, t0.Add(24*time.Hour))
	assert.Equal(t, events.StateRequested, r.Status.State)
	sr, err := signer.SignReceipt(r)
	require.NoError(t, err)
	_, err = audit.VerifyReceipt(sr, audit.NewKeyring(signer.Public()))
	require.NoError(t, err)
	assert.NotContains(t, sr.Text, "personal fields: erased", "every event opened")

	// The events sealed under the destroyed key stay sealed: the receipt
	// shows the skeleton and still verifies.
	stored, err := sl.tl.stream.GetMsg(context.Background(), sl.seqs["alice-grant"])
	require.NoError(t, err)
	sealedGrant, err := events.Decode(stored.Data)
	require.NoError(t, err)
	withErased := append([]audit.ReceiptEvent{{Seq: history[0].Seq, Event: sealedGrant}}, history[1:]...)
	sr, err = signer.SignReceipt(audit.NewReceipt("CONSENT", k, withErased, nil, t0.Add(24*time.Hour)))
	require.NoError(t, err)
	_, err = audit.VerifyReceipt(sr, audit.NewKeyring(signer.Public()))
	require.NoError(t, err)
	assert.Contains(t, sr.Text, "personal fields: erased")
	assert.NotContains(t, string(sr.Receipt), "203.0.113.7")

	// A history that links the request to the erasure does not hold.
	forged := *history[2].Event
	forged.PrevHash = history[1].Event.Hash
	_, err = forged.SealWith(dataKey("dk-alice-2"))
	require.NoError(t, err)
	history[2].Event = &forged
	sr, err = signer.SignReceipt(audit.NewReceipt("CONSENT", k, history, nil, t0.Add(24*time.Hour)))
	require.NoError(t, err)
	_, err = audit.VerifyReceipt(sr, audit.NewKeyring(signer.Public()))
	require.ErrorIs(t, err, audit.ErrBadReceipt)
	assert.Contains(t, err.Error(), "does not link")
}
