package main

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClusterReadsYourWritesAcrossInstances writes through the service's
// queue group and reads back with min_seq = the reply's seq from every
// consentd: from each instance's own index (so the instance that did not
// append is asked every time) and through the queue group. No read may be
// stale: each must show the event just appended.
func TestClusterReadsYourWritesAcrossInstances(t *testing.T) {
	h := startClusterHarness(t, 2)
	const callers, rounds = 4, 60
	var behind [2]atomic.Int64 // reads that found the instance's index behind the reply
	var wg sync.WaitGroup
	for c := range callers {
		client := h.client(fmt.Sprintf("caller-%d", c))
		wg.Go(func() {
			key := events.Key{Tenant: events.DefaultTenant, SubjectID: fmt.Sprintf("reader-%d@example.com", c), Purpose: "analytics"}
			for r := range rounds {
				cmd := events.Command{SubjectID: key.SubjectID, Purpose: key.Purpose}
				var reply wire.Reply
				var err error
				want := events.StateGranted
				if r%2 == 0 {
					reply, err = client.Grant(t.Context(), cmd)
				} else {
					want = events.StateRevoked
					reply, err = client.Revoke(t.Context(), cmd)
				}
				if !assert.NoError(t, err) {
					return
				}
				for i, in := range h.instances {
					if in.index.Checkpoint() < reply.Seq {
						behind[i].Add(1)
					}
					got, indexSeq, err := in.index.Consent(t.Context(), key, reply.Seq)
					if !assert.NoError(t, err, "consentd %s", in.name) {
						return
					}
					assert.GreaterOrEqual(t, indexSeq, reply.Seq, "consentd %s", in.name)
					assert.Equal(t, reply.Seq, got.Seq, "consentd %s is stale", in.name)
					assert.Equal(t, want, got.State, "consentd %s is stale", in.name)
				}
				st, err := client.Status(t.Context(), wire.StatusQuery{SubjectID: key.SubjectID, Purpose: key.Purpose, MinSeq: reply.Seq})
				if !assert.NoError(t, err) {
					return
				}
				assert.Equal(t, reply.Seq, st.Seq, "stale status through the queue group")
				assert.Equal(t, want, st.State, "stale status through the queue group")
				assert.Equal(t, reply.Event.ID, st.EventID)
				assert.GreaterOrEqual(t, st.IndexSeq, reply.Seq)
			}
		})
	}
	wg.Wait()
	t.Logf("reads that had to wait for min_seq: consentd A %d, consentd B %d of %d each",
		behind[0].Load(), behind[1].Load(), callers*rounds)

	// Both instances took commands and both answered status with min_seq
	// through the queue group: reads crossed instances on the wire too.
	for _, in := range h.instances {
		assert.NotZero(t, answered(t, in.Main, wire.SubjectGrant), "consentd %s took no grant", in.name)
		assert.NotZero(t, answered(t, in.Main, wire.SubjectStatus), "consentd %s answered no status", in.name)
	}
}

// answered returns the requests of one endpoint m's service has answered,
// including those answered asynchronously (commands, min_seq lookups).
func answered(t *testing.T, m *Main, subj string) uint64 {
	t.Helper()
	for _, e := range m.service.Stats().Endpoints {
		if e.Subject == subj {
			var d struct {
				AnsweredAsync uint64 `json:"answered_async"`
			}
			require.NoError(t, json.Unmarshal(e.Data, &d))
			return d.AnsweredAsync
		}
	}
	t.Fatalf("no endpoint %s", subj)
	return 0
}
