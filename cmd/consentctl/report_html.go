package main

import (
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/consentledger/consent/events"
)

// writeReportHTML writes r as one self-contained HTML page: inline CSS
// with a print stylesheet, no scripts, no fonts, images or links to
// fetch. html/template escapes every value (evidence and descriptions are
// whatever the recording service sent).
func writeReportHTML(w io.Writer, r *personReport) error {
	return reportTemplate.Execute(w, r)
}

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339Nano)
	},
	"timep": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339Nano)
	},
	"kind":   func(t events.Type) string { return strings.TrimPrefix(string(t), "consent.") },
	"orDash": orDash,
	"yesNo":  yesNo,
}).Parse(reportPage))

const reportPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Consent report: {{.Subject}} (tenant {{.Tenant}})</title>
<style>
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1b1b1b; background: #fff; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .6rem; border-bottom: 2px solid #d0d0d0; padding-bottom: .2rem; }
h3 { font-size: 1rem; margin: 1rem 0 .4rem; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace; font-size: .85em; }
.mono { word-break: break-all; }
pre { background: #f5f5f5; border: 1px solid #e0e0e0; padding: .4rem .6rem; white-space: pre-wrap; word-break: break-all; margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .3rem .5rem; border-bottom: 1px solid #e0e0e0; }
th { background: #f0f0f0; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .5rem 0 1rem; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
.notice { font-size: .9em; color: #444; border-left: 4px solid #999; padding: .2rem .6rem; }
.verdict { padding: .6rem .8rem; border-radius: 4px; font-weight: 600; margin: 1rem 0; }
.verdict.ok { background: #e6f4ea; border: 1px solid #2e7d32; color: #1b5e20; }
.verdict.bad { background: #fdecea; border: 1px solid #c62828; color: #b71c1c; }
.state { display: inline-block; padding: 0 .4rem; border-radius: 3px; border: 1px solid #999; font-weight: 600; }
.state-granted { background: #e6f4ea; border-color: #2e7d32; }
.state-denied, .state-revoked, .state-expired, .state-erased, .state-integrity_violation { background: #fdecea; border-color: #c62828; }
.state-requested { background: #fff8e1; border-color: #f9a825; }
ol.timeline { list-style: none; padding: 0; margin: 0; }
ol.timeline > li { border-left: 4px solid #999; padding: .3rem .8rem; margin: 0 0 .7rem; break-inside: avoid; page-break-inside: avoid; }
ol.timeline > li.granted { border-left-color: #2e7d32; }
ol.timeline > li.denied, ol.timeline > li.revoked, ol.timeline > li.expired, ol.timeline > li.erased { border-left-color: #c62828; }
ol.timeline > li.requested { border-left-color: #f9a825; }
.problem { color: #b71c1c; font-weight: 600; }
section.purpose { break-inside: auto; }
footer { margin-top: 2rem; font-size: .85em; color: #555; }
@media print {
  @page { margin: 15mm; }
  body { margin: 0; max-width: none; font-size: 10.5pt; color: #000; }
  h2 { break-after: avoid; page-break-after: avoid; }
  section.purpose { break-before: auto; }
  th { background: none; }
  .verdict, .state, pre { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
</style>
</head>
<body>
<header>
<h1>Consent report</h1>
<p class="notice">Everything the consent ledger records about this person's consents, for a data subject access request (GDPR Art. 15) or an audit. It holds personal data: hand it only to the person or to those entitled to it.</p>
<dl class="meta">
<dt>Person</dt><dd id="person" class="mono">{{.Subject}}</dd>
<dt>Tenant</dt><dd id="tenant">{{.Tenant}}</dd>
<dt>Generated at</dt><dd id="generated-at">{{time .GeneratedAt}}</dd>
<dt>Service</dt><dd id="service">{{if .Source.Service}}{{.Source.Service}}{{else}}(no answer to $SRV.INFO){{end}}</dd>
<dt>Stream</dt><dd id="stream">{{.Source.Stream}} at {{.Source.Server}}</dd>
<dt>Consents</dt><dd>{{len .Purposes}} purposes, {{.Events}} events</dd>
</dl>
</header>

{{if .Verified}}<p id="verdict" class="verdict ok">Chain verified: each of the {{.Events}} events has a hash that recomputes from its content and a prev_hash that links it to the event before it in its consent; {{if .Integrity}}every message that failed the service's integrity checks is explained by a quarantine{{else}}the service found no message that failed its integrity checks{{end}}.</p>
{{else}}<div id="verdict" class="verdict bad"><p>Chain NOT verified:</p><ul>{{range .Problems}}<li>{{.}}</li>{{end}}</ul><p>Run consentctl audit verify, and do not rely on this report until it is explained.</p></div>
{{end}}

<section id="summary">
<h2>Purposes and where they stand</h2>
{{if .Purposes}}<table>
<thead><tr><th>Purpose</th><th>State</th><th>Allowed</th><th>Policy version</th><th>Since (occurred)</th><th>Expires</th><th>Last seq</th></tr></thead>
<tbody>
{{range .Purposes}}<tr class="purpose-row" data-purpose="{{.Purpose}}"><td>{{.Purpose}}</td><td><span class="state state-{{.Status.State}}">{{.Status.State}}</span></td><td>{{yesNo .Status.Allowed}}</td><td>{{.Status.PolicyVersion}}</td><td>{{timep .Status.UpdatedAt}}</td><td>{{timep .Status.ExpiresAt}}</td><td>{{.Status.Seq}}</td></tr>
{{end}}</tbody>
</table>
<p class="notice">Allowed says whether the last grant stands; it does not compare it with the purpose's current policy version (consentctl status does).</p>
{{else}}<p id="nothing">Nothing is recorded for this person in tenant {{.Tenant}}.</p>{{end}}
</section>

{{range .Purposes}}
<section class="purpose" id="purpose-{{.Purpose}}">
<h2>{{.Purpose}}: <span class="state state-{{.Status.State}}">{{.Status.State}}</span></h2>
<ol class="timeline">
{{range .Timeline}}{{$ev := .Event}}<li class="{{kind $ev.Type}}" data-seq="{{.Seq}}">
<h3><span class="kind">{{kind $ev.Type}}</span> at {{time $ev.OccurredAt}}</h3>
<dl class="meta">
<dt>Occurred</dt><dd>{{time $ev.OccurredAt}}</dd>
<dt>Recorded</dt><dd>{{time $ev.RecordedAt}}{{if $ev.RecordedBy}} by user <span class="recorded-by">{{$ev.RecordedBy}}</span>{{end}}</dd>
<dt>Policy version</dt><dd>{{$ev.PolicyVersion}}</dd>
{{if $ev.Description}}<dt>Text shown</dt><dd class="description">{{$ev.Description}}</dd>
{{end}}<dt>Actor</dt><dd>{{orDash $ev.Actor}}</dd>
<dt>Method</dt><dd>{{orDash $ev.Method}}</dd>
{{if $ev.ExpiresAt}}<dt>Expires</dt><dd>{{timep $ev.ExpiresAt}}</dd>
{{end}}{{if $ev.Reason}}<dt>Reason</dt><dd class="reason">{{$ev.Reason}}</dd>
{{end}}{{if .Evidence}}<dt>Evidence</dt><dd><pre class="evidence">{{.Evidence}}</pre></dd>
{{end}}{{if $ev.QuarantinedSeq}}<dt>Sets aside</dt><dd>the message at seq {{$ev.QuarantinedSeq}}; the consent resumes as {{$ev.State}}</dd>
{{end}}{{if .Erased}}<dt>Personal fields</dt><dd>erased (sealed under a destroyed key)</dd>
{{end}}<dt>Seq</dt><dd class="seq">{{.Seq}}</dd>
<dt>Event</dt><dd class="mono">{{$ev.ID}}</dd>
<dt>Hash</dt><dd class="mono hash">{{$ev.Hash}}</dd>
<dt>Prev hash</dt><dd class="mono">{{orDash $ev.PrevHash}}</dd>
{{if .Problem}}<dt>Check</dt><dd class="problem">{{.Problem}}</dd>
{{end}}</dl>
</li>
{{end}}</ol>
</section>
{{end}}

{{if .Integrity}}<section id="integrity">
<h2>Messages that failed the integrity checks</h2>
<table>
<thead><tr><th>Seq</th><th>Check</th><th>Why</th><th>Quarantine</th></tr></thead>
<tbody>
{{range .Integrity}}<tr><td>{{.Seq}}</td><td>{{orDash .Check}}</td><td>{{.Reason}}</td><td>{{if .QuarantineSeq}}set aside at seq {{.QuarantineSeq}}: {{.QuarantineReason}}{{else}}<span class="problem">not quarantined</span>{{end}}</td></tr>
{{end}}</tbody>
</table>
</section>
{{end}}

<footer>
<p>Times are UTC (RFC 3339): occurred is when it happened, recorded is when the ledger stored it. Each event's seq is its position in the stream; its hash covers its content and the prev_hash of the event before it, so that no event can be changed, removed or reordered unnoticed. To check the whole stream, an auditor runs consentctl audit verify; to check one consent later with the ledger's public key alone, consentctl receipt SUBJECT PURPOSE --out FILE gives a signed receipt.</p>
</footer>
</body>
</html>
`
