package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/internal/natstest"
)

// After PushChanges, a server configured elsewhere (a cluster's) gets
// every account change as it is made, and those another process made at
// Reload: no Push call needed.
func TestPushChangesKeepsAServerConfiguredElsewhereUpToDate(t *testing.T) {
	dir := authDir(t)
	a, err := auth.Open(dir)
	require.NoError(t, err)
	op, err := jwt.DecodeOperatorClaims(a.OperatorJWT())
	require.NoError(t, err)
	res, err := server.NewDirAccResolver(t.TempDir(), 0, time.Minute, server.NoDelete)
	require.NoError(t, err)
	require.NoError(t, res.Store(a.SystemAccountKey(), a.AccountJWTs()[a.SystemAccountKey()]))
	e := &env{a: a}
	e.s = natstest.RunServer(t, func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{op}
		o.SystemAccount = a.SystemAccountKey()
		o.AccountResolver = res
	})
	sysCreds, err := a.SystemUser()
	require.NoError(t, err)
	opts, err := auth.ConnectOptions(sysCreds)
	require.NoError(t, err)
	sys, err := nats.Connect(e.s.ClientURL(), opts...)
	require.NoError(t, err)
	t.Cleanup(sys.Close)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, a.PushChanges(ctx, sys))

	// A new tenant's account reaches the server with IssueUser.
	u := e.connect(t, e.issue(t, "mailer", auth.Writer, "acme"))
	require.NoError(t, u.nc.Flush())

	// Another process revokes; this one's Reload pushes it.
	other, err := auth.Open(dir)
	require.NoError(t, err)
	require.NoError(t, other.Revoke("mailer", "acme"))
	require.NoError(t, a.Reload())
	select {
	case err := <-u.errs:
		assert.ErrorIs(t, err, nats.ErrAuthRevoked)
	case <-time.After(waitFor):
		t.Fatal("the revoked user's connection was not told")
	}

	// Stopped: a new tenant stays unknown to the server.
	require.NoError(t, a.PushChanges(ctx, nil))
	creds := e.issue(t, "late", auth.Writer, "globex")
	_, err = e.dial(creds)
	assert.Error(t, err)
}
