package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConsentctlErase(t *testing.T) {
	url := startConsentd(t)
	for _, purpose := range []string{"newsletter", "analytics"} {
		code, _, errOut := ctl(t, url, "grant", "alice@example.com", purpose)
		require.Equal(t, exitOK, code, errOut)
	}

	code, _, errOut := ctl(t, url, "erase", "alice@example.com")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "reason: is required")

	code, out, errOut := ctl(t, url, "erase", "alice@example.com", "--reason", "ticket 4711")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `^consent\.erased at seq 3: analytics erased\nconsent\.erased at seq 4: newsletter erased\n$`, out)

	code, out, errOut = ctl(t, url, "erase", "alice@example.com", "--reason", "ticket 4711")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "analytics was erased already\nnewsletter was erased already\n", out)

	code, out, errOut = ctl(t, url, "erase", "nobody", "--reason", "ticket 4712")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "nothing recorded for this person: nothing to erase\n", out)

	code, out, errOut = ctl(t, url, "history", "alice@example.com", "newsletter")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "erased")
}
