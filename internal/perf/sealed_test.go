package perf

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A tiny cost-of-encryption run completes and times every call of both
// stacks: checks at each concurrency, grants of new and of known persons,
// and a rebuild of each stack's stream.
func TestSealedRunsBothStacks(t *testing.T) {
	r, err := Sealed(t.Context(), SealedConfig{
		Dir: t.TempDir(), Consents: 20, Calls: 40, Callers: []int{1, 4}, Grants: 32, GrantCallers: 8, Rounds: 2, RebuildRounds: 2,
	})
	require.NoError(t, err)
	require.Len(t, r.Lookups, 2)
	for _, l := range r.Lookups {
		for name, run := range map[string]Run{"clear": l.Clear, "sealed": l.Sealed} {
			assert.Len(t, run.Latencies, 40, "%s at %d callers", name, l.Callers)
			assert.Positive(t, run.Rate(), "%s at %d callers", name, l.Callers)
			assert.Positive(t, run.Percentile(99), "%s at %d callers", name, l.Callers)
		}
	}
	for name, run := range map[string]Run{"clear new": r.ClearNew, "sealed new": r.SealedNew, "clear known": r.ClearKnown, "sealed known": r.SealedKnown} {
		assert.Len(t, run.Latencies, 32, "grants %s", name)
		assert.Positive(t, run.Rate(), "grants %s", name)
	}
	// 20 consents, then 32 grants of new persons and 32 of known ones.
	for name, rb := range map[string]Rebuild{"clear": r.ClearRebuild, "sealed": r.SealedRebuild} {
		assert.EqualValues(t, 20+32+32, rb.Events, "rebuild %s", name)
		assert.Positive(t, rb.Rate(), "rebuild %s", name)
	}
}
