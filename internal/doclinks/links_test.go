package doclinks

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// root is the repository's top directory, seen from this package.
const root = "../.."

// TestRelativeLinksResolve checks every [text](target) link of README.md
// and docs/*.md that is not a URL: the file or directory must exist, and a
// #fragment must be the anchor GitHub gives one of the headings of the
// markdown page it names (the page itself when the path is empty).
func TestRelativeLinksResolve(t *testing.T) {
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	pages = append([]string{filepath.Join(root, "README.md")}, pages...)
	checked := 0
	for _, page := range pages {
		text, err := os.ReadFile(page)
		require.NoError(t, err)
		for _, l := range markdownLinks(string(text)) {
			checked++
			rel, _ := filepath.Rel(root, page)
			where := rel + ":" + strconv.Itoa(l.line)
			path, fragment, _ := strings.Cut(l.target, "#")
			target := page
			if path != "" {
				target = filepath.Join(filepath.Dir(page), path)
				if _, err := os.Stat(target); err != nil {
					assert.Failf(t, "broken link", "%s: %s: no such file or directory", where, l.target)
					continue
				}
			}
			if fragment == "" {
				continue
			}
			if !strings.HasSuffix(target, ".md") {
				assert.Failf(t, "broken link", "%s: %s: a #fragment on a file that is not markdown", where, l.target)
				continue
			}
			body, err := os.ReadFile(target)
			require.NoError(t, err)
			anchors := headingAnchors(string(body))
			assert.Truef(t, anchors[fragment], "%s: %s: %s has no heading with anchor #%s", where, l.target, filepath.Base(target), fragment)
		}
	}
	assert.Greater(t, checked, 50, "the pages have relative links; finding none means the parser is broken")
}

// TestHeadingAnchorsAndLinksParse pins the two parsers on small inputs.
func TestHeadingAnchorsAndLinksParse(t *testing.T) {
	md := "# The contract as built\n\n## Errors\n\n### `consentctl watch`\n\n## Retention and legal hold\n\n## Errors\n\n" +
		"```sh\n# not a heading\n[not](a-link.md)\n```\n\n" +
		"See [a](x.md), [b](y.md#frag) and `[c](code.md)` and [d](https://example.com) and [e](#errors).\n"
	anchors := headingAnchors(md)
	for _, a := range []string{"the-contract-as-built", "errors", "consentctl-watch", "retention-and-legal-hold", "errors-1"} {
		assert.True(t, anchors[a], a)
	}
	assert.False(t, anchors["not-a-heading"])
	var targets []string
	for _, l := range markdownLinks(md) {
		targets = append(targets, l.target)
	}
	assert.Equal(t, []string{"x.md", "y.md#frag", "#errors"}, targets)
}

// link is a relative link of a markdown page.
type link struct {
	line   int
	target string
}

var (
	linkRE       = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	inlineCodeRE = regexp.MustCompile("`[^`]*`")
)

// markdownLinks returns the targets of the inline links of markdown that
// are not URLs, outside fenced code blocks and inline code.
func markdownLinks(markdown string) []link {
	var links []link
	fenced := false
	for i, line := range strings.Split(markdown, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		line = inlineCodeRE.ReplaceAllStringFunc(line, func(code string) string {
			// `[x](y)` is code, but [`x`](y) is a link with code as its text.
			if strings.Contains(code, "](") {
				return ""
			}
			return code
		})
		for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			links = append(links, link{line: i + 1, target: target})
		}
	}
	return links
}

// headingAnchors returns the anchors GitHub gives the headings of
// markdown: lowercased, characters other than letters, digits, spaces,
// hyphens and underscores dropped, spaces made hyphens, and -1, -2... on
// repeats.
func headingAnchors(markdown string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(markdown, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		anchor := b.String()
		if n := seen[anchor]; n > 0 {
			seen[anchor]++
			anchor += "-" + strconv.Itoa(n)
		} else {
			seen[anchor] = 1
		}
		anchors[anchor] = true
	}
	return anchors
}
