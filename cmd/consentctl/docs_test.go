package main

import (
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cliSections splits docs/cli.md at its "## " headings: heading to text.
func cliSections(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("../../docs/cli.md")
	require.NoError(t, err)
	sections := map[string]string{}
	heading := ""
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			heading = strings.TrimSpace(h)
			require.NotContains(t, sections, heading, "one section per heading")
			sections[heading] = ""
			continue
		}
		if heading != "" {
			sections[heading] += line
		}
	}
	return sections
}

// mentionsFlag reports whether text names the flag as --name (not the
// start of a longer name: --for is not --format).
func mentionsFlag(text, name string) bool {
	return regexp.MustCompile(`--` + regexp.QuoteMeta(name) + `([^a-z0-9-]|$)`).MatchString(text)
}

// TestCLIDocsMatchTheCommands keeps docs/cli.md in step with consentctl
// COMMAND --help: every command has its section "## consentctl COMMAND",
// with its usage line and each of its own flags written --flag; the global
// flags are in "## Global flags"; there is no section for a command that
// does not exist.
func TestCLIDocsMatchTheCommands(t *testing.T) {
	sections := cliSections(t)
	g := &globals{}
	global := map[string]bool{}
	globalFlags(g).VisitAll(func(f *flag.Flag) {
		global[f.Name] = true
		assert.True(t, mentionsFlag(sections["Global flags"], f.Name), "## Global flags of docs/cli.md names --%s", f.Name)
	})

	var documented []string
	for heading := range sections {
		if name, ok := strings.CutPrefix(heading, "consentctl "); ok {
			documented = append(documented, name)
		}
	}
	var names []string
	for _, c := range allCommands() {
		names = append(names, c.name)
		section, ok := sections["consentctl "+c.name]
		if !assert.True(t, ok, "docs/cli.md has a section ## consentctl %s", c.name) {
			continue
		}
		usage := "consentctl " + c.name
		if c.args != "" && c.name != "purpose" { // purpose: one usage line per verb
			usage += " " + c.args
		}
		assert.Contains(t, section, "```\n"+usage, "the section of %s opens with its usage", c.name)
		commandFlags(g, &c).VisitAll(func(f *flag.Flag) {
			if !global[f.Name] {
				assert.True(t, mentionsFlag(section, f.Name), "## consentctl %s names --%s", c.name, f.Name)
			}
		})
	}
	slices.Sort(names)
	slices.Sort(documented)
	assert.Equal(t, names, documented, "a section per command, and none for a command that does not exist")
}
