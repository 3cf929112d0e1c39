package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chromium returns the path of Debian's chromium. Without it the test
// fails under CI (.ci/run installs it) and is skipped elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is not installed (.ci/run installs it: apt-get install chromium): %v", err)
		}
		t.Skipf("chromium is not installed (apt-get install chromium to run this test): %v", err)
	}
	return path
}

// browser starts a headless chromium with a fresh profile, flags that
// keep it off the network, and returns a tab's context, closed at the
// end of the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // root, in a container
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for chromium to exit, before its profile is removed
		cancel()
	})
	return tab
}

// pageTimeline is what the browser shows of the timelines: per purpose,
// "kind seq" of each entry, oldest first.
const pageTimeline = `Object.fromEntries([...document.querySelectorAll("section.purpose")].map(s =>
	[s.id.replace("purpose-", ""), [...s.querySelectorAll("ol.timeline > li")].map(li =>
		li.querySelector(".kind").innerText + " " + li.dataset.seq)]))`

// pageSummary is the rendered text of the summary table's cells, per
// purpose.
const pageSummary = `Object.fromEntries([...document.querySelectorAll("tr.purpose-row")].map(tr =>
	[tr.dataset.purpose, [...tr.cells].map(td => td.innerText)]))`

// TestReportInBrowser: the page consentctl report writes, opened from a
// file in headless chromium, renders the person's purposes and states,
// each consent's timeline, the verified line and the hostile evidence as
// text; it loads nothing and runs nothing; printing applies the print
// stylesheet. A screenshot (PNG) is left in the test's temp dir.
func TestReportInBrowser(t *testing.T) {
	tab := browser(t) // skips before starting anything without chromium
	url := startConsentd(t)
	recordPersonConsents(t, url, "alice@example.com")
	dir := t.TempDir()
	file := filepath.Join(dir, "alice.html")
	code, _, errOut := ctl(t, url, "report", "alice@example.com", "--html", file)
	require.Equal(t, exitOK, code, errOut)

	require.NoError(t, chromedp.Do(tab,
		chromedp.EmulateViewport(1200, 900),
		chromedp.Navigate("file://"+file),
		chromedp.WaitReady(chromedp.CSS("footer")),
	))
	run := func(a chromedp.Action[string]) string {
		t.Helper()
		s, err := chromedp.Run(tab, a)
		require.NoError(t, err)
		return s
	}

	assert.Equal(t, "Consent report: alice@example.com (tenant default)", run(chromedp.Title()))
	assert.Equal(t, "alice@example.com", run(chromedp.Text(chromedp.CSS("#person"))))
	assert.Regexp(t, `^CONSENT at nats://`, run(chromedp.Text(chromedp.CSS("#stream"))))
	assert.Regexp(t, `^consent \S+ \(instance \S+\)$`, run(chromedp.Text(chromedp.CSS("#service"))))
	assert.Regexp(t, `^Chain verified: each of the 5 events`, run(chromedp.Text(chromedp.CSS("#verdict"))))

	summary, err := chromedp.Run(tab, chromedp.Evaluate[map[string][]string](pageSummary))
	require.NoError(t, err)
	require.Len(t, summary, 3)
	assert.Equal(t, []string{"analytics", "granted", "yes", "2"}, summary["analytics"][:4])
	assert.Equal(t, []string{"newsletter", "revoked", "no", "1"}, summary["newsletter"][:4])
	assert.Equal(t, []string{"profiling", "denied", "no", "1"}, summary["profiling"][:4])

	timeline, err := chromedp.Run(tab, chromedp.Evaluate[map[string][]string](pageTimeline))
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{
		"analytics":  {"granted 5"},
		"newsletter": {"requested 1", "granted 2", "revoked 3"},
		"profiling":  {"denied 6"},
	}, timeline)

	// The hostile description and evidence render as text: no element
	// came of them, nothing ran, nothing was fetched.
	assert.Equal(t, "Weekly news "+hostile, run(chromedp.Text(chromedp.CSS(`li[data-seq="1"] .description`))))
	assert.Contains(t, run(chromedp.Text(chromedp.CSS(`li[data-seq="2"] .evidence`))), `"note": "`+jsonEscaped+`"`)
	counts, err := chromedp.Run(tab, chromedp.Evaluate[[]int](`[document.scripts.length, document.images.length,
		performance.getEntriesByType("resource").length, document.querySelectorAll("link, iframe, object, embed").length]`))
	require.NoError(t, err)
	assert.Equal(t, []int{0, 0, 0, 0}, counts, "scripts, images, resources fetched, other embedded content")
	revoked := run(chromedp.Text(chromedp.CSS(`li[data-seq="3"]`)))
	for _, want := range []string{"Reason\ttoo many mails", "Actor\tsubject", "Policy version\t1", "Seq\t3"} {
		assert.Contains(t, strings.ReplaceAll(revoked, "\n", "\t"), want)
	}

	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "a PNG")
	shot := filepath.Join(dir, "report.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	// Printed, the print stylesheet applies and the page becomes a PDF.
	printMedia := chromedp.Action[chromedp.Void](func(ctx context.Context, tgt *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tgt, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"})
		return chromedp.Void{}, err
	})
	require.NoError(t, chromedp.Do(tab, printMedia))
	assert.Equal(t, "none", run(chromedp.Evaluate[string](`getComputedStyle(document.body).maxWidth`)))
	pdf, err := chromedp.Run(tab, chromedp.Action[[]byte](func(ctx context.Context, tgt *chromedp.Target) ([]byte, error) {
		r, err := cdp.Call(ctx, tgt, page.PrintToPDF, page.PrintToPDFParams{})
		return r.Data, err
	}))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(pdf, []byte("%PDF-")), "a PDF")
}
