package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runMain runs consentd in-process with the given flags on dataDir.
func runMain(t *testing.T, dataDir string, flags ...string) *Main {
	t.Helper()
	m := NewMain()
	m.Environ = func() []string { return nil }
	m.Stdout, m.Stderr = io.Discard, testWriter{t}
	require.NoError(t, m.ParseFlags(append([]string{"--data-dir", dataDir, "--log-level", "error"}, flags...)))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := m.Run(ctx)
	if err != nil {
		_ = m.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func stepContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestDurableWatchAcrossConsentdRestart: a subscriber's durable watch
// keeps going through a restart of consentd (and of its embedded NATS
// server): the change it had not acknowledged comes again, the ones it
// had do not, and changes made after the restart follow.
func TestDurableWatchAcrossConsentdRestart(t *testing.T) {
	dataDir := t.TempDir()
	m := runMain(t, dataDir, "--listen", "127.0.0.1:-1")
	u, err := url.Parse(m.ClientURL())
	require.NoError(t, err)
	_, port, err := net.SplitHostPort(u.Host)
	require.NoError(t, err)

	nc, err := nats.Connect(m.ClientURL(), append(adminOptions(t, dataDir), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	cli := client.NewClient(nc, client.ClientOptions{ServiceFeed: true})
	var want []uint64
	for _, who := range []string{"a", "b", "c"} {
		reply, err := cli.Grant(stepContext(t), events.Command{SubjectID: who, Purpose: "newsletter"})
		require.NoError(t, err)
		want = append(want, reply.Seq)
	}

	// AckWait is short so that the change unacknowledged when the server
	// went away is delivered again soon after it is back.
	w, err := cli.Watch(stepContext(t), client.WatchOptions{Durable: "mailer", StartSeq: 1, AckWait: time.Second})
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	var handled []uint64
	for range 2 {
		ch, err := w.Next(stepContext(t))
		require.NoError(t, err)
		require.NoError(t, ch.Ack(stepContext(t)))
		handled = append(handled, ch.Seq)
	}
	unacked, err := w.Next(stepContext(t))
	require.NoError(t, err)

	// consentd restarts on its data directory and port; the subscriber
	// stays, its connection reconnects.
	require.NoError(t, m.Close())
	restarted := runMain(t, dataDir, "--listen", "127.0.0.1:"+port)
	assert.Equal(t, m.ClientURL(), restarted.ClientURL())
	later, err := cli.Grant(stepContext(t), events.Command{SubjectID: "d", Purpose: "newsletter"})
	require.NoError(t, err)
	want = append(want, later.Seq)

	var again []uint64
	for len(handled)+len(again) < len(want) {
		ch, err := w.Next(stepContext(t))
		require.NoError(t, err)
		assert.NotContains(t, handled, ch.Seq, "acknowledged before the restart")
		require.NoError(t, ch.Ack(stepContext(t)))
		again = append(again, ch.Seq)
	}
	assert.Contains(t, again, unacked.Seq, "the unacknowledged change came again")
	assert.ElementsMatch(t, want, append(handled, again...))
}

// TestExpiryOnceWithTwoConsentd: two consentd instances on one NATS
// server, each with its expirer; every lapsed grant gets exactly one
// consent.expired, and a watcher learns of each.
func TestExpiryOnceWithTwoConsentd(t *testing.T) {
	a := runMain(t, t.TempDir(), "--listen", "127.0.0.1:-1", "--expiry-interval", "20ms")
	b := runMain(t, t.TempDir(), "--nats-url", a.ClientURL(), "--nats-creds", serviceCredsFile(t, a.Config.DataDir),
		"--auth-dir", filepath.Join(a.Config.DataDir, "auth"), "--kek-file", filepath.Join(a.Config.DataDir, KEKFile), "--expiry-interval", "20ms")
	nc, err := nats.Connect(a.ClientURL(), adminOptions(t, a.Config.DataDir)...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	cli := client.NewClient(nc, client.ClientOptions{ServiceFeed: true})
	w, err := cli.Watch(stepContext(t), client.WatchOptions{Purposes: []string{"trial"}})
	require.NoError(t, err)
	t.Cleanup(w.Stop)

	const grants = 10
	granted := map[uint64]bool{}
	expiresOf := map[string]time.Time{}
	for i := range grants {
		// Each its own expiry, a second after it is sent: on a loaded
		// machine ten grants may take longer than one shared expiry.
		subject, expires := fmt.Sprintf("p%d", i), time.Now().Add(time.Second).UTC()
		expiresOf[subject] = expires
		reply, err := cli.Grant(stepContext(t), events.Command{SubjectID: subject, Purpose: "trial", ExpiresAt: &expires})
		require.NoError(t, err)
		granted[reply.Seq] = true
	}
	expired := map[string]uint64{}
	for len(expired) < grants {
		ch, err := w.Next(stepContext(t))
		require.NoError(t, err)
		require.NotNil(t, ch.Event)
		if granted[ch.Seq] {
			continue
		}
		require.Equal(t, events.TypeExpired, ch.Event.Type)
		assert.Equal(t, events.StateExpired, ch.Status.State)
		expires := expiresOf[ch.Event.SubjectID]
		assert.Equal(t, expires, ch.Event.OccurredAt)
		assert.NotContains(t, expired, ch.Event.SubjectID, "a second consent.expired for %s", ch.Event.SubjectID)
		expired[ch.Event.SubjectID] = ch.Seq
		lag := ch.Event.RecordedAt.Sub(expires)
		assert.Less(t, lag, 5*time.Second, "appended %v after expires_at", lag)
	}
	// Once both instances have swept again after the last one, no second
	// event can come: the stream's expectations refused them.
	sa, sb := a.expirer.Stats().Sweeps, b.expirer.Stats().Sweeps
	require.Eventually(t, func() bool {
		return a.expirer.Stats().Sweeps >= sa+2 && b.expirer.Stats().Sweeps >= sb+2
	}, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, uint64(grants), a.expirer.Stats().Appended+b.expirer.Stats().Appended)
	for i := range grants {
		h, err := cli.History(stepContext(t), wire.HistoryQuery{SubjectID: fmt.Sprintf("p%d", i), Purpose: "trial"})
		require.NoError(t, err)
		require.Len(t, h.Events, 2)
		assert.Equal(t, events.TypeExpired, h.Events[1].Event.Type)
	}
	t.Logf("expirers: %+v and %+v", a.expirer.Stats(), b.expirer.Stats())
}
