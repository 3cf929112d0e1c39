package events

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenStep is one event of the golden history: a person is asked, says
// no, later agrees (with evidence and an expiry), then withdraws.
type goldenStep struct {
	file string
	kind Kind
	id   string
	now  time.Time
	cmd  Command
	hash string // pinned: a change here breaks every stored audit trail
}

func goldenHistory() []goldenStep {
	at := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	occurred := at("2026-03-02T08:59:58+01:00") // given by the caller, not in UTC
	key := Command{Tenant: "acme", SubjectID: "zoë@example.com", Purpose: "marketing_email"}
	with := func(f func(*Command)) Command { c := key; f(&c); return c }
	return []goldenStep{
		{
			file: "requested.v1.json", kind: KindRequest, id: "019cab10-6e00-7a3c-9d2e-4f5a6b7c8d01",
			now: at("2026-03-01T10:00:00.250Z"),
			cmd: with(func(c *Command) {
				c.PolicyVersion = 2
				c.Description = "Monthly product news by e-mail.\nUnsubscribe at any time."
				c.Actor = "signup-service"
				c.Method = "dialog"
			}),
			hash: "1f30466100d7222f19186f3e5021331293c77e6755e79eb59e7ea94c533fe014",
		},
		{
			file: "denied.v1.json", kind: KindDeny, id: "019cab10-7a38-7b11-8c3f-5e6a7b8c9d02",
			now: at("2026-03-01T10:00:03.5Z"),
			cmd: with(func(c *Command) {
				c.PolicyVersion = 2
				c.Actor = "subject"
				c.Method = "dialog"
				c.Reason = "not now"
			}),
			hash: "d20abda0d890b0cf8f615cd477099995e165ee75e03f05992b82930b0fc4554b",
		},
		{
			file: "granted.v1.json", kind: KindGrant, id: "019cb032-1c40-7d52-a1b4-6f7a8b9cad03",
			now: at("2026-03-02T08:00:00.123456789Z"),
			cmd: with(func(c *Command) {
				c.PolicyVersion = 2
				c.TTL = "8760h"
				c.Actor = "subject"
				c.Method = "dialog"
				c.OccurredAt = &occurred
				c.Evidence = json.RawMessage(`{"ui": "signup-form-v3", "locale": "de-DE", "checkbox": true, "score": 4.50, "ip": "203.0.113.7"}`)
				c.IdempotencyKey = "signup-7f3a"
			}),
			hash: "aa72a7ed75ad2b803b59d860c76805925efd470e444b4ded736caa69b5be0ff7",
		},
		{
			file: "revoked.v1.json", kind: KindRevoke, id: "019d1b7e-5a00-7e63-b2c5-7a8b9cadbe04",
			now: at("2026-03-23T17:45:00Z"),
			cmd: with(func(c *Command) {
				c.Actor = "support-desk"
				c.Method = "api"
				c.Reason = "asked by phone \"stop all e-mail\""
			}),
			hash: "2309d55e7c6ca789d5b1b7c182bd48495114a424c8cf2b9028bc35f93947d8c3",
		},
		{
			// Recorded by an authenticated user: recorded_by sorts
			// right after recorded_at.
			file: "granted_recorded_by.v1.json", kind: KindGrant, id: "019d5a2c-3c00-7f14-a3d6-8b9cadbecf05",
			now: at("2026-04-07T09:30:00Z"),
			cmd: with(func(c *Command) {
				c.PolicyVersion = 3
				c.Actor = "subject"
				c.RecordedBy = "support-7@acme"
				c.Method = "phone"
			}),
			hash: "ffdc22cccd79427577c7d49b42e2d53880e85808cd1572cc06b2fccde3c2811f",
		},
	}
}

// TestGoldenHistory pins the exact bytes and hash of one event of each
// type, and of a grant with recorded_by, chained as one consent's history. Run with -update to rewrite the
// files after a deliberate change (which needs a new schema version: old
// events must keep verifying).
func TestGoldenHistory(t *testing.T) {
	cur := NewConsent(Key{Tenant: "acme", SubjectID: "zoë@example.com", Purpose: "marketing_email"})
	prev := ""
	for seq, step := range goldenHistory() {
		t.Run(step.file, func(t *testing.T) {
			require.NoError(t, step.cmd.Validate(step.kind))
			ev, err := Decide(cur, step.kind, step.cmd, step.now)
			require.NoError(t, err)
			ev.ID = step.id
			payload, err := ev.Seal()
			require.NoError(t, err)

			path := filepath.Join("testdata", "golden", step.file)
			if *update {
				require.NoError(t, os.WriteFile(path, payload, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(payload), "canonical bytes of %s", step.file)
			assert.Equal(t, step.hash, ev.Hash, "pinned hash of %s", step.file)
			assert.Equal(t, prev, ev.PrevHash, "prev_hash links to the previous event")

			// The stored file decodes and verifies on its own.
			got, err := Decode(want)
			require.NoError(t, err)
			require.NoError(t, VerifyHash(want, got))
			assert.Equal(t, step.hash, got.Hash)

			prev = ev.Hash
			cur = Evolve(cur, &ev, uint64(seq+1))
		})
	}
	assert.Equal(t, StateGranted, cur.State)
}

// goldenSealedStep is one event of the v2 golden history.
type goldenSealedStep struct {
	file string
	id   string
	now  time.Time
	kind Kind // "" for the erasure
	cmd  Command
	hash string // pinned, as in goldenStep
}

// TestGoldenSealedHistory pins the bytes and hashes of schema version 2:
// a consent requested, granted (with evidence) and revoked with its
// personal fields sealed under the published test data key (testDataKey,
// nonces from fixedNonce), then erased, then requested again on a fresh
// chain. Each file verifies without the key and opens with it.
func TestGoldenSealedHistory(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v
	}
	key := Command{Tenant: "acme", SubjectID: "zoë@example.com", Purpose: "marketing_email"}
	with := func(f func(*Command)) Command { c := key; f(&c); return c }
	steps := []goldenSealedStep{
		{file: "requested.v2.json", id: "019e0a10-6e00-7a3c-9d2e-4f5a6b7c8d11", now: at("2026-05-04T10:00:00Z"), kind: KindRequest,
			cmd: with(func(c *Command) {
				c.PolicyVersion = 2
				c.Description = "Monthly product news by e-mail."
				c.Actor = "signup-service"
				c.Method = "dialog"
			}),
			hash: "420088f428541da3e7b7a53a04924dca472c3b218d349b23ceb74706436ccb63",
		},
		{file: "granted.v2.json", id: "019e0a10-7a38-7b11-8c3f-5e6a7b8c9d12", now: at("2026-05-04T10:00:05.5Z"), kind: KindGrant,
			cmd: with(func(c *Command) {
				c.PolicyVersion = 2
				c.TTL = "8760h"
				c.Actor = "subject"
				c.RecordedBy = "support-7@acme"
				c.Method = "dialog"
				c.Evidence = json.RawMessage(`{"ui": "signup-form-v3", "ip": "203.0.113.7", "score": 4.50}`)
			}),
			hash: "05feeb2c7934ec54721cea8c46c0b5348794fcbbc631dc3164788a12657dd6d8",
		},
		{file: "revoked.v2.json", id: "019e0a10-8a38-7b11-8c3f-5e6a7b8c9d13", now: at("2026-05-20T17:45:00Z"), kind: KindRevoke,
			cmd: with(func(c *Command) {
				c.Actor = "support-desk"
				c.Method = "api"
				c.Reason = "asked by phone \"stop all e-mail\""
			}),
			hash: "63d925bd08cb0f0de0b50e289b8abad710ecc2ffd4b91b8be05b110e7423eef6",
		},
		{file: "erased.v2.json", id: "019e0a10-9a38-7b11-8c3f-5e6a7b8c9d14", now: at("2026-06-01T09:00:00Z"),
			cmd:  Command{Reason: "erasure requested under GDPR Art. 17 (ticket 4711)", RecordedBy: "dpo@acme"},
			hash: "db3d194b324e6767f78cf3f41508e39dfe232c5df2c62ca6cdb21ed95354f3c0",
		},
		{file: "requested_after_erasure.v2.json", id: "019e0a10-aa38-7b11-8c3f-5e6a7b8c9d15", now: at("2026-07-01T08:00:00Z"), kind: KindRequest,
			cmd:  with(func(c *Command) { c.PolicyVersion = 3; c.Actor = "signup-service" }),
			hash: "14a6b2fa55230c3015fa3b3a775a08b0538a05029d69e160b2e29f637ab8bb70",
		},
	}
	cur := NewConsent(Key{Tenant: "acme", SubjectID: "zoë@example.com", Purpose: "marketing_email", SubjectKey: testSubjectKey})
	prev := ""
	for seq, step := range steps {
		t.Run(step.file, func(t *testing.T) {
			var ev Event
			var payload []byte
			var err error
			if step.kind == "" {
				ev, err = DecideErase(cur, Erase{Reason: step.cmd.Reason, RecordedBy: step.cmd.RecordedBy}, step.now)
				require.NoError(t, err)
				ev.ID = step.id
				payload, err = ev.Seal()
			} else {
				require.NoError(t, step.cmd.Validate(step.kind))
				ev, err = Decide(cur, step.kind, step.cmd, step.now)
				require.NoError(t, err)
				ev.ID = step.id
				payload, err = ev.sealWith(testDataKey(), fixedNonce(step.id))
			}
			require.NoError(t, err)

			path := filepath.Join("testdata", "golden", step.file)
			if *update {
				require.NoError(t, os.WriteFile(path, payload, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(payload), "canonical bytes of %s", step.file)
			assert.Equal(t, step.hash, ev.Hash, "pinned hash of %s", step.file)
			assert.Equal(t, prev, ev.PrevHash, "prev_hash links to the previous event (\"\" after the erasure)")
			assert.NotContains(t, string(want), "zoë", "no personal data in the clear")

			// The stored file decodes and verifies without the key,
			// and opens with it.
			got, err := Decode(want)
			require.NoError(t, err)
			require.NoError(t, VerifyHash(want, got))
			_, check, err := CheckMessage("consent.events.acme.marketing_email."+testSubjectKey, string(got.Type), want, false)
			require.NoError(t, err)
			assert.Empty(t, check)
			require.NoError(t, got.Open(testDataKey()))
			assert.Equal(t, &ev, got)

			prev = ev.Hash
			if step.kind == "" {
				prev = ""
			}
			cur = Evolve(cur, &ev, uint64(seq+1))
		})
	}
	assert.Equal(t, StateRequested, cur.State)
}
