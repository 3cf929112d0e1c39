package main

import (
	"regexp"
	"testing"

	"github.com/consentledger/consent/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConsentctlHolds: hold set, list and release; an erase of a person on
// hold is refused naming the hold, and goes through once it is released.
func TestConsentctlHolds(t *testing.T) {
	url := startConsentd(t)
	code, _, errOut := ctl(t, url, "grant", "alice@example.com", "newsletter")
	require.Equal(t, exitOK, code, errOut)
	key := events.Key{Tenant: "default", SubjectID: "alice@example.com"}.Token()

	code, _, errOut = ctl(t, url, "hold", "set", "alice@example.com")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "reason: is required")

	code, out, errOut := ctl(t, url, "hold", "set", "alice@example.com", "--reason", "case 2026-17")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "alice@example.com is on legal hold (subject key "+key+"): case 2026-17\n", out)

	code, out, errOut = ctl(t, url, "hold", "list")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `^TENANT +SUBJECT KEY +SET +BY +REASON\ndefault +`+key+` +\S+ +- +case 2026-17\n$`, out)

	code, _, errOut = ctl(t, url, "erase", "alice@example.com", "--reason", "ticket 4711")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "legal hold")
	assert.Contains(t, errOut, "case 2026-17")

	code, out, errOut = ctl(t, url, "hold", "release", "alice@example.com")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `^legal hold of alice@example\.com released \(set \S+ by -: case 2026-17\)\n$`, out)
	code, out, errOut = ctl(t, url, "hold", "release", "alice@example.com")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "alice@example.com was not on legal hold: nothing released\n", out)
	code, out, errOut = ctl(t, url, "hold", "list")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "TENANT  SUBJECT KEY  SET  BY  REASON\n", out)

	code, out, errOut = ctl(t, url, "erase", "alice@example.com", "--reason", "ticket 4711")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "newsletter erased")
}

// TestConsentctlPurposeRetention: purpose set --retention stores it and
// shows it; a bad value is refused naming the field.
func TestConsentctlPurposeRetention(t *testing.T) {
	url := startConsentd(t)
	code, _, errOut := ctl(t, url, "purpose", "set", "newsletter", "--retention", "2y")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "retention: \"2y\" is not a Go duration")

	code, out, errOut := ctl(t, url, "purpose", "set", "newsletter", "--retention", "17520h", "--default-ttl", "8760h")
	require.Equal(t, exitOK, code, errOut)
	row := regexp.MustCompile(`TENANT +PURPOSE +POLICY +DEFAULT TTL +RETENTION +UPDATED +SEQ +DESCRIPTION\ndefault +newsletter +1 +8760h +17520h +\S+ +(\d+)`).FindStringSubmatch(out)
	require.NotNil(t, row, out)

	code, out, errOut = ctl(t, url, "--json", "purpose", "get", "newsletter", "--min-seq", row[1])
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"retention": "17520h"`)

	code, _, errOut = ctl(t, url, "purpose", "get", "newsletter", "--retention", "1h")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "--retention only goes with purpose set")
}
