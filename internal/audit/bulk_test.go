package audit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// fillStream appends n valid events (canonical, hashed, chained per
// consent, with the ledger's headers) over the given number of consents,
// as fast as the server takes them: async publishes in windows, no
// expected-seq checks. Consent i%consents gets event i, a grant or (every
// other round) a revocation, recorded at t0 + i ms. It returns the
// stream's last sequence. The stream must exist and be empty.
func fillStream(tb testing.TB, js jetstream.JetStream, n, consents int, description string) uint64 {
	tb.Helper()
	const window = 2000 // under the client's default limit of 4000 async publishes in flight
	tips := make([]string, consents)
	keys := make([]events.Key, consents)
	for i := range keys {
		keys[i] = events.Key{Tenant: []string{"default", "acme"}[i%2], SubjectID: fmt.Sprintf("person-%d@example.com", i),
			Purpose: []string{"marketing_email", "analytics", "profiling"}[i%3]}
	}
	var b bulkEvent
	var seq uint64
	futures := make([]jetstream.PubAckFuture, 0, window)
	for i := range n {
		c := i % consents
		k := keys[c]
		revoke := (i/consents)%2 == 1
		payload, hash := b.build(i, k, revoke, description, tips[c])
		tips[c] = hash
		if i == 0 {
			ev, err := events.Decode(payload)
			require.NoError(tb, err)
			require.NoError(tb, events.VerifyHash(payload, ev), "bulk events must be valid: %s", payload)
		}
		m := nats.NewMsg(k.NATSSubject())
		m.Data = payload
		m.Header.Set(events.HeaderEventType, map[bool]string{false: string(events.TypeGranted), true: string(events.TypeRevoked)}[revoke])
		m.Header.Set(events.HeaderMsgID, fmt.Sprintf("bulk-%d", i))
		f, err := js.PublishMsgAsync(m)
		require.NoError(tb, err)
		futures = append(futures, f)
		if len(futures) < window && i < n-1 {
			continue
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(60 * time.Second):
			tb.Fatal("publish did not complete in 60s")
		}
		for _, f := range futures {
			select {
			case ack := <-f.Ok():
				seq++
				require.Equal(tb, seq, ack.Sequence)
			case err := <-f.Err():
				tb.Fatalf("publish: %v", err)
			}
		}
		futures = futures[:0]
	}
	return seq
}

// bulkEvent writes the canonical encoding of an event directly, members
// in RFC 8785 order, for values that need no escaping: what Seal would
// write, without its cost.
type bulkEvent struct{}

func (b *bulkEvent) build(i int, k events.Key, revoke bool, description, prevHash string) ([]byte, string) {
	at := t0.Add(time.Duration(i) * time.Millisecond).UTC().Format(time.RFC3339Nano)
	typ, text := events.TypeGranted, `"description":"`+description+`",`
	tail := ""
	if revoke {
		typ, text, tail = events.TypeRevoked, "", `"reason":"changed my mind",`
	}
	id := fmt.Sprintf("0190%04x-%04x-7000-8000-%012x", i>>16&0xffff, i&0xffff, i)
	head := `{"actor":"bulk",` + text
	rest := `"id":"` + id + `","method":"api","occurred_at":"` + at + `","policy_version":1,"prev_hash":"` + prevHash +
		`","purpose":"` + k.Purpose + `",` + tail + `"recorded_at":"` + at + `","subject":"` + k.SubjectID +
		`","tenant":"` + k.Tenant + `","type":"` + string(typ) + `","v":1}`
	sum := sha256.Sum256([]byte(head + rest))
	hash := hex.EncodeToString(sum[:])
	return []byte(head + `"hash":"` + hash + `",` + rest), hash
}

// longText is a description of about n bytes.
func longText(n int) string {
	const sentence = "We would like to send you news about our products. "
	return strings.Repeat(sentence, n/len(sentence)+1)[:n]
}

// heapSampler records the largest HeapInuse seen while it runs.
type heapSampler struct {
	stop chan struct{}
	done chan struct{}
	max  uint64
	n    int
}

func sampleHeap(every time.Duration) *heapSampler {
	s := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			s.max, s.n = max(s.max, ms.HeapInuse), s.n+1
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop stops sampling and returns the largest HeapInuse and the number of
// samples.
func (s *heapSampler) Stop() (uint64, int) {
	close(s.stop)
	<-s.done
	return s.max, s.n
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
