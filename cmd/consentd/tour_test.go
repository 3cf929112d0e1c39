package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's tour is checked by running it. Every ```console block of
// README.md is a transcript: lines starting with "$ " are commands, the
// lines up to the next command are what it printed (stdout and stderr as a
// terminal shows them, blank lines at the end ignored). The commands run in
// order, in one directory, against one consentd started in-process on
// ./consent-data there (so consentctl finds admin.creds by default), with
// $NATS_URL pointing at it. Three kinds of command are understood:
//
//   - consentctl ARGS: the consentctl built from this module;
//   - echo $?: the exit code of the command before;
//   - nats req SUBJECT 'JSON': the natscli request, made here with nats.go
//     and the administrator's credentials; its output is rendered as
//     natscli v0.5.0 prints it (clock times and the round trip aside).
//
// Anything else fails the test: a console block is a promise that it is
// checked. Blocks that are not checked use another language tag.
//
// What varies between runs is replaced, in the README's text and in the
// output alike, by placeholders: tourTime for times (RFC 3339, or the
// clock natscli prints), tourID for event ids, tourHash for hashes and
// tourRTT for natscli's round trip.
//
// go test -run TestReadmeTour -update-readme ./cmd/consentd writes what the
// commands print today into README.md's blocks instead (read the diff).
func TestReadmeTour(t *testing.T) {
	readmePath := filepath.Join("..", "..", "README.md")
	readme, err := os.ReadFile(readmePath)
	require.NoError(t, err)
	steps := parseTranscripts(t, string(readme))
	require.NotEmpty(t, steps, "README.md has no ```console block")
	// The ready line the README shows has the form startConsentd asserts.
	assert.Regexp(t, `(?m)^consentd: listening on nats://127\.0\.0\.1:4222 \(pid \d+, embedded NATS with JetStream, sync always\), data in (\S+)/consent-data, admin credentials in (\S+)/consent-data/admin\.creds$`, string(readme))

	consentctl := buildConsentctl(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "consent-data")
	m := startConsentd(t, dataDir)
	nc, err := nats.Connect(m.ClientURL(), adminOptions(t, dataDir)...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)

	lastCode := 0
	outputs := make([]string, len(steps))
	for i, s := range steps {
		var got string
		args := splitShellWords(t, s.command)
		switch {
		case args[0] == "consentctl":
			cmd := exec.Command(consentctl, args[1:]...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "NATS_URL="+m.ClientURL())
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var exit *exec.ExitError
			switch {
			case err == nil:
				lastCode = 0
			case errors.As(err, &exit):
				lastCode = exit.ExitCode()
			default:
				t.Fatalf("README.md:%d: %s: %v", s.line, s.command, err)
			}
			got = out.String()
		case s.command == "echo $?":
			got = strconv.Itoa(lastCode) + "\n"
		case len(args) == 4 && args[0] == "nats" && args[1] == "req":
			got = natsRequest(t, nc, args[2], args[3])
		default:
			t.Fatalf("README.md:%d: the tour test cannot run %q: use consentctl, echo $? or nats req, or a block that is not ```console", s.line, s.command)
		}
		outputs[i] = got
		if !*updateReadme {
			assert.Equal(t, normaliseTranscript(s.output), normaliseTranscript(got),
				"README.md:%d: $ %s\nprinted today:\n%s", s.line, s.command, got)
		}
	}
	if *updateReadme {
		require.NoError(t, os.WriteFile(readmePath, []byte(rewriteTranscripts(string(readme), steps, outputs)), 0o644))
	}
}

var updateReadme = flag.Bool("update-readme", false, "TestReadmeTour: write what the tour's commands print into README.md")

// rewriteTranscripts replaces the output of each step in markdown by
// outputs[i], keeping the blank lines that followed it.
func rewriteTranscripts(markdown string, steps []tourStep, outputs []string) string {
	lines := strings.Split(markdown, "\n")
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		old := strings.Split(strings.TrimSuffix(s.output, "\n"), "\n")
		if s.output == "" {
			old = nil
		}
		blank := 0
		for blank < len(old) && old[len(old)-1-blank] == "" {
			blank++
		}
		trimmed := strings.TrimRight(outputs[i], "\n")
		var repl []string
		if trimmed != "" {
			repl = strings.Split(trimmed, "\n")
		}
		for range blank {
			repl = append(repl, "")
		}
		rest := append(append([]string{}, repl...), lines[s.line+len(old):]...)
		lines = append(lines[:s.line], rest...)
	}
	return strings.Join(lines, "\n")
}

// tourStep is one command of a README transcript and what it printed.
type tourStep struct {
	line    int // of the command in README.md
	command string
	output  string
}

// parseTranscripts returns the commands of every ```console block of the
// markdown text, in order.
func parseTranscripts(t *testing.T, markdown string) []tourStep {
	t.Helper()
	var steps []tourStep
	inConsole, inOther := false, false
	for i, line := range strings.Split(markdown, "\n") {
		switch {
		case !inConsole && !inOther && strings.HasPrefix(line, "```"):
			inConsole = strings.TrimSpace(line) == "```console"
			inOther = !inConsole
		case (inConsole || inOther) && strings.TrimSpace(line) == "```":
			inConsole, inOther = false, false
		case inConsole && strings.HasPrefix(line, "$ "):
			steps = append(steps, tourStep{line: i + 1, command: strings.TrimPrefix(line, "$ ")})
		case inConsole:
			require.NotEmpty(t, steps, "README.md:%d: a ```console block starts with output, not a $ command", i+1)
			steps[len(steps)-1].output += line + "\n"
		}
	}
	require.False(t, inConsole || inOther, "README.md: a code block is not closed")
	return steps
}

// The placeholders normaliseTranscript puts in place of what varies.
const (
	tourTime = "<time>"
	tourID   = "<event-id>"
	tourHash = "<hash>"
	tourRTT  = "<rtt>"
	// tourKey stands for 32 hex digits: a subject key (keyed by the
	// tenant's secret, made at random) or a data key's id.
	tourKey = "<key>"
)

var transcriptVarying = []struct {
	re          *regexp.Regexp
	placeholder string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z`), tourTime},
	{regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\b`), tourTime},
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), tourID},
	{regexp.MustCompile(`\b[0-9a-f]{64}\b`), tourHash},
	{regexp.MustCompile(`\b[0-9a-f]{32}\b`), tourKey},
	{regexp.MustCompile(`rtt \S+`), "rtt " + tourRTT},
}

// normaliseTranscript replaces what varies between runs by placeholders
// and drops trailing blank lines.
func normaliseTranscript(s string) string {
	for _, v := range transcriptVarying {
		s = v.re.ReplaceAllString(s, v.placeholder)
	}
	return strings.TrimRight(s, "\n") + "\n"
}

// natsRequest makes the request `nats req subject body` makes and renders
// the reply as natscli v0.5.0 prints it.
func natsRequest(t *testing.T, nc *nats.Conn, subject, body string) string {
	t.Helper()
	msg, err := nc.Request(subject, []byte(body), 5*time.Second)
	require.NoError(t, err, "nats req %s", subject)
	var b strings.Builder
	fmt.Fprintf(&b, "00:00:00 Sending request on %q\n00:00:00 Received with rtt 0s\n", subject)
	if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
		fmt.Fprintf(&b, "00:00:00 Nats-Service-Error: %s\n00:00:00 Nats-Service-Error-Code: %s\n00:00:00\n", msg.Header.Get("Nats-Service-Error"), code)
	}
	if len(msg.Data) > 0 {
		b.Write(msg.Data)
		b.WriteString("\n")
	}
	return b.String()
}

// splitShellWords splits a command line as a POSIX shell does for the
// quoting the README uses: words separated by spaces, '…' and "…" quoted.
func splitShellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var word strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	require.Zero(t, quote, "unclosed quote in %q", line)
	if inWord {
		words = append(words, word.String())
	}
	require.NotEmpty(t, words, "an empty command")
	return words
}

// buildConsentctl builds consentctl into the test's temp dir.
func buildConsentctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "consentctl")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/consentledger/consent/cmd/consentctl").CombinedOutput()
	require.NoError(t, err, "go build consentctl: %s", out)
	return bin
}
