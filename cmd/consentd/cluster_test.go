package main

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startOnCluster runs consentd against an existing NATS deployment, as the
// docker-compose replicas do.
func startOnCluster(t *testing.T, urls string) *Main {
	t.Helper()
	m := NewMain()
	m.Environ = func() []string { return nil }
	var stdout bytes.Buffer
	m.Stdout, m.Stderr = &stdout, testWriter{t}
	require.NoError(t, m.ParseFlags([]string{"--nats-url", urls, "--replicas", "3", "--data-dir", t.TempDir(), "--log-level", "warn"}))
	err := m.Run(t.Context())
	if err != nil {
		_ = m.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	assert.Regexp(t, `^consentd: serving through NATS at `+regexp.QuoteMeta(urls)+` \(pid `+strconv.Itoa(os.Getpid())+`, stream CONSENT, 3 replicas\), index in \S+/index\n$`, stdout.String())
	return m
}

func TestConsentdReplicasShareAThreeNodeCluster(t *testing.T) {
	c := natstest.RunCluster(t, 3)
	first := startOnCluster(t, c.URLs())
	second := startOnCluster(t, c.URLs())

	nc, err := nats.Connect(c.URLs())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(t.Context(), wire.DefaultStream)
	require.NoError(t, err)
	assert.Equal(t, 3, stream.CachedInfo().Config.Replicas)

	// Both instances answer in the queue group.
	client := client.NewClient(nc, client.ClientOptions{})
	const people = 20
	var last uint64
	for i := range people {
		r, err := client.Grant(t.Context(), events.Command{SubjectID: "person-" + strconv.Itoa(i), Purpose: "newsletter"})
		require.NoError(t, err)
		last = r.Seq
	}
	assert.Equal(t, uint64(people), last)
	answered := func(m *Main) uint64 {
		for _, e := range m.service.Stats().Endpoints {
			if e.Subject == wire.SubjectGrant {
				return uint64(e.NumRequests)
			}
		}
		return 0
	}
	assert.Equal(t, uint64(people), answered(first)+answered(second))

	// Either one's index reads its writes.
	st, err := client.Check(t.Context(), wire.StatusQuery{SubjectID: "person-0", Purpose: "newsletter", MinSeq: last})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, st.IndexSeq, last)

	// One stops; the other goes on answering.
	require.NoError(t, first.Close())
	r, err := client.Revoke(t.Context(), events.Command{SubjectID: "person-0", Purpose: "newsletter"})
	require.NoError(t, err)
	st, err = client.Check(t.Context(), wire.StatusQuery{SubjectID: "person-0", Purpose: "newsletter", MinSeq: r.Seq})
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	assert.Equal(t, events.StateRevoked, st.State)
}
