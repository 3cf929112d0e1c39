package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

// hostile is what a careless or malicious recording service might put in
// a description or evidence: the report must show it as text.
const hostile = `<script>alert("x")</script><img src="http://evil.example/x.png">`

// recordPersonConsents records, through consentctl, a person's consents
// for the report tests: newsletter requested (hostile description),
// granted (hostile evidence) and revoked (seqs 1-3); purpose analytics set
// to policy version 2 (seq 4) and granted at it (seq 5); profiling denied
// (seq 6).
func recordPersonConsents(t *testing.T, url, subject string) {
	t.Helper()
	steps := [][]string{
		{"request", subject, "newsletter", "--description", "Weekly news " + hostile, "--actor", "signup-form", "--method", "dialog"},
		{"grant", subject, "newsletter", "--actor", "subject", "--method", "dialog", "--evidence", `{"form":"v3","note":"` + jsonEscaped + `"}`},
		{"revoke", subject, "newsletter", "--actor", "subject", "--reason", "too many mails"},
		{"purpose", "set", "analytics", "--policy-version", "2", "--description", "Usage analytics"},
		{"grant", subject, "analytics", "--policy-version", "2", "--actor", "subject", "--method", "api", "--evidence", `{"ip":"192.0.2.1"}`},
		{"deny", subject, "profiling", "--actor", "subject", "--method", "dialog", "--reason", "not for me"},
	}
	for _, args := range steps {
		code, _, errOut := ctl(t, url, args...)
		require.Equal(t, exitOK, code, "%v: %s", args, errOut)
	}
}

// jsonEscaped is hostile inside a JSON string, as canonical JSON stores
// it: quotes escaped, < and > as they are.
var jsonEscaped = strings.ReplaceAll(hostile, `"`, `\"`)

// purposeRows returns the cells of the summary table's rows, by purpose.
func purposeRows(doc *html.Node) map[string][]string {
	rows := map[string][]string{}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode || n.Data != "tr" {
			continue
		}
		for _, a := range n.Attr {
			if a.Key == "data-purpose" {
				for td := range n.ChildNodes() {
					rows[a.Val] = append(rows[a.Val], textOf(td))
				}
			}
		}
	}
	return rows
}

// textOf is the text of n and its descendants.
func textOf(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

// TestReportHTML: consentctl report writes a page that parses, loads
// nothing from elsewhere (no script, no src or href to a URL, no
// @import or url() in its style), shows the hostile description and
// evidence as text, and holds every purpose, state, event and the
// verified line.
func TestReportHTML(t *testing.T) {
	url := startConsentd(t)
	recordPersonConsents(t, url, "alice@example.com")
	file := filepath.Join(t.TempDir(), "alice.html")
	code, out, errOut := ctl(t, url, "report", "alice@example.com", "--html", file)
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "Wrote the report on alice@example.com to "+file+": 3 purposes, 5 events; the chain verified.\n", out)

	data, err := os.ReadFile(file)
	require.NoError(t, err)
	page := string(data)
	doc, err := html.Parse(bytes.NewReader(data))
	require.NoError(t, err)

	var texts []string
	var styles string
	for n := range doc.Descendants() {
		switch n.Type {
		case html.ElementNode:
			assert.NotEqual(t, "script", n.Data, "no scripts")
			assert.NotContains(t, []string{"link", "iframe", "object", "embed", "img"}, n.Data, "nothing to fetch")
			for _, a := range n.Attr {
				if a.Key == "src" || a.Key == "href" {
					assert.NotRegexp(t, `(?i)^\s*(https?:)?//`, a.Val, "<%s %s=...> fetches from elsewhere", n.Data, a.Key)
				}
			}
			if n.Data == "style" && n.FirstChild != nil {
				styles += n.FirstChild.Data
			}
		case html.TextNode:
			texts = append(texts, n.Data)
		}
	}
	assert.Contains(t, styles, "@media print")
	assert.NotRegexp(t, `@import|url\(|@font-face`, styles)
	text := strings.Join(texts, "")

	// The hostile strings are text, escaped in the source.
	assert.Contains(t, text, "Weekly news "+hostile)
	assert.Contains(t, text, `"note": "`+jsonEscaped+`"`, "the evidence shows as stored")
	assert.NotContains(t, page, "<script>")
	assert.NotContains(t, page, `<img src=`)
	assert.Contains(t, page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;")

	assert.Contains(t, text, "alice@example.com")
	assert.Regexp(t, `Chain verified: each of the 5 events`, text)
	rows := purposeRows(doc)
	require.Len(t, rows, 3)
	assert.Equal(t, []string{"analytics", "granted", "yes", "2"}, rows["analytics"][:4])
	assert.Equal(t, []string{"newsletter", "revoked", "no", "1"}, rows["newsletter"][:4])
	assert.Equal(t, []string{"profiling", "denied", "no", "1"}, rows["profiling"][:4])
	assert.Equal(t, "5", rows["analytics"][6], "the last seq (seq 4 is the purpose set)")
	for _, want := range []string{"requested at ", "granted at ", "revoked at ", "Text shown", "denied at ", "too many mails", "not for me", "signup-form", "dialog", "192.0.2.1"} {
		assert.Contains(t, text, want)
	}
	assert.Regexp(t, `Hash\s*[0-9a-f]{64}`, text)
	assert.Regexp(t, regexp.MustCompile(`Seq\s*5\s`), text)
}

// TestReportUsage: --html is required; a history that cannot be read is
// the service's error.
func TestReportUsage(t *testing.T) {
	url := startConsentd(t)
	code, _, errOut := ctl(t, url, "report", "alice")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "report needs --html FILE")

	file := filepath.Join(t.TempDir(), "x.html")
	code, _, errOut = ctl(t, url, "report", "", "--html", file)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "subject")
	assert.NoFileExists(t, file)

	code, out, errOut := ctl(t, url, "report", "nobody", "--html", file)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "0 purposes, 0 events; the chain verified")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Contains(t, string(data), "Nothing is recorded for this person in tenant default.")
}

// TestReportVerification: the report checks the history itself: an event
// whose content no longer matches its hash, an event that does not link
// to the one before it, and a violation that no quarantine explains each
// make it say NOT verified and why; a quarantined violation does not.
func TestReportVerification(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	seal := func(ev *events.Event) *events.Event {
		t.Helper()
		_, err := ev.Seal()
		require.NoError(t, err)
		return ev
	}
	newEvent := func(typ events.Type, prev string) *events.Event {
		return seal(&events.Event{V: events.SchemaVersionClear, ID: string(typ) + prev[:min(len(prev), 4)], Type: typ, Tenant: "default", SubjectID: "bob", Purpose: "p",
			OccurredAt: now, RecordedAt: now, PolicyVersion: 1, PrevHash: prev})
	}
	req := newEvent(events.TypeRequested, "")
	grant := newEvent(events.TypeGranted, req.Hash)
	good := []wire.Record{{Seq: 1, Event: req}, {Seq: 2, Event: grant}}

	r := buildReport("bob", "default", good, now, reportSource{})
	require.True(t, r.Verified, r.Problems)
	require.Len(t, r.Purposes, 1)
	assert.Equal(t, events.StateGranted, r.Purposes[0].Status.State)

	tampered := *grant
	tampered.Actor = "someone else" // after sealing: the hash no longer matches
	r = buildReport("bob", "default", []wire.Record{{Seq: 1, Event: req}, {Seq: 2, Event: &tampered}}, now, reportSource{})
	assert.False(t, r.Verified)
	assert.Equal(t, []string{"p, seq 2: its hash does not recompute from its content"}, r.Problems)

	unlinked := newEvent(events.TypeGranted, strings.Repeat("0", 64))
	r = buildReport("bob", "default", []wire.Record{{Seq: 1, Event: req}, {Seq: 2, Event: unlinked}}, now, reportSource{})
	assert.Equal(t, []string{"p, seq 2: its prev_hash does not link it to the event before it"}, r.Problems)

	violation := append(append([]wire.Record(nil), good...), wire.Record{Seq: 3, Violation: &wire.RecordViolation{Check: "decode", Reason: "bad json"}})
	r = buildReport("bob", "default", violation, now, reportSource{})
	assert.Equal(t, []string{"the message at seq 3 failed the integrity check decode and no quarantine explains it"}, r.Problems)
	var page bytes.Buffer
	require.NoError(t, writeReportHTML(&page, r))
	assert.Contains(t, page.String(), "Chain NOT verified")
	assert.Contains(t, page.String(), "not quarantined")

	q := newEvent(events.TypeQuarantined, grant.Hash)
	q.QuarantinedSeq, q.State, q.Reason = 3, events.StateGranted, "test message"
	seal(q)
	r = buildReport("bob", "default", append(violation, wire.Record{Seq: 4, Event: q}), now, reportSource{})
	assert.True(t, r.Verified, r.Problems)
	require.Len(t, r.Integrity, 1)
	assert.Equal(t, uint64(4), r.Integrity[0].QuarantineSeq)
}

// TestReportRoles: an auditor of the person's tenant gets the report, with
// who recorded each event (recorded_by) and the service that answered; a
// checker, whose role may not read histories, gets the refusal and no
// file.
func TestReportRoles(t *testing.T) {
	url, dir := startConsentdWithAuth(t)
	writer := addUser(t, url, dir, "app", "writer", "acme")
	auditor := addUser(t, url, dir, "dpo", "auditor", "acme")
	checker := addUser(t, url, dir, "shop", "checker", "acme")
	code, _, errOut := ctl(t, url, "--creds", writer, "--tenant", "acme", "grant", "carol", "newsletter", "--actor", "subject", "--evidence", `{"form":"v3"}`)
	require.Equal(t, exitOK, code, errOut)

	file := filepath.Join(t.TempDir(), "carol.html")
	code, out, errOut := ctl(t, url, "--creds", auditor, "--tenant", "acme", "report", "carol", "--html", file)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "1 purposes, 1 events; the chain verified")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	doc, err := html.Parse(bytes.NewReader(data))
	require.NoError(t, err)
	text := textOf(doc)
	assert.Contains(t, text, "Personcarol")
	assert.Contains(t, text, "Tenantacme")
	assert.Contains(t, text, "by user app@acme")
	assert.Regexp(t, `Serviceconsent \S+ \(instance \S+\)`, text)

	other := filepath.Join(t.TempDir(), "carol.html")
	code, _, errOut = ctl(t, url, "--creds", checker, "--tenant", "acme", "report", "carol", "--html", other)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "Permissions Violation")
	assert.NoFileExists(t, other)
}

// TestReportErased: after erasure the report shows the consent erased,
// its consent.erased in the timeline, and the chain still verifies; a
// grant after it starts a fresh chain (prev_hash ""), which verifies too.
func TestReportErased(t *testing.T) {
	url := startConsentd(t)
	for _, args := range [][]string{
		{"grant", "dave", "newsletter"},
		{"grant", "dave", "analytics"},
		{"erase", "dave", "--reason", "ticket 4711"},
		{"grant", "dave", "analytics"},
	} {
		code, _, errOut := ctl(t, url, args...)
		require.Equal(t, exitOK, code, "%v: %s", args, errOut)
	}
	file := filepath.Join(t.TempDir(), "dave.html")
	code, out, errOut := ctl(t, url, "report", "dave", "--html", file)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "2 purposes, 5 events; the chain verified")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	doc, err := html.Parse(bytes.NewReader(data))
	require.NoError(t, err)
	rows := purposeRows(doc)
	assert.Equal(t, []string{"newsletter", "erased", "no"}, rows["newsletter"][:3])
	assert.Equal(t, []string{"analytics", "granted", "yes"}, rows["analytics"][:3])
	text := textOf(doc)
	assert.Regexp(t, `(?s)analytics: granted.*granted at .*Seq2\s.*erased at .*ticket 4711.*Seq3\s.*granted at .*Seq5\s*Event\S+\s*Hash[0-9a-f]{64}\s*Prev hash-\s.*newsletter: erased`, text)
}
