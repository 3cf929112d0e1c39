package audit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// event returns an event of the consent k with the given times (minutes
// after t0), hashed; expiry, when set, is minutes after t0 too.
func event(k events.Key, typ events.Type, occurred, recorded int, expiry ...int) *events.Event {
	ev := &events.Event{V: 1, ID: fmt.Sprintf("%s-%d", typ, recorded), Type: typ, Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: k.Purpose,
		OccurredAt: t0.Add(time.Duration(occurred) * time.Minute), RecordedAt: t0.Add(time.Duration(recorded) * time.Minute), PolicyVersion: 1}
	if len(expiry) > 0 {
		at := t0.Add(time.Duration(expiry[0]) * time.Minute)
		ev.ExpiresAt = &at
	}
	if _, err := ev.Seal(); err != nil {
		panic(err)
	}
	return ev
}

func TestPointInTime(t *testing.T) {
	k := events.Key{Tenant: "default", SubjectID: "alice@example.com", Purpose: "marketing_email"}
	// A request, a grant that expires at minute 100, and a revocation the
	// person made at minute 30 that was only recorded (imported) at
	// minute 60.
	history := []*events.Event{
		event(k, events.TypeRequested, 0, 0),
		event(k, events.TypeGranted, 10, 10, 100),
		event(k, events.TypeRevoked, 30, 60),
	}
	minute := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	tests := []struct {
		name   string
		at     time.Time
		by     audit.TimeBasis
		state  events.State
		seq    uint64
		events int
	}{
		{"before anything", minute(-1), audit.ByRecorded, events.StateNone, 0, 0},
		{"at the request, inclusive", minute(0), audit.ByRecorded, events.StateRequested, 1, 1},
		{"granted", minute(20), audit.ByRecorded, events.StateGranted, 2, 2},
		{"the revocation had happened but was not recorded", minute(40), audit.ByRecorded, events.StateGranted, 2, 2},
		{"as the ledger knows it now, it had happened", minute(40), audit.ByOccurred, events.StateRevoked, 3, 3},
		{"recorded at last", minute(60), audit.ByRecorded, events.StateRevoked, 3, 3},
		{"occurred basis before the revocation", minute(20), audit.ByOccurred, events.StateGranted, 2, 2},
		{"default basis is recorded", minute(40), "", events.StateGranted, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := audit.NewPointInTime(k, tt.at, tt.by)
			for i, ev := range history {
				if !p.Add(uint64(i+1), ev) {
					break
				}
			}
			st := p.Status()
			assert.Equal(t, tt.state, st.State)
			assert.Equal(t, tt.seq, st.Seq)
			assert.Equal(t, tt.events, st.Events)
			assert.True(t, tt.at.Equal(st.At))
			assert.Zero(t, st.IndexSeq)
		})
	}

	t.Run("expiry is judged at the time asked", func(t *testing.T) {
		short := []*events.Event{event(k, events.TypeGranted, 0, 0, 50)}
		for at, want := range map[int]events.State{49: events.StateGranted, 50: events.StateExpired, 70: events.StateExpired} {
			p := audit.NewPointInTime(k, minute(at), audit.ByRecorded)
			p.Add(1, short[0])
			st := p.Status()
			assert.Equal(t, want, st.State, "at minute %d", at)
			assert.Equal(t, want == events.StateGranted, st.Allowed, "at minute %d", at)
		}
	})

	t.Run("by recorded time the fold stops at the first later event", func(t *testing.T) {
		p := audit.NewPointInTime(k, minute(20), audit.ByRecorded)
		assert.True(t, p.Add(1, history[0]))
		assert.True(t, p.Add(2, history[1]))
		assert.False(t, p.Add(3, history[2]))
		assert.False(t, p.Add(4, history[0]), "and stays stopped")
	})
}

func TestStatusAtQueryValidate(t *testing.T) {
	ok := audit.StatusAtQuery{SubjectID: "a", Purpose: "p", At: t0}
	require.NoError(t, ok.Validate())
	for field, q := range map[string]audit.StatusAtQuery{
		"at":      {SubjectID: "a", Purpose: "p"},
		"by":      {SubjectID: "a", Purpose: "p", At: t0, By: "stored"},
		"purpose": {SubjectID: "a", Purpose: "P!", At: t0},
		"subject": {Purpose: "p", At: t0},
		"tenant":  {Tenant: "Bad Tenant", SubjectID: "a", Purpose: "p", At: t0},
	} {
		var fe *events.FieldError
		require.ErrorAs(t, q.Validate(), &fe, field)
		assert.Equal(t, field, fe.Field)
	}
}
