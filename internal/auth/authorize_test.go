package auth_test

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
)

// requestInfoOf returns the authority in a new directory and the
// Nats-Request-Info header the service receives from a new user name of
// tenant acme with role: the real header, whole user JWT included, as
// the server writes it across the import.
func requestInfoOf(tb testing.TB, name string, role auth.Role) (*auth.Authority, string) {
	tb.Helper()
	a, err := auth.Open(filepath.Join(tb.TempDir(), "auth"))
	require.NoError(tb, err)
	var svcCreds []byte
	s := natstest.RunServer(tb, func(o *server.Options) {
		svcCreds, err = a.ServerOptions(o)
		require.NoError(tb, err)
	})
	svcOpts, err := auth.ConnectOptions(svcCreds)
	require.NoError(tb, err)
	svc := natstest.Connect(tb, s, svcOpts...)
	_, err = svc.Subscribe(auth.ServiceSubjects, func(m *nats.Msg) { _ = m.Respond([]byte(m.Header.Get(ledger.HeaderRequestInfo))) })
	require.NoError(tb, err)
	require.NoError(tb, svc.Flush())
	creds, err := a.IssueUser(name, role, "acme")
	require.NoError(tb, err)
	opts, err := auth.ConnectOptions(creds)
	require.NoError(tb, err)
	m, err := natstest.Connect(tb, s, opts...).Request("consent.v1.check", []byte(`{}`), waitFor)
	require.NoError(tb, err)
	return a, string(m.Data)
}

// BenchmarkAuthorize decides a check request from a writer of acme, as
// the service does for every request, from the header a real server wrote:
// "now" with Authorize, "before" with the steps Authorize took before it
// read the role from the account's claims and skipped the header's other
// members (json.Unmarshal of the whole header, Identify, which derives
// each role key's public key from its seed, then the user's name).
func BenchmarkAuthorize(b *testing.B) {
	a, info := requestInfoOf(b, "bench", auth.Writer)
	b.Run("now", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Authorize("check", "acme", info); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("before", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ri struct {
				Account   string `json:"acc"`
				User      string `json:"user"`
				IssuerKey string `json:"issuer_key"`
			}
			if err := json.Unmarshal([]byte(info), &ri); err != nil {
				b.Fatal(err)
			}
			tenant, role, ok := a.Identify(ri.Account, ri.IssuerKey)
			if !ok || tenant != "acme" || !role.Allows("check") {
				b.Fatal("refused")
			}
			if !slices.ContainsFunc(a.Users(tenant), func(u auth.User) bool { return u.PublicKey == ri.User && u.RevokedAt == nil }) {
				b.Fatal("no user")
			}
		}
	})
}

// Authorize lets a user in force through to its role's endpoints of its own
// tenant, naming it as recorded on events, and refuses everything else
// with a reason: another role's endpoint, another tenant's token, a header
// whose account or signing key is not the authority's, and the user's next
// request once it is revoked.
func TestAuthorize(t *testing.T) {
	a, info := requestInfoOf(t, "wanda", auth.Writer)
	user, err := a.Authorize("grant", "acme", info)
	require.NoError(t, err)
	assert.Equal(t, "wanda@acme", user)
	_, err = a.Authorize("check", "acme", info)
	require.NoError(t, err)

	_, err = a.Authorize("purpose.set", "acme", info)
	assert.ErrorContains(t, err, "role writer may not use consent.v1.purpose.set")
	_, err = a.Authorize("grant", "globex", info)
	assert.ErrorContains(t, err, `tenant "acme"'s, not "globex"'s`)
	_, err = a.Authorize("grant", "acme", "")
	assert.ErrorContains(t, err, "carries no identity")
	_, err = a.Authorize("grant", "acme", `{"acc":`)
	assert.ErrorContains(t, err, "unreadable")

	var ri map[string]any
	require.NoError(t, json.Unmarshal([]byte(info), &ri))
	with := func(key string, v any) string {
		m := maps.Clone(ri)
		m[key] = v
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return string(b)
	}
	// The account's own key and the user's key are not role keys.
	_, err = a.Authorize("grant", "acme", with("issuer_key", ri["acc"]))
	assert.ErrorContains(t, err, "account or signing key is not one of this ledger's")
	_, err = a.Authorize("grant", "acme", with("issuer_key", ri["user"]))
	assert.ErrorContains(t, err, "account or signing key is not one of this ledger's")
	// A role key of acme's with another tenant's account.
	globex, err := a.Tenant("globex")
	require.NoError(t, err)
	_, err = a.Authorize("grant", "globex", with("acc", globex))
	assert.ErrorContains(t, err, "account or signing key is not one of this ledger's")
	// A user key the authority never issued.
	_, err = a.Authorize("grant", "acme", with("user", "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"))
	assert.ErrorContains(t, err, "unknown or revoked")

	require.NoError(t, a.Revoke("wanda", "acme"))
	_, err = a.Authorize("check", "acme", info)
	assert.ErrorContains(t, err, "unknown or revoked", "the next request after Revoke")
}
