package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/keystore"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEraseSurvivesSIGKILL kills consentd with SIGKILL during an erasure,
// once at least k of its consent.erased events are stored (k = 0, 1, 2, 3
// in turn: before or between the events, or once all are there, before or
// after the key's destruction), restarts it and erases again: every
// consent of the person ends erased exactly once, the data key is gone,
// and the stream verifies.
func TestEraseSurvivesSIGKILL(t *testing.T) {
	dataDir := t.TempDir()
	port := natstest.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	child := startCrashChild(t, dataDir, port)
	svc, err := nats.Connect(url, append(serviceOptions(t, dataDir), writerOptions("svc")...)...)
	require.NoError(t, err)
	defer svc.Close()
	js, err := jetstream.New(svc)
	require.NoError(t, err)
	purposes := []string{"analytics", "newsletter", "research"}
	var tokens [4]string // each person's subject key, as the grants carry it
	// The data keys the grants were sealed under, each to be destroyed.
	type sealedKey struct{ subjectKey, id string }
	var sealedBy []sealedKey
	for round := range 4 {
		admin := connectClient(t, url, append(adminOptions(t, dataDir), writerOptions(fmt.Sprintf("admin-%d", round))...)...)
		person := fmt.Sprintf("person-%d@example.com", round)
		for _, p := range purposes {
			granted, err := admin.Grant(stepContext(t), events.Command{SubjectID: person, Purpose: p, Evidence: []byte(`{"round":1}`)})
			require.NoError(t, err)
			tokens[round] = granted.Event.SubjectKey
		}
		require.NotEmpty(t, tokens[round])
		_, err := admin.Grant(stepContext(t), events.Command{SubjectID: "bystander", Purpose: purposes[round%3]})
		require.NoError(t, err)

		erasing := make(chan error, 1)
		go func() {
			// Its reply may die with consentd: the caller gives up soon.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := admin.Erase(ctx, wire.EraseRequest{SubjectID: person, Reason: "ticket"})
			erasing <- err
		}()
		require.Eventually(t, func() bool {
			return erasedEvents(t, js, tokens[round]) >= round
		}, 30*time.Second, time.Millisecond, "%d consent.erased stored", round)
		child.kill()
		err = <-erasing
		t.Logf("round %d: the erasure's caller got %v", round, err)

		child = startCrashChild(t, dataDir, port)
		var r wire.EraseReply
		require.Eventually(t, func() bool {
			r, err = admin.Erase(stepContext(t), wire.EraseRequest{SubjectID: person, Reason: "ticket, again"})
			return !errors.Is(err, wire.ErrUnavailable) && !errors.Is(err, nats.ErrNoResponders)
		}, 30*time.Second, 20*time.Millisecond)
		require.NoError(t, err)
		assert.Len(t, append(purposeNames(r.Erased), r.Already...), len(purposes), "every consent erased, none twice")

		for _, p := range purposes {
			h, err := admin.History(stepContext(t), wire.HistoryQuery{SubjectID: person, Purpose: p})
			require.NoError(t, err)
			erased := 0
			for _, e := range h.Events {
				if e.Event != nil && e.Event.Type == events.TypeErased {
					erased++
				}
				if e.Event != nil && e.Event.Type == events.TypeGranted {
					assert.Empty(t, e.Event.SubjectID, "the grant stays sealed: its key is gone")
					require.NotEmpty(t, e.Event.KeyID)
					sealedBy = append(sealedBy, sealedKey{e.Event.SubjectKey, e.Event.KeyID})
				}
			}
			assert.Equal(t, 1, erased, "%s of %s erased once", p, person)
			st, err := admin.Status(stepContext(t), wire.StatusQuery{SubjectID: person, Purpose: p, MinSeq: h.Events[len(h.Events)-1].Seq})
			require.NoError(t, err)
			assert.Equal(t, events.StateErased, st.State)
		}
	}
	// The keys are gone and the stream verifies.
	kek, err := keystore.LoadKEK(filepath.Join(dataDir, KEKFile))
	require.NoError(t, err)
	keys, err := keystore.Open(stepContext(t), js, keystore.Config{KEK: kek})
	require.NoError(t, err)
	require.NotEmpty(t, sealedBy)
	for _, k := range sealedBy {
		_, err := keys.KeyByID(stepContext(t), events.DefaultTenant, k.subjectKey, k.id)
		require.ErrorIs(t, err, keystore.ErrDestroyed, "key %s of %s", k.id, k.subjectKey)
	}
	report, err := audit.Verify(stepContext(t), js, audit.VerifyOptions{})
	require.NoError(t, err)
	assert.True(t, report.OK(), "%v", report.Problems)
}

func purposeNames(rs []wire.Reply) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Event.Purpose)
	}
	return out
}

// erasedEvents counts the consent.erased events stored for the person of
// subject key token (in the default tenant), reading the stream.
func erasedEvents(t *testing.T, js jetstream.JetStream, token string) int {
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, wire.DefaultStream)
	if err != nil {
		return -1 // the server is coming back
	}
	n := 0
	for _, p := range []string{"analytics", "newsletter", "research"} {
		msg, err := stream.GetLastMsgForSubject(ctx, "consent.events."+events.DefaultTenant+"."+p+"."+token)
		if err == nil && msg.Header.Get(events.HeaderEventType) == string(events.TypeErased) {
			n++
		}
	}
	return n
}
