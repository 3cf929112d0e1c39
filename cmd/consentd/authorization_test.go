package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeployAuthorizationIsEnough runs consentd and an application with
// the users and permissions of deploy/authorization.conf on a server of
// their own: every endpoint the README tours answers (none hangs on a
// missing permission), and the application cannot write the trail.
func TestDeployAuthorizationIsEnough(t *testing.T) {
	t.Setenv("CONSENTD_PASSWORD", "consentd-secret")
	t.Setenv("CONSENT_APP_PASSWORD", "app-secret")
	dir := t.TempDir()
	auth, err := os.ReadFile("../../deploy/authorization.conf")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "authorization.conf"), auth, 0o600))
	conf := filepath.Join(dir, "server.conf")
	require.NoError(t, os.WriteFile(conf, []byte("listen: 127.0.0.1:-1\njetstream { store_dir: \""+filepath.Join(dir, "js")+"\" }\ninclude ./authorization.conf\n"), 0o600))
	opts, err := server.ProcessConfigFile(conf)
	require.NoError(t, err)
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	go s.Start()
	t.Cleanup(s.Shutdown)
	require.True(t, s.ReadyForConnections(10e9))

	m := NewMain()
	m.Config.NATSURL = s.ClientURL()
	m.Config.NATSUser, m.Config.NATSPassword = "consentd", "consentd-secret"
	m.Config.DataDir = t.TempDir()
	m.Config.LogLevel = "warn"
	m.Stdout, m.Stderr = testWriter{t}, testWriter{t}
	err = m.Run(t.Context())
	if err != nil {
		_ = m.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })

	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("app", "app-secret"))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	client := client.NewClient(nc, client.ClientOptions{})
	ctx := t.Context()

	set, err := client.SetPurpose(ctx, events.PurposeCommand{Purpose: "marketing_email", Actor: "legal"})
	require.NoError(t, err, "purpose set needs consent.purposes.>")
	granted, err := client.Grant(ctx, events.Command{SubjectID: "alice@example.com", Purpose: "marketing_email", Actor: "subject"})
	require.NoError(t, err)
	assert.Greater(t, granted.Seq, set.Seq)
	st, err := client.Check(ctx, wire.StatusQuery{SubjectID: "alice@example.com", Purpose: "marketing_email", MinSeq: granted.Seq})
	require.NoError(t, err)
	assert.True(t, st.Allowed)
	history, err := client.History(ctx, wire.HistoryQuery{SubjectID: "alice@example.com"})
	require.NoError(t, err)
	assert.Len(t, history.Events, 1)

	// The application cannot publish onto the trail.
	errs := make(chan error, 1)
	app, err := nats.Connect(s.ClientURL(), nats.UserInfo("app", "app-secret"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	require.NoError(t, err)
	t.Cleanup(app.Close)
	require.NoError(t, app.Publish(granted.Event.Key().NATSSubject(), []byte(`{"v":1}`)))
	require.NoError(t, app.Flush())
	select {
	case err := <-errs:
		assert.ErrorIs(t, err, nats.ErrPermissionViolation)
	case <-ctx.Done():
		t.Fatal("no permission error")
	}
}
