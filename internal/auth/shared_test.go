package auth_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/wire"
)

// Two authorities on one directory (two consentd on a shared volume, or a
// consentd and an offline nats-config) never overwrite each other's
// changes: each change reads the directory again under its lock.
func TestTwoAuthoritiesOnOneDirectoryKeepEachOthersChanges(t *testing.T) {
	dir := authDir(t)
	a1, err := auth.Open(dir)
	require.NoError(t, err)
	a2, err := auth.Open(dir)
	require.NoError(t, err)

	_, err = a1.IssueUser("alice", auth.Writer, "acme")
	require.NoError(t, err)
	// a2 has not seen acme: it must not create it again.
	_, err = a2.IssueUser("bob", auth.Checker, "acme")
	require.NoError(t, err)
	k1, err := a1.Tenant("acme")
	require.NoError(t, err)
	k2, err := a2.Tenant("acme")
	require.NoError(t, err)
	assert.Equal(t, k1, k2, "one account of acme")
	_, err = a2.IssueUser("alice", auth.Writer, "acme")
	assert.ErrorIs(t, err, auth.ErrUserExists, "a2 knows a1's alice")
	require.NoError(t, a2.Revoke("alice", "acme"))

	// Both issue at once, from several goroutines each.
	var wg sync.WaitGroup
	for i := range 8 {
		for j, a := range []*auth.Authority{a1, a2} {
			wg.Go(func() {
				_, err := a.IssueUser(fmt.Sprintf("u%d-%d", j, i), auth.Writer, "globex")
				assert.NoError(t, err)
			})
		}
	}
	wg.Wait()

	reopened, err := auth.Open(dir)
	require.NoError(t, err)
	assert.Equal(t, []string{"acme", "globex"}, reopened.Tenants())
	assert.Len(t, reopened.Users("globex"), 16)
	acme := reopened.Users("acme")
	require.Len(t, acme, 2)
	assert.Equal(t, "alice", acme[0].Name)
	assert.NotNil(t, acme[0].RevokedAt)
	assert.Equal(t, "bob", acme[1].Name)
	ac, err := jwt.DecodeAccountClaims(reopened.AccountJWTs()[k1])
	require.NoError(t, err)
	assert.True(t, ac.Revocations.IsRevoked(acme[0].PublicKey, acme[0].IssuedAt), "a2's revocation is in the account")
	// The reading methods read the directory too.
	assert.Len(t, a1.Users("globex"), 16)
	assert.Len(t, a2.Users("acme"), 2)
}

// Feed grants of two authorities both stay.
func TestTwoAuthoritiesGrantFeedsOnOneDirectory(t *testing.T) {
	dir := authDir(t)
	a1, err := auth.Open(dir)
	require.NoError(t, err)
	_, err = a1.Tenant("acme")
	require.NoError(t, err)
	a2, err := auth.Open(dir)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = a1.GrantFeed(ctx, "acme", wire.DefaultStream, "feed~acme~one", nil)
	require.NoError(t, err)
	_, err = a2.GrantFeed(ctx, "acme", wire.DefaultStream, "feed~acme~two", nil)
	require.NoError(t, err)
	for _, a := range []*auth.Authority{a1, a2} {
		assert.Equal(t, 3, feedImports(t, a, "acme", "feed~acme~one"))
		assert.Equal(t, 3, feedImports(t, a, "acme", "feed~acme~two"))
	}
}

// Identify knows a user another process issued in an account it had not
// seen: on a miss it reads the directory again, when another process
// changed it.
func TestIdentifyReadsTheDirectoryAgainOnAMiss(t *testing.T) {
	dir := authDir(t)
	e := start(t, dir, t.TempDir())
	other, err := auth.Open(dir)
	require.NoError(t, err)
	creds, err := other.IssueUser("mailer", auth.Writer, "globex")
	require.NoError(t, err)
	// The embedded server learns of globex at e.a's next reading.
	require.NoError(t, e.a.Reload())
	_, info := e.connect(t, creds).call(t, wire.SubjectGrant)
	tenant, role, ok := e.a.Identify(info.Account, info.IssuerKey)
	assert.True(t, ok)
	assert.Equal(t, "globex", tenant)
	assert.Equal(t, auth.Writer, role)

	// A tenant created by a third process right before.
	third, err := auth.Open(dir)
	require.NoError(t, err)
	key, err := third.Tenant("initech")
	require.NoError(t, err)
	ac, err := jwt.DecodeAccountClaims(third.AccountJWTs()[key])
	require.NoError(t, err)
	var writerKey string
	for _, k := range ac.SigningKeys.Keys() {
		if scope, _ := ac.SigningKeys.GetScope(k); scope.(*jwt.UserScope).Role == string(auth.Writer) {
			writerKey = k
		}
	}
	tenant, role, ok = other.Identify(key, writerKey)
	assert.True(t, ok)
	assert.Equal(t, "initech", tenant)
	assert.Equal(t, auth.Writer, role)
	_, _, ok = other.Identify(key, "UNKNOWN")
	assert.False(t, ok)
}

// A revocation made by another process reaches the embedded server at the
// next Reload (or change) of the authority that configured it.
func TestReloadPushesAnotherProcesssRevocationToTheEmbeddedServer(t *testing.T) {
	dir := authDir(t)
	e := start(t, dir, t.TempDir())
	u := e.connect(t, e.issue(t, "mailer", auth.Writer, "acme"))
	u.call(t, wire.SubjectGrant)
	offline, err := auth.Open(dir)
	require.NoError(t, err)
	require.NoError(t, offline.Revoke("mailer", "acme"))

	require.NoError(t, e.a.Reload())
	select {
	case err := <-u.errs:
		assert.ErrorIs(t, err, nats.ErrAuthRevoked)
	case <-time.After(waitFor):
		t.Fatal("the revoked user's connection was not told")
	}
}
