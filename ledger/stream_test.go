package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEnsureStreamCreatesImmutableStream(t *testing.T) {
	_, _, js := natstest.Run(t)
	ctx := context.Background()

	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{Duplicates: time.Minute})
	require.NoError(t, err)

	cfg := stream.CachedInfo().Config
	assert.Equal(t, wire.DefaultStream, cfg.Name)
	assert.Equal(t, []string{"consent.events.>", "consent.checkpoints.>", "consent.purposes.>"}, cfg.Subjects)
	assert.Equal(t, jetstream.FileStorage, cfg.Storage)
	assert.Equal(t, jetstream.LimitsPolicy, cfg.Retention)
	assert.Equal(t, jetstream.DiscardNew, cfg.Discard)
	assert.True(t, cfg.DenyDelete)
	assert.True(t, cfg.DenyPurge)
	assert.False(t, cfg.AllowRollup)
	assert.True(t, cfg.AllowDirect)
	assert.True(t, cfg.AllowAtomicPublish)
	assert.Equal(t, time.Minute, cfg.Duplicates)
	assert.Equal(t, 1, cfg.Replicas)
	assert.Zero(t, cfg.MaxAge)
	assert.LessOrEqual(t, cfg.MaxMsgs, int64(0))
	assert.LessOrEqual(t, cfg.MaxBytes, int64(0))
	assert.LessOrEqual(t, cfg.MaxMsgsPerSubject, int64(0))
	assert.Empty(t, ledger.CheckStreamConfig(cfg))

	// The server enforces what the config promises.
	_, err = js.Publish(ctx, "consent.events.default.p.k", []byte("{}"))
	require.NoError(t, err)
	assert.Error(t, stream.Purge(ctx), "purge must be refused")
	assert.Error(t, stream.DeleteMsg(ctx, 1), "delete must be refused")

	// A second start finds the stream and accepts it.
	again, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	require.NoError(t, err)
	assert.Equal(t, wire.DefaultStream, again.CachedInfo().Config.Name)
}

func TestEnsureStreamUsesConfiguredName(t *testing.T) {
	_, _, js := natstest.Run(t)
	stream, err := ledger.EnsureStream(context.Background(), js, ledger.StreamOptions{Name: "AUDIT"})
	require.NoError(t, err)
	assert.Equal(t, "AUDIT", stream.CachedInfo().Config.Name)
}

func TestEnsureStreamAcceptsFailClosedLimits(t *testing.T) {
	_, _, js := natstest.Run(t)
	ctx := context.Background()
	cfg := ledger.StreamOptions{}.Config()
	cfg.MaxBytes = 1 << 30 // with discard new: appends fail at the cap, nothing is dropped
	cfg.MaxMsgs = 1 << 20
	_, err := js.CreateStream(ctx, cfg)
	require.NoError(t, err)

	_, err = ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	assert.NoError(t, err)
}

// TestEnsureStreamRefusesUnsafeStreams creates, for each setting that could
// lose events (or stop the ledger), a stream with that setting alone
// changed, and checks that EnsureStream refuses it naming the setting.
func TestEnsureStreamRefusesUnsafeStreams(t *testing.T) {
	_, _, js := natstest.Run(t)
	ctx := context.Background()

	tests := []struct {
		name   string
		mutate func(*jetstream.StreamConfig)
		update func(*jetstream.StreamConfig) // applied by a stream update after creation
		want   string
	}{
		{
			name:   "purge allowed",
			mutate: func(c *jetstream.StreamConfig) { c.DenyPurge = false },
			want:   "stream CONSENT allows purge (deny_purge is false): events could be purged",
		},
		{
			name:   "delete allowed",
			mutate: func(c *jetstream.StreamConfig) { c.DenyDelete = false },
			want:   "stream CONSENT allows deleting messages (deny_delete is false): events could be deleted",
		},
		{
			name:   "rollup allowed",
			mutate: func(c *jetstream.StreamConfig) { c.AllowRollup, c.DenyPurge = true, false },
			want:   "stream CONSENT allows roll-ups (allow_rollup_hdrs is true)",
		},
		{
			name:   "max age",
			mutate: func(c *jetstream.StreamConfig) { c.MaxAge = time.Hour },
			want:   "stream CONSENT ages out messages (max_age is 1h0m0s): older events would be deleted",
		},
		{
			name:   "max msgs per subject",
			mutate: func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 5 },
			want:   "stream CONSENT limits messages per subject (max_msgs_per_subject is 5)",
		},
		{
			name:   "max msgs with discard old",
			mutate: func(c *jetstream.StreamConfig) { c.MaxMsgs, c.Discard = 1000, jetstream.DiscardOld },
			want:   "stream CONSENT limits the message count with discard old (max_msgs is 1000): the oldest events would be dropped",
		},
		{
			name:   "max bytes with discard old",
			mutate: func(c *jetstream.StreamConfig) { c.MaxBytes, c.Discard = 1<<20, jetstream.DiscardOld },
			want:   "stream CONSENT limits its size with discard old (max_bytes is 1048576)",
		},
		{
			name:   "memory storage",
			mutate: func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage },
			want:   "stream CONSENT keeps messages in memory (storage is memory)",
		},
		{
			name:   "work queue retention",
			mutate: func(c *jetstream.StreamConfig) { c.Retention = jetstream.WorkQueuePolicy },
			want:   "stream CONSENT deletes acknowledged messages (retention is workqueue)",
		},
		{
			name:   "interest retention",
			mutate: func(c *jetstream.StreamConfig) { c.Retention = jetstream.InterestPolicy },
			want:   "stream CONSENT deletes acknowledged messages (retention is interest)",
		},
		{
			name:   "message TTL",
			mutate: func(c *jetstream.StreamConfig) { c.AllowMsgTTL = true },
			want:   "stream CONSENT allows per-message TTLs (allow_msg_ttl is true)",
		},
		{
			name:   "subject delete markers",
			mutate: func(c *jetstream.StreamConfig) { c.SubjectDeleteMarkerTTL = time.Minute },
			want:   "stream CONSENT places subject delete markers (subject_delete_marker_ttl is 1m0s)",
		},
		{
			name: "counter",
			mutate: func(c *jetstream.StreamConfig) {
				c.AllowMsgCounter, c.Discard, c.AllowAtomicPublish = true, jetstream.DiscardOld, false
			},
			want: "stream CONSENT is a counter stream (allow_msg_counter is true)",
		},
		{
			name:   "message schedules",
			mutate: func(c *jetstream.StreamConfig) { c.AllowMsgSchedules, c.Discard = true, jetstream.DiscardOld },
			want:   "stream CONSENT allows message schedules (allow_msg_schedules is true)",
		},
		{
			name:   "sealed",
			update: func(c *jetstream.StreamConfig) { c.Sealed = true },
			want:   "stream CONSENT is sealed (sealed is true): no event can be appended",
		},
		{
			name:   "wrong subjects",
			mutate: func(c *jetstream.StreamConfig) { c.Subjects = []string{"consent.other.>"} },
			want:   "stream CONSENT does not capture consent.events.> (subjects are [consent.other.>])",
		},
		{
			name: "subject transform",
			mutate: func(c *jetstream.StreamConfig) {
				c.SubjectTransform = &jetstream.SubjectTransformConfig{Source: "consent.events.>", Destination: "consent.moved.>"}
			},
			want: "stream CONSENT transforms subjects (subject_transform is consent.events.> to consent.moved.>)",
		},
		{
			name:   "no ack",
			mutate: func(c *jetstream.StreamConfig) { c.NoAck = true },
			want:   "stream CONSENT does not acknowledge publishes (no_ack is true)",
		},
		{
			name: "async persist",
			mutate: func(c *jetstream.StreamConfig) {
				c.PersistMode, c.AllowAtomicPublish = jetstream.AsyncPersistMode, false
			},
			want: "stream CONSENT acknowledges before writing (persist_mode is async)",
		},
		{
			name:   "no direct get",
			mutate: func(c *jetstream.StreamConfig) { c.AllowDirect = false },
			want:   "stream CONSENT does not allow direct get (allow_direct is false)",
		},
		{
			name: "mirror",
			mutate: func(c *jetstream.StreamConfig) {
				c.Subjects, c.AllowAtomicPublish = nil, false
				c.Mirror = &jetstream.StreamSource{Name: "ORIGIN"}
			},
			want: "stream CONSENT is a mirror of ORIGIN (mirror is set): events cannot be appended to it",
		},
	}
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORIGIN", Subjects: []string{"origin.>"}})
	require.NoError(t, err)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ledger.StreamOptions{}.Config()
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			_, err := js.CreateStream(ctx, cfg)
			require.NoError(t, err, "creating the bad stream")
			t.Cleanup(func() { require.NoError(t, js.DeleteStream(ctx, cfg.Name)) })
			if tt.update != nil {
				tt.update(&cfg)
				_, err := js.UpdateStream(ctx, cfg)
				require.NoError(t, err, "updating to the bad stream")
			}

			stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
			require.ErrorIs(t, err, ledger.ErrUnsafeStream)
			assert.Nil(t, stream)
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, 500, ledger.WireError(err).Code)
		})
	}
}
