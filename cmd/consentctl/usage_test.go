package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runOffline runs consentctl without a server: for what answers before
// connecting (help, usage errors).
func runOffline(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// singleDashFlag matches a flag written -flag at the start of a usage line.
var singleDashFlag = regexp.MustCompile(`(?m)^\s+-[a-z]`)

// TestConsentctlHelpGoesToStdout: --help, -h and consentctl help write the
// help to standard output and exit 0, so that consentctl --help | less
// works; flags show as --flag.
func TestConsentctlHelpGoesToStdout(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, errOut := runOffline(args...)
		assert.Equal(t, exitOK, code, args)
		assert.Empty(t, errOut, args)
		for _, c := range allCommands() {
			assert.Regexp(t, regexp.MustCompile(`(?m)^  `+c.name+`\s`), out, args)
		}
		assert.Contains(t, out, "\n  --server URL\n", args)
		assert.NotRegexp(t, singleDashFlag, out, args)
	}

	for _, args := range [][]string{{"grant", "--help"}, {"grant", "-h"}, {"help", "grant"}, {"--tenant", "acme", "grant", "alice", "--help"}} {
		code, out, errOut := runOffline(args...)
		assert.Equal(t, exitOK, code, args)
		assert.Empty(t, errOut, args)
		assert.True(t, strings.HasPrefix(out, "Usage: consentctl grant SUBJECT PURPOSE [flags]\n"), out)
		assert.Contains(t, out, "\nFlags:\n  --actor NAME\n", args)
		assert.Contains(t, out, "\n  --ttl DURATION\n", args)
		assert.Contains(t, out, "\nGlobal flags:\n  --creds FILE\n", args)
		assert.NotContains(t, out, "--reason", "deny's flag")
		assert.NotRegexp(t, singleDashFlag, out, args)
	}

	code, out, _ := runOffline("help", "audit", "export")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "Usage: consentctl audit export [flags]")
	assert.Contains(t, out, "--format FORMAT")
	code, out, _ = runOffline("help", "purpose", "set")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "Usage: consentctl purpose set|get|list [PURPOSE] [flags]")

	for _, args := range [][]string{{"help", "audit"}, {"audit", "--help"}} {
		code, out, errOut := runOffline(args...)
		assert.Equal(t, exitOK, code, args)
		assert.Empty(t, errOut)
		assert.Regexp(t, `(?m)^  audit verify-receipt\s+FILE\s+check`, out)
		assert.NotContains(t, out, "receipt  ", "only the audit commands")
	}

	// Every command has its help, in --flag form.
	for _, c := range allCommands() {
		code, out, _ := runOffline(append(strings.Fields(c.name), "--help")...)
		assert.Equal(t, exitOK, code, c.name)
		assert.Contains(t, out, "Usage: consentctl "+c.name+" ")
		assert.NotRegexp(t, singleDashFlag, out, c.name)
	}
}

// TestConsentctlUsageErrors: a mistake on the command line gets the error
// and one line pointing at the help, on standard error, exit 2.
func TestConsentctlUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown flag of a command", []string{"grant", "alice", "p", "--bogus"},
			"consentctl: flag provided but not defined: --bogus\nRun consentctl grant --help for the flags.\n"},
		{"unknown flag before the command", []string{"--bogus", "status"},
			"consentctl: flag provided but not defined: --bogus\nRun consentctl --help for the flags.\n"},
		{"bad value", []string{"history", "alice", "--limit", "x"},
			"consentctl: invalid value \"x\" for flag --limit: parse error\nRun consentctl history --help for the flags.\n"},
		{"missing value", []string{"audit", "export", "--format"},
			"consentctl: flag needs an argument: --format\nRun consentctl audit export --help for the flags.\n"},
		{"typo", []string{"stauts", "alice", "p"},
			"consentctl: unknown command \"stauts\"; did you mean \"status\"?\nRun consentctl --help for the commands.\n"},
		{"short for", []string{"hist", "alice"},
			"consentctl: unknown command \"hist\"; did you mean \"history\"?\nRun consentctl --help for the commands.\n"},
		{"typo in a two-word command", []string{"audit", "exprot"},
			"consentctl: unknown command \"audit exprot\": audit needs one of: export, verify, keygen, verify-receipt; did you mean \"audit export\"?\nRun consentctl --help for the commands.\n"},
		{"nothing near", []string{"allow", "a", "p"},
			"consentctl: unknown command \"allow\"\nRun consentctl --help for the commands.\n"},
		{"help for a typo", []string{"help", "recipt"},
			"consentctl: unknown command \"recipt\"; did you mean \"receipt\"?\nRun consentctl --help for the commands.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runOffline(tt.args...)
			assert.Equal(t, exitError, code)
			assert.Empty(t, out)
			assert.Equal(t, tt.wantErr, errOut)
		})
	}
	// No command at all: the help, as an error.
	code, out, errOut := runOffline()
	assert.Equal(t, exitError, code)
	assert.Empty(t, out)
	require.True(t, strings.HasPrefix(errOut, "Usage: consentctl"))
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"status", "status", 0}, {"stauts", "status", 1}, {"gant", "grant", 1},
		{"", "abc", 3}, {"revoke", "request", 5},
	} {
		assert.Equal(t, tt.want, editDistance(tt.a, tt.b), "%s %s", tt.a, tt.b)
		assert.Equal(t, tt.want, editDistance(tt.b, tt.a), "%s %s", tt.b, tt.a)
	}
}
