package perf

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A tiny cost-of-authentication run completes and times every call of
// both stacks: checks and echo requests at each concurrency, and grants.
func TestAuthRunsBothStacks(t *testing.T) {
	r, err := Auth(t.Context(), AuthConfig{
		Dir: t.TempDir(), Consents: 20, Calls: 40, Callers: []int{1, 4}, Grants: 32, GrantCallers: 8, Rounds: 2,
	})
	require.NoError(t, err)
	require.Len(t, r.Lookups, 2)
	for _, l := range r.Lookups {
		for name, run := range map[string]Run{"no auth": l.NoAuth, "auth": l.Auth, "same account": l.SameAccount, "import": l.Import} {
			assert.Len(t, run.Latencies, 40, "%s at %d callers", name, l.Callers)
			assert.Positive(t, run.Rate(), "%s at %d callers", name, l.Callers)
			assert.Positive(t, run.Percentile(99), "%s at %d callers", name, l.Callers)
		}
	}
	for name, run := range map[string]Run{"no auth": r.NoAuthGrant, "auth": r.AuthGrant} {
		assert.Len(t, run.Latencies, 32, "grants %s", name)
		assert.Positive(t, run.Rate(), "grants %s", name)
	}
}
