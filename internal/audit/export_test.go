package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"runtime/debug"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type exportLine struct {
	Seq      uint64          `json:"seq"`
	StoredAt time.Time       `json:"stored_at"`
	Event    json.RawMessage `json:"event"`
}

func export(t *testing.T, tl *testLedger, opts audit.ExportOptions) ([]byte, audit.ExportStats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts.Idle = 100 * time.Millisecond
	var out bytes.Buffer
	st, err := audit.Export(ctx, tl.js, &out, opts)
	require.NoError(t, err)
	return out.Bytes(), st
}

func parseJSONL(t *testing.T, data []byte) []exportLine {
	t.Helper()
	var lines []exportLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var l exportLine
		require.NoError(t, events.DecodeStrict(sc.Bytes(), &l), "line %q", sc.Text())
		lines = append(lines, l)
	}
	require.NoError(t, sc.Err())
	return lines
}

func TestExportSelectsAndKeepsStoredBytes(t *testing.T) {
	tl := newTestLedger(t)
	tenant := func(name string) func(*events.Command) { return func(c *events.Command) { c.Tenant = name } }
	var all []uint64
	for i := range 12 {
		tn := []string{"default", "acme", "globex"}[i%3]
		purpose := []string{"marketing_email", "analytics"}[i%2]
		edits := []func(*events.Command){tenant(tn)}
		if i == 1 {
			edits = append(edits, func(c *events.Command) { c.RecordedBy = "alice@acme" }) // an authenticated caller
		}
		all = append(all, tl.append(events.KindRequest, "p"+string(rune('a'+i)), purpose, edits...).Seq)
	}
	checkpoint := tl.publishRaw(events.CheckpointSubject, "", []byte(`{"not":"an event"}`))
	require.Greater(t, checkpoint, all[len(all)-1])

	data, st := export(t, tl, audit.ExportOptions{})
	lines := parseJSONL(t, data)
	require.Len(t, lines, 12, "events only, not checkpoints")
	assert.Equal(t, uint64(12), st.Events)
	for i, l := range lines {
		assert.Equal(t, all[i], l.Seq)
		stored, err := tl.stream.GetMsg(context.Background(), l.Seq)
		require.NoError(t, err)
		assert.Equal(t, string(stored.Data), string(l.Event), "the event is written as stored")
		ev, err := events.Decode(l.Event)
		require.NoError(t, err)
		require.NoError(t, events.VerifyHash(l.Event, ev), "an auditor can recompute the hash from the file")
		if i == 1 {
			assert.Contains(t, string(l.Event), `"recorded_by":"alice@acme"`)
		} else {
			assert.NotContains(t, string(l.Event), "recorded_by")
		}
	}

	for _, tt := range []struct {
		name string
		opts audit.ExportOptions
		want []int // indexes into all
	}{
		{"tenant", audit.ExportOptions{Tenant: "acme"}, []int{1, 4, 7, 10}},
		{"purpose", audit.ExportOptions{Purpose: "analytics"}, []int{1, 3, 5, 7, 9, 11}},
		{"tenant and purpose", audit.ExportOptions{Tenant: "globex", Purpose: "marketing_email"}, []int{2, 8}},
		{"no match", audit.ExportOptions{Tenant: "nobody"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, st := export(t, tl, tt.opts)
			lines := parseJSONL(t, data)
			var got []uint64
			for _, l := range lines {
				got = append(got, l.Seq)
			}
			var want []uint64
			for _, i := range tt.want {
				want = append(want, all[i])
			}
			assert.Equal(t, want, got)
			assert.Equal(t, uint64(len(want)), st.Events)
		})
	}

	t.Run("since and until by recorded_at", func(t *testing.T) {
		ev := func(i int) *events.Event {
			m, err := tl.stream.GetMsg(context.Background(), all[i])
			require.NoError(t, err)
			e, err := events.Decode(m.Data)
			require.NoError(t, err)
			return e
		}
		since, until := ev(3).RecordedAt, ev(7).RecordedAt
		data, st := export(t, tl, audit.ExportOptions{Since: &since, Until: &until})
		var got []uint64
		for _, l := range parseJSONL(t, data) {
			got = append(got, l.Seq)
		}
		assert.Equal(t, all[3:7], got, "since is inclusive, until exclusive")
		assert.Equal(t, uint64(4), st.Events)
	})

	t.Run("csv", func(t *testing.T) {
		data, st := export(t, tl, audit.ExportOptions{Format: audit.FormatCSV, Tenant: "acme"})
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, 5)
		assert.Equal(t, []string{"seq", "stored_at", "recorded_at", "occurred_at", "tenant", "subject", "purpose", "type",
			"policy_version", "expires_at", "actor", "recorded_by", "method", "reason", "description", "evidence", "id", "prev_hash", "hash",
			"subject_key", "personal"}, rows[0])
		assert.Equal(t, uint64(4), st.Events)
		m, err := tl.stream.GetMsg(context.Background(), all[1])
		require.NoError(t, err)
		ev, err := events.Decode(m.Data)
		require.NoError(t, err)
		row := rows[1]
		assert.Equal(t, []string{"2", "acme", ev.SubjectID, "analytics", "consent.requested", "1", "test", "alice@acme", ev.ID, ev.Hash},
			[]string{row[0], row[4], row[5], row[6], row[7], row[8], row[10], row[11], row[16], row[18]})
		assert.Empty(t, rows[2][11], "recorded without authentication: no recorded_by")
		assert.Equal(t, []string{"", audit.PersonalClear}, row[19:], "v1: no subject key, personal fields in the clear")
	})
}

func TestExportRefusesBadOptions(t *testing.T) {
	tl := newTestLedger(t)
	ctx := context.Background()
	since := t0
	before := t0.Add(-time.Hour)
	for _, tt := range []struct {
		opts  audit.ExportOptions
		field string
	}{
		{audit.ExportOptions{Tenant: "Not Valid"}, "tenant"},
		{audit.ExportOptions{Purpose: "a.b"}, "purpose"},
		{audit.ExportOptions{Format: "xml"}, "format"},
		{audit.ExportOptions{Since: &since, Until: &before}, "until"},
		{audit.ExportOptions{Format: audit.FormatRaw, Tenant: "acme"}, "format"},
	} {
		var fe *events.FieldError
		_, err := audit.Export(ctx, tl.js, io.Discard, tt.opts)
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, tt.field, fe.Field)
	}
}

// countingWriter counts bytes and lines, keeping nothing.
type countingWriter struct{ bytes, lines int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.bytes += len(p)
	w.lines += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

// An export of a stream several times larger than the bound keeps the
// heap under the bound: events are written and forgotten. 100,000 events
// (40,000 larger ones under the race detector), 80 MiB or so.
func TestExportStreamsInConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a stream of 100k events")
	}
	// The server runs in a process of its own, so that the heap measured
	// is the export's alone (a server caches the blocks it reads).
	nc, err := nats.Connect(startServerProcess(t))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js := natstest.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	require.NoError(t, err)
	n, size := 100_000, 600
	if raceEnabled {
		n, size = 40_000, 1600 // about as many bytes, in fewer messages
	}
	filling := time.Now()
	last := fillStream(t, js, n, 20_000, longText(size))
	t.Logf("filled in %s", time.Since(filling).Round(time.Millisecond))
	require.Equal(t, uint64(n), last)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	t.Logf("stream: %d events, %d MiB stored", info.State.Msgs, info.State.Bytes>>20)

	// The heap may grow to twice what is live before a collection
	// (GOGC=100), and what earlier tests left live would count in the
	// growth; a tighter GC target makes HeapInuse follow the export's own
	// live memory.
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	const bound = 16 << 20
	before := heapInuse()
	sampler := sampleHeap(2 * time.Millisecond)
	var out countingWriter
	exporting := time.Now()
	st, err := audit.Export(ctx, js, &out, audit.ExportOptions{Idle: 100 * time.Millisecond})
	peak, samples := sampler.Stop()
	require.NoError(t, err)

	t.Logf("exported %d MiB in %d lines in %s; heap in use before %d MiB, peak %d MiB over %d samples",
		out.bytes>>20, out.lines, time.Since(exporting).Round(time.Millisecond), before>>20, peak>>20, samples)
	assert.Equal(t, uint64(n), st.Events)
	assert.Equal(t, n, out.lines)
	require.Greater(t, out.bytes, 2*bound, "the export must be larger than the bound to show anything")
	require.Greater(t, samples, 10)
	assert.Less(t, peak-min(peak, before), uint64(bound), "heap grew by %d MiB", (peak-min(peak, before))>>20)
}
