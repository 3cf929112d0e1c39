package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// signedConsentd is what consentd runs with --signing-key, in-process: the
// service signs receipts, and checkpoint makes a checkpoint on demand.
type signedConsentd struct {
	url        string
	js         jetstream.JetStream
	pubFile    string
	checkpoint func() audit.CheckpointResult
}

func startSignedConsentd(t *testing.T) *signedConsentd {
	t.Helper()
	dir := t.TempDir()
	keyFile, pubFile := filepath.Join(dir, "consent.key"), filepath.Join(dir, "consent.pub")
	_, err := audit.GenerateKeyFiles(keyFile, pubFile)
	require.NoError(t, err)
	signer, err := audit.LoadSigningKey(keyFile)
	require.NoError(t, err)

	s, _, js := natstest.Run(t)
	quiet := slog.New(slog.DiscardHandler)
	runStack(t, s, nil, dir, ledger.ServiceConfig{Signer: signer}, ledger.FeedConfig{})
	window := time.Now()
	cp, err := audit.NewCheckpointer(js, audit.CheckpointerOptions{Signer: signer, Logger: quiet, Now: func() time.Time { return window }})
	require.NoError(t, err)
	return &signedConsentd{
		url: s.ClientURL(), js: js, pubFile: pubFile,
		checkpoint: func() audit.CheckpointResult {
			window = window.Add(time.Minute) // the next window
			res, err := cp.Once(t.Context())
			require.NoError(t, err)
			return res
		},
	}
}

func TestAuditKeygen(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "ledger")
	var out, errOut bytes.Buffer
	code := run([]string{"audit", "keygen", name, "--server", "nats://127.0.0.1:1"}, &out, &errOut)
	require.Equal(t, exitOK, code, errOut.String())
	assert.Contains(t, out.String(), "consentd --signing-key "+name+".key")
	info, err := os.Stat(name + ".key")
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	pub, err := audit.LoadPublicKey(name + ".pub")
	require.NoError(t, err)
	assert.Contains(t, out.String(), "key id "+audit.KeyID(pub), "keygen needs no NATS server")

	out.Reset()
	errOut.Reset()
	code = run([]string{"audit", "keygen", name}, &out, &errOut)
	assert.Equal(t, exitError, code, "an existing key is never overwritten")
	assert.Contains(t, errOut.String(), "exists")
}

func TestAuditCommandsOnASignedLedger(t *testing.T) {
	c := startSignedConsentd(t)
	url := c.url
	for _, args := range [][]string{
		{"request", "alice@example.com", "marketing_email"},
		{"grant", "alice@example.com", "marketing_email"},
		{"--tenant", "acme", "grant", "bob", "analytics"},
		{"revoke", "alice@example.com", "marketing_email", "--reason", "too many"},
	} {
		code, _, errOut := ctl(t, url, args...)
		require.Equal(t, exitOK, code, errOut)
	}
	require.True(t, c.checkpoint().Published)
	code, _, errOut := ctl(t, url, "grant", "carol", "marketing_email")
	require.Equal(t, exitOK, code, errOut)

	t.Run("export", func(t *testing.T) {
		code, out, errOut := ctl(t, url, "audit", "export")
		require.Equal(t, exitOK, code, errOut)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 5, "events only")
		var first struct {
			Seq   uint64          `json:"seq"`
			Event json.RawMessage `json:"event"`
		}
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
		assert.Equal(t, uint64(1), first.Seq)
		assert.Contains(t, errOut, "Exported 5 events (seq 1 to 6).")

		file := filepath.Join(t.TempDir(), "acme.csv")
		code, out, errOut = ctl(t, url, "audit", "export", "--tenant", "acme", "--format", "csv", "--out", file)
		require.Equal(t, exitOK, code, errOut)
		assert.Empty(t, out)
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, 2)
		assert.Equal(t, []string{"3", "acme", "bob", "analytics", "consent.granted"}, []string{rows[1][0], rows[1][4], rows[1][5], rows[1][6], rows[1][7]})

		code, _, errOut = ctl(t, url, "audit", "export", "--format", "xml", "--out", filepath.Join(t.TempDir(), "x"))
		assert.Equal(t, exitError, code)
		assert.Contains(t, errOut, "format")
	})

	t.Run("raw export recomputes the chain offline", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "ledger.raw.jsonl")
		code, _, errOut := ctl(t, url, "audit", "export", "--format", "raw", "--out", file)
		require.Equal(t, exitOK, code, errOut)
		assert.Contains(t, errOut, "Exported 6 messages (seq 1 to 6)")
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		var chain audit.Chain
		for line := range strings.Lines(string(data)) {
			var m struct {
				Seq     uint64 `json:"seq"`
				Subject string `json:"nats_subject"`
				Payload []byte `json:"payload_base64"`
			}
			require.NoError(t, json.Unmarshal([]byte(line), &m))
			require.NoError(t, chain.Add(m.Seq, m.Subject, m.Payload))
		}
		code, out, _ := ctl(t, url, "audit", "verify", "--no-live", "--json")
		require.Equal(t, exitOK, code)
		var r audit.Report
		require.NoError(t, json.Unmarshal([]byte(out), &r))
		assert.Equal(t, r.Chain, chain.HeadHex(), "the file holds the stream byte for byte")

		python, err := exec.LookPath("python3")
		if err != nil {
			t.Skip("python3 is not installed: docs/verify_chain.py not run")
		}
		script := exec.Command(python, filepath.Join("..", "..", "docs", "verify_chain.py"), file)
		got, err := script.CombinedOutput()
		require.NoError(t, err, "%s", got)
		assert.Contains(t, string(got), "seq 5: checkpoint up to seq 4")
		assert.Contains(t, string(got), "anchor: 6:"+r.Chain)

		if exec.Command(python, "-c", "import cryptography").Run() != nil {
			t.Skip("the cryptography package is not installed: signatures not checked by docs/verify_chain.py")
		}
		got, err = exec.Command(python, filepath.Join("..", "..", "docs", "verify_chain.py"), file, "--public-key", c.pubFile).CombinedOutput()
		require.NoError(t, err, "%s", got)
		assert.Contains(t, string(got), "seq 5: checkpoint up to seq 4 made")
		assert.Contains(t, string(got), "chain matches, signature valid")
	})

	t.Run("verify", func(t *testing.T) {
		code, out, errOut := ctl(t, url, "audit", "verify", "--public-key", c.pubFile)
		require.Equal(t, exitOK, code, out+errOut)
		assert.Contains(t, out, "checkpoints: 1 of 1 verified (signature and chain)")
		assert.Contains(t, out, "last verified sequence: 4")
		assert.Contains(t, out, "equal to a fresh fold")
		assert.Contains(t, out, "OK: no problems found")

		code, out, errOut = ctl(t, url, "audit", "verify", "--json", "--no-live")
		require.Equal(t, exitOK, code, errOut)
		var r audit.Report
		require.NoError(t, json.Unmarshal([]byte(out), &r))
		assert.Equal(t, uint64(6), r.LastSeq)
		assert.False(t, r.Signed)
		assert.Nil(t, r.Live)
		assert.Len(t, r.Chain, 64)

		code, out, _ = ctl(t, url, "audit", "verify", "--no-live", "--anchor", "6:"+r.Chain)
		assert.Equal(t, exitOK, code, out)
		assert.Contains(t, out, "anchor 6: the chain matches")
		code, out, _ = ctl(t, url, "audit", "verify", "--no-live", "--anchor", "6:"+strings.Repeat("0", 64))
		assert.Equal(t, exitProblems, code, out)
	})

	t.Run("receipt", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "alice.json")
		code, out, errOut := ctl(t, url, "receipt", "alice@example.com", "marketing_email", "--out", file)
		require.Equal(t, exitOK, code, errOut)
		assert.Contains(t, out, "CONSENT RECEIPT")
		assert.Contains(t, out, "Status:    revoked")
		assert.Contains(t, out, "reason: too many")
		assert.Contains(t, out, "commits to every event of the ledger up to seq 4")

		code, out, errOut = ctl(t, url, "audit", "verify-receipt", file, "--public-key", c.pubFile)
		require.Equal(t, exitOK, code, out+errOut)
		assert.Contains(t, out, "VALID: signed by key")

		data, err := os.ReadFile(file)
		require.NoError(t, err)
		require.Contains(t, string(data), `"state": "revoked"`)
		forged := filepath.Join(t.TempDir(), "forged.json")
		require.NoError(t, os.WriteFile(forged, bytes.Replace(data, []byte(`"state": "revoked"`), []byte(`"state": "granted"`), 1), 0o600))
		code, out, _ = ctl(t, url, "audit", "verify-receipt", forged, "--public-key", c.pubFile)
		assert.Equal(t, exitProblems, code)
		assert.Contains(t, out, "NOT VALID: signature does not verify")

		code, _, errOut = ctl(t, url, "audit", "verify-receipt", file)
		assert.Equal(t, exitError, code)
		assert.Contains(t, errOut, "needs --public-key")
	})

	t.Run("status at", func(t *testing.T) {
		code, out, errOut := ctl(t, url, "status", "alice@example.com", "marketing_email", "--at", time.Now().Add(-time.Hour).Format(time.RFC3339))
		require.Equal(t, exitOK, code, errOut)
		assert.Regexp(t, `(?m)^default\s+alice@example\.com\s+marketing_email\s+none\s`, out)
		assert.Contains(t, out, "as the ledger had recorded it (0 events counted)")

		code, out, errOut = ctl(t, url, "status", "alice@example.com", "marketing_email", "--at", time.Now().Add(time.Minute).Format(time.RFC3339), "--by", "occurred", "--json")
		require.Equal(t, exitOK, code, errOut)
		var st wire.StatusAt
		require.NoError(t, json.Unmarshal([]byte(out), &st))
		assert.Equal(t, events.StateRevoked, st.State)
		assert.Equal(t, wire.ByOccurred, st.By)
		assert.Equal(t, 3, st.Events)

		code, _, errOut = ctl(t, url, "status", "alice@example.com", "marketing_email", "--at", time.Now().Format(time.RFC3339), "--by", "stored")
		assert.Equal(t, exitError, code)
		assert.Contains(t, errOut, "by")
	})

	t.Run("verify names a forged event", func(t *testing.T) {
		forged := events.Event{V: 1, ID: uuid.NewString(), Type: events.TypeGranted, Tenant: "default", SubjectID: "alice@example.com",
			Purpose: "marketing_email", OccurredAt: time.Now().UTC(), RecordedAt: time.Now().UTC(), PolicyVersion: 1,
			PrevHash: strings.Repeat("ab", 32)}
		payload, err := forged.Seal()
		require.NoError(t, err)
		msg := nats.NewMsg(forged.Key().NATSSubject())
		msg.Data = payload
		msg.Header.Set(events.HeaderEventType, string(forged.Type))
		ack, err := c.js.PublishMsg(t.Context(), msg)
		require.NoError(t, err)

		code, out, _ := ctl(t, url, "audit", "verify", "--public-key", c.pubFile)
		assert.Equal(t, exitProblems, code)
		assert.Regexp(t, `FAILED: \d+ problem\(s\); the first at seq `+strconv.FormatUint(ack.Sequence, 10), out)
		assert.Contains(t, out, `link: prev_hash is "abab`)
		assert.Contains(t, out, `[consent: tenant default, subject "alice@example.com", purpose marketing_email]`)
	})
}

func TestUnknownAuditCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"audit", "bogus"}, &out, &errOut)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut.String(), "audit needs one of: export, verify, keygen, verify-receipt")
}

func TestRenderProgress(t *testing.T) {
	line := renderProgress("export", 250, 1000, time.Second)
	assert.Contains(t, line, "export  25% [=======                       ] 250/1000  250/s  3s left")
	assert.Contains(t, renderProgress("verify", 10, 10, time.Second), "100%")
	assert.Contains(t, renderProgress("verify", 0, 0, 0), "100%", "an empty stream is done")
	assert.Nil(t, newProgressBar(&bytes.Buffer{}, "x"), "no bar when stderr is not a terminal")
}
