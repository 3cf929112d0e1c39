package changefeed_test

import (
	"errors"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/changefeed"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
)

// A watch's filters cover the consent events and the purpose registry of
// its tenant ("default" when none, every tenant for "*") and purposes.
func TestFiltersCoverTheConsentsAndPurposesOfTheWatch(t *testing.T) {
	assert.Equal(t, []string{"consent.events.default.*.*", "consent.purposes.default.*"}, (&changefeed.Spec{}).Filters())
	assert.Equal(t, []string{"consent.events.*.*.*", "consent.purposes.*.*"}, (&changefeed.Spec{Tenant: "*"}).Filters())
	assert.Equal(t, []string{"consent.events.acme.news.*", "consent.purposes.acme.news", "consent.events.acme.ads.*", "consent.purposes.acme.ads"},
		(&changefeed.Spec{Tenant: "acme", Purposes: []string{"news", "ads"}}).Filters())
}

// Validate names the field of the first problem.
func TestValidateNamesTheField(t *testing.T) {
	for field, s := range map[string]changefeed.Spec{
		"tenant":   {Tenant: "Acme"},
		"purpose":  {Purposes: []string{"News"}},
		"start":    {StartSeq: 3, StartTime: time.Now()},
		"durable":  {Durable: "a.b"},
		"ack_wait": {AckWait: -time.Second},
	} {
		fe, ok := errors.AsType[*events.FieldError](s.Validate())
		if assert.True(t, ok, field) {
			assert.Equal(t, field, fe.Field)
		}
	}
	assert.NoError(t, (&changefeed.Spec{Tenant: "*", Durable: "mailer"}).Validate())
}

// A watch starts at its sequence, else at its time, else with new changes.
func TestDeliverPolicyStartsWhereTheSpecSays(t *testing.T) {
	p, seq, at := (&changefeed.Spec{StartSeq: 9}).DeliverPolicy()
	assert.Equal(t, jetstream.DeliverByStartSequencePolicy, p)
	assert.Equal(t, uint64(9), seq)
	assert.Nil(t, at)
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p, _, at = (&changefeed.Spec{StartTime: when}).DeliverPolicy()
	assert.Equal(t, jetstream.DeliverByStartTimePolicy, p)
	assert.Equal(t, when, *at)
	p, _, _ = (&changefeed.Spec{}).DeliverPolicy()
	assert.Equal(t, jetstream.DeliverNewPolicy, p)
}
