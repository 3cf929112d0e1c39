package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/google/uuid"
	"github.com/minio/highwayhash"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// testLedger is the CONSENT stream on an embedded server, with a Ledger
// appending to it on a controlled clock.
type testLedger struct {
	t      testing.TB
	srv    *server.Server
	dir    string // the server's store directory
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	l      *ledger.Ledger

	mu       sync.Mutex
	now      time.Time
	appended int // events appended by history
}

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// newTestLedger starts a server and a ledger whose clock starts at the
// current second and moves 10ms per reading, so that recorded_at stays
// within a second or so of the server's storage time.
func newTestLedger(t testing.TB) *testLedger {
	t.Helper()
	tl := &testLedger{t: t, dir: t.TempDir(), now: time.Now().UTC().Truncate(time.Second)}
	tl.start(tl.dir)
	return tl
}

// start runs a server on dir and opens the ledger.
func (tl *testLedger) start(dir string) {
	tl.t.Helper()
	tl.srv, tl.nc, tl.js = natstest.Run(tl.t, natstest.StoreDir(dir))
	tl.dir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	tl.stream, err = ledger.EnsureStream(ctx, tl.js, ledger.StreamOptions{})
	require.NoError(tl.t, err)
	tl.l = ledger.New(tl.js, tl.stream, ledger.Options{Now: tl.clock})
}

// clock is the ledger's clock.
func (tl *testLedger) clock() time.Time {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.now = tl.now.Add(10 * time.Millisecond)
	return tl.now
}

// append records a command and returns the reply.
func (tl *testLedger) append(kind events.Kind, subjectID, purpose string, edit ...func(*events.Command)) wire.Reply {
	tl.t.Helper()
	cmd := events.Command{SubjectID: subjectID, Purpose: purpose, Actor: "test"}
	for _, e := range edit {
		e(&cmd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := tl.l.Append(ctx, kind, cmd)
	require.NoError(tl.t, err)
	return r
}

// history appends a mixed history over ten consents (five people, two
// purposes; each asked, then granted and revoked in turn) and returns the
// stream's last sequence.
func (tl *testLedger) history(n int) uint64 {
	tl.t.Helper()
	var last uint64
	for range n {
		i := tl.appended
		tl.appended++
		subject := fmt.Sprintf("person-%d@example.com", i%5)
		purpose := []string{"marketing_email", "analytics"}[(i/5)%2]
		kind := events.KindRequest
		if step := i / 10; step > 0 {
			kind = []events.Kind{events.KindGrant, events.KindRevoke}[(step-1)%2]
		}
		last = tl.append(kind, subject, purpose).Seq
	}
	return last
}

// publishRaw puts a message straight onto the stream, as a forger with
// publish rights would, bypassing the ledger.
func (tl *testLedger) publishRaw(subj, eventType string, payload []byte) uint64 {
	tl.t.Helper()
	msg := nats.NewMsg(subj)
	msg.Data = payload
	msg.Header.Set(events.HeaderMsgID, uuid.NewString())
	if eventType != "" {
		msg.Header.Set(events.HeaderEventType, eventType)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := tl.js.PublishMsg(ctx, msg)
	require.NoError(tl.t, err)
	return ack.Sequence
}

// stop shuts the server down cleanly (it writes its stream state).
func (tl *testLedger) stop() {
	tl.nc.Close()
	tl.srv.Shutdown()
	tl.srv.WaitForShutdown()
}

// copyDir copies a directory tree.
func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o750)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, info.Mode().Perm())
	})
	require.NoError(t, err)
}

// Layout of a record in a nats-server 2.15 message block (.blk):
// a 22-byte header (uint32 record length with a high bit for "has
// headers", uint64 seq, int64 timestamp, uint16 subject length), the
// subject, a uint32 header length and the headers when there are any, the
// payload, and an 8-byte HighwayHash-64 checksum over header bytes 4..20,
// the subject, the headers and the payload, keyed by
// SHA-256("<stream>-<block index>").
const (
	blkHeaderSize = 22
	blkHasHeaders = 1 << 31
	blkChecksum   = 8
)

// alterStoredPayload rewrites one byte of the payload of the message at
// seq in the stream's first message block: the first occurrence of old in
// the payload becomes new (same length). With fixChecksum it recomputes
// the record's checksum, as a forger who knows the format would; without,
// the server finds the record corrupt.
func alterStoredPayload(t testing.TB, storeDir, streamName string, seq uint64, old, new string, fixChecksum bool) {
	t.Helper()
	require.Len(t, new, len(old))
	blk := filepath.Join(storeDir, "jetstream", "$G", "streams", streamName, "msgs", "1.blk")
	buf, err := os.ReadFile(blk)
	require.NoError(t, err)
	le := binary.LittleEndian
	for i := 0; i+blkHeaderSize <= len(buf); {
		rl := le.Uint32(buf[i:])
		hasHeaders := rl&blkHasHeaders != 0
		rl &^= blkHasHeaders
		rec := buf[i : i+int(rl)]
		if le.Uint64(rec[4:]) != seq {
			i += int(rl)
			continue
		}
		slen := int(le.Uint16(rec[20:]))
		data := rec[blkHeaderSize:]
		body := data[slen : len(data)-blkChecksum] // headers (with their length) and payload
		hashed := body
		if hasHeaders {
			hashed = body[4:]
		}
		at := bytes.Index(hashed, []byte(old))
		require.GreaterOrEqual(t, at, 0, "%q not in the record of seq %d", old, seq)
		copy(hashed[at:], new)
		if fixChecksum {
			key := sha256.Sum256([]byte(streamName + "-1"))
			h, err := highwayhash.New64(key[:])
			require.NoError(t, err)
			h.Write(rec[4:20])
			h.Write(data[:slen])
			h.Write(hashed)
			copy(data[len(data)-blkChecksum:], h.Sum(nil))
		}
		require.NoError(t, os.WriteFile(blk, buf, 0o640))
		return
	}
	t.Fatalf("no record of seq %d in %s", seq, blk)
}
