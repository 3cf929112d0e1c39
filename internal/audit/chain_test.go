package audit_test

import (
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The chain values are pinned by an independent computation (Python's
// hashlib, as docs/audit.md shows), so that the format cannot drift.
func TestChainVectors(t *testing.T) {
	var c audit.Chain
	assert.Equal(t, "0000000000000000000000000000000000000000000000000000000000000000", c.HeadHex())
	require.NoError(t, c.Add(1, "consent.events.default.marketing_email.dab6caca511cd6a9f2dee90c3f74677b", []byte(`{"v":1}`)))
	assert.Equal(t, "9b4f228ababc64d4e69ef2240d42d6dd279ef82bcf2c34fd6679b399fd469524", c.HeadHex())
	require.NoError(t, c.Add(2, events.CheckpointSubject, nil))
	assert.Equal(t, "7f7558fa8a515edfb5a70ff965c528b441d9a86e6e4feb2987a274aa945645b6", c.HeadHex())
	assert.Equal(t, uint64(2), c.Seq)

	err := c.Add(4, "x", nil)
	require.ErrorIs(t, err, audit.ErrChainOrder)
	assert.Equal(t, uint64(2), c.Seq, "a refused message leaves the chain as it was")

	resumed, err := audit.ChainAt(1, "9b4f228ababc64d4e69ef2240d42d6dd279ef82bcf2c34fd6679b399fd469524")
	require.NoError(t, err)
	require.NoError(t, resumed.Add(2, events.CheckpointSubject, nil))
	assert.Equal(t, c.Head, resumed.Head, "a chain resumed from a checkpoint continues the same")

	_, err = audit.ChainAt(1, "not hex")
	require.Error(t, err)
}

func TestStateDigestIsOrderIndependentAndReversible(t *testing.T) {
	states := []events.Consent{
		{Tenant: "default", SubjectID: "a", Purpose: "p", State: events.StateGranted, PolicyVersion: 1, Seq: 1, EventID: "e1", Hash: "h1"},
		{Tenant: "default", SubjectID: "b", Purpose: "p", State: events.StateDenied, PolicyVersion: 2, Seq: 2, EventID: "e2", Hash: "h2"},
		{Tenant: "acme", SubjectID: "a", Purpose: "q", State: events.StateRequested, PolicyVersion: 1, Seq: 3, EventID: "e3", Hash: "h3"},
	}
	var forward, backward audit.StateDigest
	for i := range states {
		forward.Add(audit.ConsentEntry(&states[i]))
		backward.Add(audit.ConsentEntry(&states[len(states)-1-i]))
	}
	assert.Equal(t, forward.Sum(), backward.Sum())
	assert.Equal(t, uint64(3), forward.Count())

	changed := states[1]
	changed.PolicyVersion = 3
	forward.Remove(audit.ConsentEntry(&states[1]))
	forward.Add(audit.ConsentEntry(&changed))
	assert.NotEqual(t, backward.Sum(), forward.Sum())
	forward.Remove(audit.ConsentEntry(&changed))
	forward.Add(audit.ConsentEntry(&states[1]))
	assert.Equal(t, backward.Sum(), forward.Sum(), "remove undoes add")

	var empty audit.StateDigest
	for i := range states {
		forward.Remove(audit.ConsentEntry(&states[i]))
	}
	assert.Equal(t, empty.Sum(), forward.Sum())
	assert.Zero(t, forward.Count())
}

func TestConsentEntryCoversEveryField(t *testing.T) {
	at := t0.Add(time.Hour)
	base := events.Consent{Tenant: "default", SubjectID: "a", Purpose: "p", State: events.StateGranted, PolicyVersion: 1,
		UpdatedAt: t0, ExpiresAt: &at, Seq: 1, EventID: "e1", Hash: "h1"}
	later := at.Add(time.Nanosecond)
	for name, edit := range map[string]func(c *events.Consent){
		"tenant":                   func(c *events.Consent) { c.Tenant = "acme" },
		"subject":                  func(c *events.Consent) { c.SubjectID = "b" },
		"purpose":                  func(c *events.Consent) { c.Purpose = "q" },
		"state":                    func(c *events.Consent) { c.State = events.StateRevoked },
		"policy version":           func(c *events.Consent) { c.PolicyVersion = 2 },
		"updated_at":               func(c *events.Consent) { c.UpdatedAt = c.UpdatedAt.Add(time.Nanosecond) },
		"no expiry":                func(c *events.Consent) { c.ExpiresAt = nil },
		"expires_at":               func(c *events.Consent) { c.ExpiresAt = &later },
		"seq":                      func(c *events.Consent) { c.Seq = 2 },
		"event id":                 func(c *events.Consent) { c.EventID = "e2" },
		"hash":                     func(c *events.Consent) { c.Hash = "h2" },
		"subject/purpose boundary": func(c *events.Consent) { c.SubjectID, c.Purpose = "ap", "" },
	} {
		changed := base
		edit(&changed)
		assert.NotEqual(t, audit.ConsentEntry(&base), audit.ConsentEntry(&changed), name)
	}
	elsewhere := base
	elsewhere.UpdatedAt = base.UpdatedAt.In(time.FixedZone("CET", 3600))
	assert.Equal(t, audit.ConsentEntry(&base), audit.ConsentEntry(&elsewhere), "the same instant in another location")
}
