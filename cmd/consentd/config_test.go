package main

import (
	"bytes"
	"flag"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parse(args []string, env ...string) (Config, error) {
	m := NewMain()
	m.Stderr = io.Discard
	m.Environ = func() []string { return append([]string{"HOME=/root", "NATS_URL=nats://elsewhere:4222"}, env...) }
	err := m.ParseFlags(args)
	return m.Config, err
}

func TestParseFlagsWithoutFlagsIsTheDefault(t *testing.T) {
	cfg, err := parse(nil)
	require.NoError(t, err)
	assert.Equal(t, DefaultConfig(), cfg)
	assert.Equal(t, "127.0.0.1:4222", cfg.Listen)
	assert.Equal(t, "consent-data", cfg.DataDir)
	assert.Equal(t, SyncAlways, cfg.Sync)
	assert.Equal(t, GroupCommitAuto, cfg.GroupCommit)
	assert.True(t, cfg.Embedded())
}

func TestParseFlagsReadsFlagsAndEnvironment(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   []string
		check func(t *testing.T, cfg Config)
	}{
		{"flags", []string{"--listen", "0.0.0.0:4333", "--insecure-listen-without-tls", "--data-dir=/var/lib/consent", "--sync", "interval", "--log-level", "debug", "--min-seq-timeout", "5s"}, nil,
			func(t *testing.T, cfg Config) {
				assert.Equal(t, "0.0.0.0:4333", cfg.Listen)
				assert.True(t, cfg.InsecureListenWithoutTLS)
				assert.Equal(t, "/var/lib/consent", cfg.DataDir)
				assert.Equal(t, SyncInterval, cfg.Sync)
				assert.Equal(t, "debug", cfg.LogLevel)
				assert.Equal(t, 5*time.Second, cfg.MinSeqTimeout)
			}},
		{"environment", nil, []string{"CONSENTD_DATA_DIR=/data", "CONSENTD_NATS_URL=nats://n1:4222,nats://n2:4222", "CONSENTD_REPLICAS=3",
			"CONSENTD_NATS_USER=consent", "CONSENTD_NATS_PASSWORD=s3cret", "CONSENTD_STREAM=CONSENT_TEST", "CONSENTD_SHUTDOWN_TIMEOUT=20s"},
			func(t *testing.T, cfg Config) {
				assert.Equal(t, "/data", cfg.DataDir)
				assert.Equal(t, "nats://n1:4222,nats://n2:4222", cfg.NATSURL)
				assert.False(t, cfg.Embedded())
				assert.Equal(t, 3, cfg.Replicas)
				assert.Equal(t, "consent", cfg.NATSUser)
				assert.Equal(t, "s3cret", cfg.NATSPassword)
				assert.Equal(t, "CONSENT_TEST", cfg.Stream)
				assert.Equal(t, 20*time.Second, cfg.ShutdownTimeout)
			}},
		{"group commit off", []string{"--group-commit", "off"}, nil,
			func(t *testing.T, cfg Config) { assert.Equal(t, GroupCommitOff, cfg.GroupCommit) }},
		{"group commit off as a boolean", []string{"--group-commit=false"}, nil,
			func(t *testing.T, cfg Config) { assert.Equal(t, GroupCommitOff, cfg.GroupCommit) }},
		{"group commit on with nats-url", []string{"--nats-url", "nats://x", "--group-commit=on"}, nil,
			func(t *testing.T, cfg Config) { assert.Equal(t, GroupCommitOn, cfg.GroupCommit) }},
		{"expiry interval", []string{"--expiry-interval", "250ms"}, nil,
			func(t *testing.T, cfg Config) { assert.Equal(t, 250*time.Millisecond, cfg.ExpiryInterval) }},
		{"expiry interval by variable", nil, []string{"CONSENTD_EXPIRY_INTERVAL=5s"},
			func(t *testing.T, cfg Config) { assert.Equal(t, 5*time.Second, cfg.ExpiryInterval) }},
		{"stream check interval", []string{"--stream-check-interval", "2s"}, nil,
			func(t *testing.T, cfg Config) { assert.Equal(t, 2*time.Second, cfg.StreamCheckInterval) }},
		{"group commit off by variable", nil, []string{"CONSENTD_GROUP_COMMIT=false"},
			func(t *testing.T, cfg Config) { assert.Equal(t, GroupCommitOff, cfg.GroupCommit) }},
		{"a flag wins over its variable", []string{"--data-dir", "/from-flag"}, []string{"CONSENTD_DATA_DIR=/from-env"},
			func(t *testing.T, cfg Config) { assert.Equal(t, "/from-flag", cfg.DataDir) }},
		{"TLS and credentials", []string{"--nats-url", "tls://n1:4222", "--nats-creds", "/c.creds", "--nats-tls-ca", "/ca.pem", "--nats-tls-cert", "/c.pem", "--nats-tls-key", "/k.pem"}, nil,
			func(t *testing.T, cfg Config) {
				assert.Equal(t, "/c.creds", cfg.NATSCreds)
				assert.Equal(t, "/ca.pem", cfg.NATSTLSCA)
				assert.Equal(t, "/c.pem", cfg.NATSTLSCert)
				assert.Equal(t, "/k.pem", cfg.NATSTLSKey)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parse(tt.args, tt.env...)
			require.NoError(t, err)
			tt.check(t, cfg)
		})
	}
}

func TestParseFlagsRefusesWhatItWouldOtherwiseIgnore(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown flag", []string{"--nats-urls", "x"}, nil, "nats-urls"},
		{"positional argument", []string{"start"}, nil, `unexpected argument "start"`},
		{"unknown variable", nil, []string{"CONSENTD_NATS_URLS=nats://x"}, "unknown environment variable CONSENTD_NATS_URLS"},
		{"bad variable value", nil, []string{"CONSENTD_REPLICAS=three"}, `CONSENTD_REPLICAS="three"`},
		{"listen with nats-url", []string{"--nats-url", "nats://x", "--listen", "0.0.0.0:4222"}, nil, "--listen configures the embedded NATS server"},
		{"sync with nats-url", []string{"--nats-url", "nats://x"}, []string{"CONSENTD_SYNC=always"}, "--sync configures the embedded NATS server"},
		{"bad group commit", []string{"--group-commit", "sometimes"}, nil, `--group-commit "sometimes": want auto, on or off`},
		{"replicas without a cluster", []string{"--replicas", "3"}, nil, "--replicas 3 needs a NATS cluster"},
		{"too many replicas", []string{"--nats-url", "nats://x", "--replicas", "7"}, nil, "--replicas 7"},
		{"bad sync", []string{"--sync", "sometimes"}, nil, `--sync "sometimes"`},
		{"bad listen", []string{"--listen", "4222"}, nil, `--listen "4222"`},
		{"bad log level", []string{"--log-level", "loud"}, nil, `--log-level "loud"`},
		{"user without password", []string{"--nats-url", "nats://x", "--nats-user", "u"}, nil, "--nats-user and --nats-password"},
		{"cert without key", []string{"--nats-url", "nats://x", "--nats-tls-cert", "c.pem"}, nil, "--nats-tls-cert and --nats-tls-key"},
		{"zero min-seq timeout", []string{"--min-seq-timeout", "0s"}, nil, "--min-seq-timeout"},
		{"expiry interval too short", nil, []string{"CONSENTD_EXPIRY_INTERVAL=1ms"}, "--expiry-interval 1ms: must be at least 10ms"},
		{"stream check interval too short", nil, []string{"CONSENTD_STREAM_CHECK_INTERVAL=1ms"}, "--stream-check-interval 1ms: must be at least 10ms"},
		{"stream with a dot", []string{"--stream", "CONSENT.V1"}, nil, `--stream "CONSENT.V1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.args, tt.env...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestHelpNamesEveryFlagAndVariable(t *testing.T) {
	var out bytes.Buffer
	m := NewMain()
	m.Stderr = &out
	m.Environ = func() []string { return nil }
	require.ErrorIs(t, m.ParseFlags([]string{"--help"}), flag.ErrHelp)

	var cfg Config
	newFlagSet(&cfg, io.Discard).VisitAll(func(f *flag.Flag) {
		assert.Contains(t, out.String(), "--"+f.Name+" ")
		assert.Contains(t, out.String(), envName(f.Name))
	})
	assert.Contains(t, out.String(), "CONSENTD_NATS_TLS_CA")
}

func TestMemoryLimitFlag(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "200MiB": 200 << 20, "1GiB": 1 << 30, "512KiB": 512 << 10, "4096": 4096, "77B": 77} {
		var b ByteSize
		require.NoError(t, b.Set(in), in)
		assert.Equal(t, want, b, in)
	}
	for _, bad := range []string{"", "MiB", "-1MiB", "1.5GiB", "200MB", "9999999999GiB"} {
		var b ByteSize
		assert.Error(t, b.Set(bad), bad)
	}
	assert.Equal(t, "200MiB", ByteSize(200<<20).String())
	assert.Equal(t, "1000", ByteSize(1000).String())

	m := NewMain()
	m.Environ = func() []string { return []string{"CONSENTD_MEMORY_LIMIT=1GiB"} }
	require.NoError(t, m.ParseFlags(nil))
	assert.Equal(t, ByteSize(1<<30), m.Config.MemoryLimit)
	require.NoError(t, m.ParseFlags([]string{"--memory-limit", "192MiB"}))
	assert.Equal(t, ByteSize(192<<20), m.Config.MemoryLimit)
	err := NewMain().ParseFlags([]string{"--memory-limit", "lots"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "memory-limit")
}

// Under auto, appends are committed in groups where it was measured to
// win: the embedded server fsyncing every write, or a replicated stream.
func TestGroupCommitAutoCommitsInGroupsWhereItWins(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		replicas int
		want     bool
	}{
		{"embedded, sync always", nil, 1, true},
		{"embedded, sync interval", []string{"--sync", "interval"}, 1, false},
		{"cluster, one replica", []string{"--nats-url", "nats://x"}, 1, false},
		{"cluster, three replicas", []string{"--nats-url", "nats://x", "--replicas", "3"}, 3, true},
		{"cluster, a stream of three made by another instance", []string{"--nats-url", "nats://x"}, 3, true},
		{"off, three replicas", []string{"--nats-url", "nats://x", "--group-commit", "off"}, 3, false},
		{"on, one replica", []string{"--nats-url", "nats://x", "--group-commit", "on"}, 1, true},
		{"off, embedded", []string{"--group-commit", "off"}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parse(tt.args)
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg.CommitsInGroups(tt.replicas))
		})
	}
}
