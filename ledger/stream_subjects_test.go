package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A stream made before the ledger kept checkpoints captures only the
// events: EnsureStream adds the missing filter and keeps every message.
func TestEnsureStreamAddsMissingSubjects(t *testing.T) {
	_, _, js := natstest.Run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	old := ledger.StreamOptions{}.Config()
	old.Subjects = []string{"consent.events.>"}
	_, err := js.CreateStream(ctx, old)
	require.NoError(t, err)
	_, err = js.Publish(ctx, "consent.events.default.p.k", []byte(`{}`))
	require.NoError(t, err)

	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	require.NoError(t, err)
	info := stream.CachedInfo()
	assert.Equal(t, ledger.CapturedSubjects(), info.Config.Subjects)
	assert.Equal(t, uint64(1), info.State.Msgs, "the update keeps the stored messages")
	assert.Empty(t, ledger.CheckStreamConfig(info.Config))

	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: "consent.checkpoints.chain", Data: []byte(`{}`)})
	require.NoError(t, err, "the stream now captures checkpoints")
	assert.Equal(t, uint64(2), ack.Sequence)
}

// A stream says how its subject keys are made: sha256-16 unless asked
// for keyed ones; a stream that names a scheme this ledger does not know
// is refused.
func TestStreamRecordsItsSubjectKeyScheme(t *testing.T) {
	cfg := ledger.StreamOptions{}.Config()
	assert.Equal(t, string(events.SubjectKeySHA256), cfg.Metadata[events.SubjectKeySchemeMetadata])
	assert.Empty(t, ledger.CheckStreamConfig(cfg))
	assert.Equal(t, events.SubjectKeySHA256, ledger.StreamSubjectKeyScheme(cfg))

	delete(cfg.Metadata, events.SubjectKeySchemeMetadata)
	assert.Empty(t, ledger.CheckStreamConfig(cfg), "a stream made before the entry uses sha256-16")
	assert.Equal(t, events.SubjectKeySHA256, ledger.StreamSubjectKeyScheme(cfg))

	cfg = ledger.StreamOptions{SubjectKeys: events.SubjectKeyHMAC}.Config()
	assert.Equal(t, string(events.SubjectKeyHMAC), cfg.Metadata[events.SubjectKeySchemeMetadata])
	assert.Empty(t, ledger.CheckStreamConfig(cfg))
	assert.Equal(t, events.SubjectKeyHMAC, ledger.StreamSubjectKeyScheme(cfg))

	cfg.Metadata[events.SubjectKeySchemeMetadata] = "md5-8"
	problems := ledger.CheckStreamConfig(cfg)
	require.Len(t, problems, 1)
	assert.Contains(t, problems[0], `keys its subjects with "md5-8" (metadata consent_subject_key_scheme), a scheme this ledger does not know`)
}
