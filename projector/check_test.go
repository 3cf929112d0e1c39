package projector

import (
	"bytes"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckEvent(t *testing.T) {
	k := events.Key{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "marketing_email"}
	ev, err := events.Decide(events.NewConsent(k), events.KindGrant, events.Command{
		Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose,
	}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	ev.ID = "0190f1e2-0000-7000-8000-000000000001"
	good := sealed(t, ev)
	newer := ev
	newer.V = events.SchemaVersion + 1
	unknown := ev
	unknown.Type = "consent.paused"
	subj := k.NATSSubject()
	granted := string(events.TypeGranted)

	tests := []struct {
		name      string
		subj      string
		header    string
		payload   []byte
		wantCheck string
		wantErr   error
	}{
		{"valid", subj, granted, good, "", nil},
		{"newer schema", subj, granted, sealed(t, newer), checkStop, events.ErrNewerSchema},
		{"newer schema, new field", subj, granted, resealedWith(t, sealed(t, newer), "channel", "sms"), checkStop, events.ErrNewerSchema},
		{"unknown type", subj, "consent.paused", sealed(t, unknown), checkStop, events.ErrUnknownType},
		{"unknown type, new field", subj, "consent.paused", resealedWith(t, sealed(t, unknown), "until", "x"), checkStop, events.ErrUnknownType},
		{"unknown field", subj, granted, resealedWith(t, good, "channel", "sms"), CheckDecode, events.ErrInvalid},
		{"not JSON", subj, granted, []byte("\x00garbage"), CheckDecode, events.ErrInvalid},
		{"JSON array", subj, granted, []byte(`[1,2]`), CheckDecode, events.ErrInvalid},
		{"empty type", subj, granted, []byte(`{"type":""}`), CheckDecode, events.ErrInvalid},
		{"type not a string", subj, granted, []byte(`{"v":1,"type":7}`), CheckDecode, events.ErrInvalid},
		{"missing header", subj, "", good, CheckHeader, nil},
		{"header disagrees", subj, string(events.TypeRevoked), good, CheckHeader, nil},
		{"other subject", events.Key{Tenant: k.Tenant, SubjectID: "bob", Purpose: k.Purpose}.NATSSubject(), granted, good, CheckSubject, nil},
		{"other purpose", "consent.events.acme.analytics." + events.SubjectKey(k.Tenant, k.SubjectID), granted, good, CheckSubject, nil},
		{"tampered", subj, granted, bytes.Replace(good, []byte(`"policy_version":1`), []byte(`"policy_version":2`), 1), CheckHash, events.ErrBadHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, check, err := checkEvent(tt.subj, tt.header, tt.payload)
			assert.Equal(t, tt.wantCheck, check)
			if tt.wantCheck == "" {
				require.NoError(t, err)
				require.NotNil(t, got)
				assert.Equal(t, ev.ID, got.ID)
				return
			}
			require.Error(t, err)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			}
		})
	}
}
