package events

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorded_by is set by the service from the authenticated identity: a
// body cannot carry it, whatever the endpoint.
func TestRecordedByIsNotPartOfABody(t *testing.T) {
	_, err := DecodeCommand([]byte(`{"subject":"alice@example.com","purpose":"marketing_email","recorded_by":"mallory@acme"}`))
	assertFieldError(t, err, "recorded_by")
	assert.ErrorContains(t, err, "not a known field")
	_, err = DecodeCommand([]byte(`{"subject":"alice@example.com","purpose":"marketing_email","RecordedBy":"mallory@acme"}`))
	assertFieldError(t, err, "RecordedBy")

	var p PurposeCommand
	assertFieldError(t, DecodeStrict([]byte(`{"purpose":"marketing_email","recorded_by":"mallory@acme"}`), &p), "recorded_by")
	var q Quarantine
	assertFieldError(t, DecodeStrict([]byte(`{"seq":4,"reason":"r","actor":"ops","recorded_by":"mallory@acme"}`), &q), "recorded_by")

	c, err := DecodeCommand([]byte(`{"subject":"alice@example.com","purpose":"marketing_email"}`))
	require.NoError(t, err)
	assert.Empty(t, c.RecordedBy)
}

func TestValidateRecordedBy(t *testing.T) {
	for _, ok := range []string{"", "alice@acme", "admin@_all", strings.Repeat("u", MaxRecordedByLen-5) + "@acme"} {
		c := command(func(c *Command) { c.RecordedBy = ok })
		assert.NoError(t, c.Validate(KindGrant), "%q", ok)
	}
	for name, bad := range map[string]string{
		"too long":         strings.Repeat("u", MaxRecordedByLen-4) + "@acme",
		"control":          "alice\n@acme",
		"invalid UTF-8":    "alice\xff@acme",
		"C1 control (NEL)": "alice\u0085@acme",
	} {
		t.Run(name, func(t *testing.T) {
			c := command(func(c *Command) { c.RecordedBy = bad })
			assertFieldError(t, c.Validate(KindGrant), "recorded_by")
			p := PurposeCommand{Purpose: "marketing_email", RecordedBy: bad}
			assertFieldError(t, p.Validate(), "recorded_by")
			q := Quarantine{Seq: 4, Reason: "r", Actor: "ops", RecordedBy: bad}
			assertFieldError(t, q.Validate(), "recorded_by")
		})
	}
}

func TestDecideRecordsRecordedBy(t *testing.T) {
	c := command(func(c *Command) { c.Actor = "subject"; c.RecordedBy = "alice@acme" })
	require.NoError(t, c.Validate(KindGrant))
	ev, err := Decide(NewConsent(testKey), KindGrant, c, t0)
	require.NoError(t, err)
	assert.Equal(t, "alice@acme", ev.RecordedBy)
	assert.Equal(t, "subject", ev.Actor, "actor stays who gave the consent")

	ev, err = Decide(NewConsent(testKey), KindGrant, command(nil), t0)
	require.NoError(t, err)
	assert.Empty(t, ev.RecordedBy, "recorded without authentication")

	pe, err := DecidePurpose(NewPurpose(PurposeKey{Tenant: "acme", Purpose: "marketing_email"}),
		PurposeCommand{Purpose: "marketing_email", Actor: "legal", RecordedBy: "admin@_all"}, t0)
	require.NoError(t, err)
	assert.Equal(t, "admin@_all", pe.RecordedBy)

	granted := consentIn(t, StateGranted)
	qe := DecideQuarantine(granted, Quarantine{Seq: 7, Reason: "stray publish", Actor: "ops", RecordedBy: "ops-1@acme"}, t0)
	assert.Equal(t, "ops-1@acme", qe.RecordedBy)
	assert.Equal(t, "ops", qe.Actor)

	expiring := apply(t, NewConsent(testKey), KindGrant, command(func(c *Command) { c.TTL = "1h"; c.RecordedBy = "alice@acme" }), t0)
	xe, err := DecideExpiry(expiring, t0.Add(2*time.Hour))
	require.NoError(t, err)
	assert.Empty(t, xe.RecordedBy, "the ledger records an expiry itself")
}

// A sealed event carries recorded_by in its canonical place, right after
// recorded_at, when it is set and not at all when it is not; both seal
// paths write the same bytes, and both decode paths read it back.
func TestSealAndDecodeRecordedBy(t *testing.T) {
	for _, recordedBy := range []string{"alice@acme", "", "ünï \"q\" \\ \u2028@acme"} {
		t.Run(recordedBy, func(t *testing.T) {
			c := command(func(c *Command) { c.Actor = "subject"; c.RecordedBy = recordedBy })
			ev, err := Decide(NewConsent(testKey), KindGrant, c, t0)
			require.NoError(t, err)
			ev.ID = "ev-1"

			general := ev
			want, err := general.sealGeneral()
			require.NoError(t, err)
			fast := ev
			got, ok := fast.sealFast()
			require.True(t, ok, "the direct path takes an event with recorded_by")
			assert.Equal(t, string(want), string(got))
			assert.Equal(t, general.Hash, fast.Hash)

			if recordedBy == "" {
				assert.NotContains(t, string(got), "recorded_by", "omitted when not set: events recorded before keep their hash")
			} else {
				assert.Contains(t, string(got), `"recorded_at":"2026-03-01T12:00:00Z","recorded_by":`)
			}

			decoded, err := DecodeOwnedVerified(bytes.Clone(got))
			require.NoError(t, err)
			assert.Equal(t, recordedBy, decoded.RecordedBy)
			var slow Event
			require.NoError(t, DecodeStrict(got, &slow))
			assert.Equal(t, recordedBy, slow.RecordedBy)
			checkFastPaths(t, got)

			// Changing who recorded it breaks the hash.
			if recordedBy != "" {
				forged := bytes.Replace(got, []byte(`"recorded_by":"alice@acme"`), []byte(`"recorded_by":"mallory@acme"`), 1)
				if !bytes.Equal(forged, got) {
					e, err := Decode(forged)
					require.NoError(t, err)
					assert.ErrorIs(t, VerifyHash(forged, e), ErrBadHash)
				}
			}
		})
	}
}

func TestPurposeEventSealsRecordedBy(t *testing.T) {
	pe := PurposeEvent{V: 1, ID: "p-1", Type: TypePurposeSet, Tenant: "acme", Purpose: "marketing_email", PolicyVersion: 1,
		Actor: "legal", RecordedBy: "admin@_all", OccurredAt: t0, RecordedAt: t0}
	payload, err := pe.Seal()
	require.NoError(t, err)
	assert.Contains(t, string(payload), `"recorded_at":"2026-03-01T12:00:00Z","recorded_by":"admin@_all"`)
	got, err := DecodePurposeEvent(payload)
	require.NoError(t, err)
	assert.Equal(t, "admin@_all", got.RecordedBy)

	pe.RecordedBy = ""
	payload, err = pe.Seal()
	require.NoError(t, err)
	assert.NotContains(t, string(payload), "recorded_by")
}
