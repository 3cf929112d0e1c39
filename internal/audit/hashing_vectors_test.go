package audit_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// vectorsFile is the test vectors of docs/hashing.md.
var vectorsFile = filepath.Join("..", "..", "docs", "hashing-vectors.json")

var updateVectors = flag.Bool("update-vectors", false, "rewrite docs/hashing-vectors.json from the production code")

// hashVector is one hashed object of the vectors file: a consent event or
// a purpose record, with the NATS subject it is stored on.
type hashVector struct {
	Name        string `json:"name"`
	NATSSubject string `json:"nats_subject"`
	// Payload is the message as stored (canonical), or as another JSON
	// encoder might write it when Stored is false: its hash is the same.
	Payload   string `json:"payload"`
	Stored    bool   `json:"stored"`
	Canonical string `json:"canonical_without_hash"` // the exact bytes hashed
	Hash      string `json:"hash"`
	// For a v2 event with sealed personal fields: the (published, test
	// only) data key, the additional data and the plaintext, so that an
	// implementation can check its AES-256-GCM opening.
	DataKeyHex string `json:"data_key_hex,omitempty"`
	AAD        string `json:"aad,omitempty"`
	Plaintext  string `json:"plaintext,omitempty"`
}

// checkpointVector is one signed checkpoint and the messages it covers.
type checkpointVector struct {
	Name      string `json:"name"`
	Payload   string `json:"payload"`
	Signed    string `json:"canonical_without_signature"` // the exact bytes signed
	PublicKey string `json:"public_key_hex"`
	KeyID     string `json:"key_id"`
}

// chainVector is one message of the stream and the running chain after it.
type chainVector struct {
	Seq         uint64 `json:"seq"`
	NATSSubject string `json:"nats_subject"`
	Payload     string `json:"payload"`
	Chain       string `json:"chain"`
}

type hashingVectors struct {
	Comment     []string           `json:"comment"`
	Events      []hashVector       `json:"events"`
	Purposes    []hashVector       `json:"purposes"`
	Stream      []chainVector      `json:"stream"`
	Checkpoints []checkpointVector `json:"checkpoints"`
}

// TestHashingVectors recomputes every vector of docs/hashing-vectors.json
// with the production code: canonical bytes, hashes, subjects, the running
// chain and the checkpoint signature; -update-vectors rewrites the file.
func TestHashingVectors(t *testing.T) {
	if *updateVectors {
		data, err := json.MarshalIndent(buildVectors(t), "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(vectorsFile, append(data, '\n'), 0o644))
	}
	raw, err := os.ReadFile(vectorsFile)
	require.NoError(t, err)
	var v hashingVectors
	require.NoError(t, json.Unmarshal(raw, &v))
	require.NotEmpty(t, v.Events)
	require.NotEmpty(t, v.Purposes)
	require.NotEmpty(t, v.Checkpoints)
	assert.True(t, slices.ContainsFunc(v.Events, func(ev hashVector) bool { return strings.Contains(ev.Payload, `"recorded_by":`) }),
		"a vector covers recorded_by")

	for _, ev := range v.Events {
		t.Run("event "+ev.Name, func(t *testing.T) {
			checkHashVector(t, ev)
			decoded, err := events.Decode([]byte(ev.Payload))
			require.NoError(t, err)
			require.NoError(t, events.VerifyHash([]byte(ev.Payload), decoded))
			assert.True(t, decoded.Key().IsNATSSubject(ev.NATSSubject), "the subject is the consent's: tenant, purpose, subject key")
			if ev.Stored {
				resealed := *decoded
				payload, err := resealed.Seal()
				require.NoError(t, err)
				assert.Equal(t, ev.Payload, string(payload), "the ledger writes exactly this payload")
			}
			if ev.DataKeyHex != "" {
				checkSealedVector(t, ev, decoded)
			}
		})
	}
	assert.True(t, slices.ContainsFunc(v.Events, func(ev hashVector) bool { return ev.DataKeyHex != "" }), "a vector covers a sealed v2 event")
	for _, p := range v.Purposes {
		t.Run("purpose "+p.Name, func(t *testing.T) {
			checkHashVector(t, p)
			decoded, err := events.DecodePurposeEvent([]byte(p.Payload))
			require.NoError(t, err)
			assert.Equal(t, decoded.Key().NATSSubject(), p.NATSSubject)
			if p.Stored {
				resealed := *decoded
				payload, err := resealed.Seal()
				require.NoError(t, err)
				assert.Equal(t, p.Payload, string(payload))
			}
		})
	}
	chain := &audit.Chain{}
	heads := map[uint64]string{}
	for _, m := range v.Stream {
		require.NoError(t, chain.Add(m.Seq, m.NATSSubject, []byte(m.Payload)))
		assert.Equal(t, m.Chain, chain.HeadHex(), "chain at seq %d", m.Seq)
		heads[m.Seq] = m.Chain
	}
	for _, c := range v.Checkpoints {
		t.Run("checkpoint "+c.Name, func(t *testing.T) {
			pub, err := hex.DecodeString(c.PublicKey)
			require.NoError(t, err)
			assert.Equal(t, c.KeyID, audit.KeyID(pub))
			cp, err := audit.VerifyCheckpoint([]byte(c.Payload), audit.NewKeyring(pub))
			require.NoError(t, err)
			signed, err := events.Canonical([]byte(c.Payload), "signature")
			require.NoError(t, err)
			assert.Equal(t, c.Signed, string(signed))
			canonical, err := events.Canonical([]byte(c.Payload))
			require.NoError(t, err)
			assert.Equal(t, c.Payload, string(canonical), "stored canonical")
			assert.Equal(t, heads[cp.UpToSeq], cp.Chain, "the checkpoint states the chain at up_to_seq")
		})
	}
}

// checkSealedVector opens a v2 vector's sealed blob with plain AES-256-GCM
// (nonce = the first 12 bytes) and with events.Event.Open.
func checkSealedVector(t *testing.T, v hashVector, decoded *events.Event) {
	t.Helper()
	assert.Equal(t, v.AAD, string(events.SealedAAD(decoded.ID, decoded.SubjectKey)))
	key, err := hex.DecodeString(v.DataKeyHex)
	require.NoError(t, err)
	blob, err := base64.StdEncoding.DecodeString(decoded.Sealed)
	require.NoError(t, err)
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)
	plain, err := gcm.Open(nil, blob[:12], blob[12:], []byte(v.AAD))
	require.NoError(t, err)
	assert.Equal(t, v.Plaintext, string(plain))
	canonical, err := events.Canonical(plain)
	require.NoError(t, err)
	assert.Equal(t, string(canonical), string(plain), "the plaintext is canonical JSON")

	opened := *decoded
	require.NoError(t, opened.Open(events.DataKey{ID: decoded.KeyID, Key: key}))
	var p struct {
		Subject  string          `json:"subject"`
		Actor    string          `json:"actor"`
		Evidence json.RawMessage `json:"evidence"`
		Reason   string          `json:"reason"`
	}
	require.NoError(t, json.Unmarshal(plain, &p))
	assert.Equal(t, p.Subject, opened.SubjectID)
	assert.Equal(t, p.Actor, opened.Actor)
	assert.Equal(t, string(p.Evidence), string(opened.Evidence))
	assert.Equal(t, p.Reason, opened.Reason)
}

func checkHashVector(t *testing.T, v hashVector) {
	t.Helper()
	canonical, err := events.Canonical([]byte(v.Payload), "hash")
	require.NoError(t, err)
	assert.Equal(t, v.Canonical, string(canonical))
	sum := sha256.Sum256(canonical)
	assert.Equal(t, v.Hash, hex.EncodeToString(sum[:]))
	h, err := events.HashOf([]byte(v.Payload))
	require.NoError(t, err)
	assert.Equal(t, v.Hash, h)
	var member struct {
		Hash string `json:"hash"`
	}
	require.NoError(t, json.Unmarshal([]byte(v.Payload), &member))
	assert.Equal(t, v.Hash, member.Hash, "the payload carries its hash")
}

// TestHashingVectorsWithPython runs docs/verify_hash.py --vectors on the
// file, an implementation independent of the Go code, when python3 is
// installed.
func TestHashingVectorsWithPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	out, err := exec.Command(python, filepath.Join("..", "..", "docs", "verify_hash.py"), "--vectors", vectorsFile).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "vectors ok")
}

// buildVectors makes the vectors with the production code.
func buildVectors(t *testing.T) hashingVectors {
	at := time.Date(2026, 3, 2, 8, 0, 0, 123456789, time.UTC)
	v := hashingVectors{Comment: []string{
		"Test vectors for docs/hashing.md, checked by internal/audit/hashing_vectors_test.go (Go) and docs/verify_hash.py --vectors (Python).",
		"events, purposes: canonical_without_hash is the RFC 8785 encoding of payload without its top-level hash member; hash is the lowercase hex SHA-256 of its UTF-8 bytes.",
		"stored: true means payload is exactly the message the ledger writes; false means another encoding of the same object (whitespace, escapes), which hashes the same.",
		"stream: messages 1..n in stream order with the running chain H(n) = SHA-256(H(n-1) || uint64be(n) || SHA-256(subject) || SHA-256(payload)), H(0) = 32 zero bytes.",
		"checkpoints: ed25519 (public_key_hex) over canonical_without_signature; the checkpoint's chain must equal the stream's chain at its up_to_seq.",
		"events with data_key_hex (schema version 2): sealed is base64 of a 12-byte nonce and the AES-256-GCM ciphertext of plaintext with additional data aad, under the published test key data_key_hex; the hash and the subject (which uses the stored subject_key) need no key.",
	}}
	var stream [][2]string // subject, payload
	add := func(list *[]hashVector, name, subject string, payload []byte, stored bool) {
		canonical, err := events.Canonical(payload, "hash")
		require.NoError(t, err)
		h, err := events.HashOf(payload)
		require.NoError(t, err)
		*list = append(*list, hashVector{Name: name, NATSSubject: subject, Payload: string(payload), Stored: stored, Canonical: string(canonical), Hash: h})
		if stored {
			stream = append(stream, [2]string{subject, string(payload)})
		}
	}
	seal := func(ev *events.Event) []byte {
		payload, err := ev.Seal()
		require.NoError(t, err)
		return payload
	}

	// A consent's history: request, grant, revoke, with astral
	// characters, escapes and evidence numbers.
	request := events.Event{V: 1, ID: "019cab10-6e00-7a3c-9d2e-4f5a6b7c8d01", Type: events.TypeRequested, Tenant: "acme",
		SubjectID: "zoë 🎉@example.com", Purpose: "marketing_email", OccurredAt: at, RecordedAt: at, PolicyVersion: 3,
		Description: "Offers by email 𝄞\nline two\ttab \"quoted\" back\\slash / DEL\x7f U+2028\u2028 <&>", Actor: "signup-form"}
	add(&v.Events, "request: astral characters and escapes in strings", request.Key().NATSSubject(), seal(&request), true)

	grant := events.Event{V: 1, ID: "019cab10-7a38-7b11-8c3f-5e6a7b8c9d02", Type: events.TypeGranted, Tenant: "acme",
		SubjectID: request.SubjectID, Purpose: "marketing_email", OccurredAt: at.Add(time.Minute), RecordedAt: at.Add(time.Minute),
		PolicyVersion: 3, Actor: "subject", Method: "dialog", PrevHash: request.Hash,
		Evidence: json.RawMessage(`{"numbers":[4.50,1E21,1e-7,0.1,9007199254740992,-0,5e-324,1.7976931348623157e308,100000000000000000000,-1.5e-10],` +
			`"\ud83d\ude00":"astral name","\ufb33":"sorts after the astral name in UTF-16","\u00e9":"e-acute","a":{"hash":"a nested hash member is hashed","deep":[[[{}]]]},"esc":"\u0000\u001f\u007f\/"}`)}
	grant.ExpiresAt = ptr(at.AddDate(1, 0, 0))
	add(&v.Events, "grant: evidence numbers, UTF-16 member order, nested hash member", grant.Key().NATSSubject(), seal(&grant), true)

	revoke := events.Event{V: 1, ID: "019cab10-8a38-7b11-8c3f-5e6a7b8c9d03", Type: events.TypeRevoked, Tenant: "acme",
		SubjectID: request.SubjectID, Purpose: "marketing_email", OccurredAt: at.AddDate(0, 0, -20), RecordedAt: at.Add(2 * time.Minute),
		PolicyVersion: 3, Reason: "paper form\r\nreceived late", PrevHash: grant.Hash}
	revokePayload := seal(&revoke)
	add(&v.Events, "revoke: backdated (occurred_at before recorded_at), CRLF in reason", revoke.Key().NATSSubject(), revokePayload, true)

	// The same revoke as another encoder might write it.
	var generic map[string]any
	require.NoError(t, json.Unmarshal(revokePayload, &generic))
	indented, err := json.MarshalIndent(generic, "", "  ") // escapes <, >, & and reorders nothing it need not
	require.NoError(t, err)
	indented = bytes.Replace(indented, []byte(`"revoked`), []byte(`"\u0072evoked`), 1) // a needless escape: decoded before hashing
	add(&v.Events, "revoke again, indented and with a needless escape: same hash", revoke.Key().NATSSubject(), indented, false)

	expired := events.Event{V: 1, ID: "019cab10-9a38-7b11-8c3f-5e6a7b8c9d04", Type: events.TypeExpired, Tenant: "default",
		SubjectID: "cafe\u0301 (NFD, written before subject ids were normalised)", Purpose: "analytics", OccurredAt: at, RecordedAt: at.Add(time.Second),
		PolicyVersion: events.MaxPolicyVersion, Actor: events.ExpiryActor, ExpiresAt: ptr(at)}
	add(&v.Events, "expired: old NFD subject id, hashed and keyed as stored; policy_version at its bound", expired.Key().NATSSubject(), seal(&expired), true)

	quarantined := events.Event{V: 1, ID: "019cab10-aa38-7b11-8c3f-5e6a7b8c9d05", Type: events.TypeQuarantined, Tenant: "acme",
		SubjectID: request.SubjectID, Purpose: "marketing_email", OccurredAt: at.Add(3 * time.Minute), RecordedAt: at.Add(3 * time.Minute),
		PolicyVersion: 3, Actor: "ops-oncall", Reason: "stray publish at seq 4, not written by the ledger", PrevHash: revoke.Hash,
		State: events.StateRevoked, QuarantinedSeq: 4}
	add(&v.Events, "quarantined: sets aside seq 4, resumes the revoked state", quarantined.Key().NATSSubject(), seal(&quarantined), true)

	// Purpose records.
	desc, ttl := "Offers by email", "8760h"
	p1 := events.PurposeEvent{V: 1, ID: "019cab10-5a00-7a3c-9d2e-4f5a6b7c8d00", Type: events.TypePurposeSet, Tenant: "acme", Purpose: "marketing_email",
		Description: desc + " — € 🎉", PolicyVersion: 2, DefaultTTL: ttl, Actor: "legal", OccurredAt: at.Add(-time.Hour), RecordedAt: at.Add(-time.Hour)}
	payload, err := p1.Seal()
	require.NoError(t, err)
	add(&v.Purposes, "purpose.set: first version", p1.Key().NATSSubject(), payload, true)
	p2 := events.PurposeEvent{V: 1, ID: "019cab10-5b00-7a3c-9d2e-4f5a6b7c8d0a", Type: events.TypePurposeSet, Tenant: "acme", Purpose: "marketing_email",
		Description: p1.Description, PolicyVersion: 3, Actor: "legal", OccurredAt: at.Add(-time.Minute), RecordedAt: at.Add(-time.Minute), PrevHash: p1.Hash}
	payload, err = p2.Seal()
	require.NoError(t, err)
	add(&v.Purposes, "purpose.set: policy version 3, default ttl cleared, chained", p2.Key().NATSSubject(), payload, true)

	// The stream in order: purposes first (set before the consents), then
	// the events, then a checkpoint over them.
	order := slices.Concat(stream[len(stream)-2:], stream[:len(stream)-2])
	chain := &audit.Chain{}
	for i, m := range order {
		seq := uint64(i + 1)
		require.NoError(t, chain.Add(seq, m[0], []byte(m[1])))
		v.Stream = append(v.Stream, chainVector{Seq: seq, NATSSubject: m[0], Payload: m[1], Chain: chain.HeadHex()})
	}
	seed := sha256.Sum256([]byte("consent ledger hashing vectors: a published test key, never use it"))
	signer := audit.NewSigner(ed25519.NewKeyFromSeed(seed[:]))
	_, cpPayload, err := audit.NewCheckpoint(signer, chain, at.Add(time.Hour))
	require.NoError(t, err)
	signed, err := events.Canonical(cpPayload, "signature")
	require.NoError(t, err)
	v.Checkpoints = append(v.Checkpoints, checkpointVector{Name: "checkpoint over the stream above", Payload: string(cpPayload),
		Signed: string(signed), PublicKey: hex.EncodeToString(signer.Public()), KeyID: signer.KeyID()})
	seq := uint64(len(order) + 1)
	require.NoError(t, chain.Add(seq, events.CheckpointSubject, cpPayload))
	v.Stream = append(v.Stream, chainVector{Seq: seq, NATSSubject: events.CheckpointSubject, Payload: string(cpPayload), Chain: chain.HeadHex()})

	// After the checkpoint (so that the vectors above stay as they were):
	// a grant recorded by an authenticated user, with recorded_by.
	regrant := events.Event{V: 1, ID: "019cab10-ba38-7b11-8c3f-5e6a7b8c9d06", Type: events.TypeGranted, Tenant: "acme",
		SubjectID: request.SubjectID, Purpose: "marketing_email", OccurredAt: at.Add(2 * time.Hour), RecordedAt: at.Add(2 * time.Hour),
		PolicyVersion: 3, Actor: "subject", RecordedBy: "support-7@acme", Method: "phone", PrevHash: quarantined.Hash}
	payload = seal(&regrant)
	add(&v.Events, "grant recorded by an authenticated user: recorded_by, after recorded_at", regrant.Key().NATSSubject(), payload, true)
	seq++
	require.NoError(t, chain.Add(seq, regrant.Key().NATSSubject(), payload))
	v.Stream = append(v.Stream, chainVector{Seq: seq, NATSSubject: regrant.Key().NATSSubject(), Payload: string(payload), Chain: chain.HeadHex()})

	// Schema version 2: a grant with its personal fields sealed, sealed
	// here with plain AES-256-GCM (not through events.SealWith) under a
	// published test key and a fixed nonce, then the erasure of that
	// consent. The subject key stands for a keyed one (it is stored, not
	// recomputed).
	const subjectKey = "5e1f0c2a9b7d4e3f8a6c1b0d2e4f6a8c"
	dk := sha256.Sum256([]byte("consent ledger hashing vectors: a published test data key, never use it"))
	nonce := sha256.Sum256([]byte("consent ledger hashing vectors: a fixed nonce, never do this"))
	sealed := events.Event{V: 2, ID: "019cab10-ca38-7b11-8c3f-5e6a7b8c9d07", Type: events.TypeGranted, Tenant: "acme",
		SubjectKey: subjectKey, KeyID: "dk-vectors-1", Purpose: "marketing_email", OccurredAt: at.Add(3 * time.Hour),
		RecordedAt: at.Add(3 * time.Hour), PolicyVersion: 3, Method: "dialog", RecordedBy: "support-7@acme", ExpiresAt: ptr(at.AddDate(1, 0, 0))}
	aad := `{"id":"` + sealed.ID + `","subject_key":"` + subjectKey + `"}`
	plaintext := `{"actor":"subject","evidence":{"ip":"203.0.113.7","ui":"form-v3"},"subject":"zoë 🎉@example.com"}`
	block, err := aes.NewCipher(dk[:])
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)
	sealed.Sealed = base64.StdEncoding.EncodeToString(gcm.Seal(bytes.Clone(nonce[:12]), nonce[:12], []byte(plaintext), []byte(aad)))
	payload = seal(&sealed)
	add(&v.Events, "v2 grant: personal fields sealed (AES-256-GCM, data_key_hex, aad, plaintext); verifies without the key", sealed.Key().NATSSubject(), payload, true)
	last := &v.Events[len(v.Events)-1]
	last.DataKeyHex, last.AAD, last.Plaintext = hex.EncodeToString(dk[:]), aad, plaintext

	erased := events.Event{V: 2, ID: "019cab10-da38-7b11-8c3f-5e6a7b8c9d08", Type: events.TypeErased, Tenant: "acme",
		SubjectKey: subjectKey, Purpose: "marketing_email", OccurredAt: at.Add(4 * time.Hour), RecordedAt: at.Add(4 * time.Hour),
		PolicyVersion: 3, RecordedBy: "dpo@acme", Reason: "erasure requested (ticket 4711)", PrevHash: sealed.Hash}
	add(&v.Events, "v2 consent.erased: no personal data, the operator's reason in the clear, links to the grant", erased.Key().NATSSubject(), seal(&erased), true)
	return v
}

func ptr[T any](v T) *T { return &v }
