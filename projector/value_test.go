package projector

import (
	"math"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConsentValueRoundTrip(t *testing.T) {
	k := events.Key{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email"}
	expires := time.Date(2027, 3, 4, 5, 6, 7, 8, time.UTC)
	tests := map[string]events.Consent{
		"granted with expiry": {State: events.StateGranted, PolicyVersion: 3, UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.UTC),
			ExpiresAt: &expires, Seq: 1 << 40, EventID: "01J0000000000000000000000", Hash: "ab12"},
		"requested":  {State: events.StateRequested, PolicyVersion: 1, UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Seq: 1, EventID: "e", Hash: "h"},
		"zero times": {State: events.StateDenied},
		"far future": {State: events.StateGranted, PolicyVersion: math.MaxInt32, UpdatedAt: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
			Seq: math.MaxUint64},
		"before 1970": {State: events.StateRevoked, UpdatedAt: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)},
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			c.Tenant, c.SubjectID, c.Purpose = k.Tenant, k.SubjectID, k.Purpose
			got, err := decodeConsent(appendConsent(nil, &c), k)
			require.NoError(t, err)
			assert.Equal(t, c, got)
		})
	}
}

func TestConsentValueReadsTimesInUTC(t *testing.T) {
	k := events.Key{Tenant: "t", SubjectID: "s", Purpose: "p"}
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	got, err := decodeConsent(appendConsent(nil, &events.Consent{State: events.StateGranted, UpdatedAt: at, ExpiresAt: &at}), k)
	require.NoError(t, err)
	assert.Equal(t, at.UTC(), got.UpdatedAt)
	assert.True(t, at.Equal(*got.ExpiresAt))
	assert.Equal(t, time.UTC, got.ExpiresAt.Location())
}

func TestConsentValueRefusesOtherFormats(t *testing.T) {
	k := events.Key{Tenant: "t", SubjectID: "s", Purpose: "p"}
	good := appendConsent(nil, &events.Consent{State: events.StateGranted, EventID: "id"})
	for name, v := range map[string][]byte{
		"empty":         nil,
		"newer format":  append([]byte{consentFormat + 1}, good[1:]...),
		"truncated":     good[:len(good)-1],
		"trailing byte": append(append([]byte{}, good...), 0),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeConsent(v, k)
			require.ErrorIs(t, err, errBadValue)
		})
	}
}

// FuzzDecodeConsent feeds arbitrary bytes to the value decoder: it must
// not panic, and whatever it accepts must survive a round trip.
func FuzzDecodeConsent(f *testing.F) {
	expires := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Add(appendConsent(nil, &events.Consent{State: events.StateGranted, PolicyVersion: 2, ExpiresAt: &expires, Seq: 7, EventID: "e", Hash: "h"}))
	f.Add([]byte{consentFormat})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k := events.Key{Tenant: "t", SubjectID: "s", Purpose: "p"}
		c, err := decodeConsent(b, k)
		if err != nil {
			require.ErrorIs(t, err, errBadValue)
			return
		}
		again, err := decodeConsent(appendConsent(nil, &c), k)
		require.NoError(t, err)
		require.Equal(t, c, again)
	})
}
