package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/micro"
)

// reportCommand is consentctl report: what the ledger holds about one
// person's consents, as one self-contained HTML page (report_html.go), for
// a data subject access request (GDPR Art. 15) or an auditor.
func reportCommand() command {
	var htmlPath, stream string
	return command{
		name: "report", args: "SUBJECT", nargs: [2]int{1, 1},
		summary: "write everything recorded about SUBJECT's consents as one printable HTML page (--html FILE)",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&htmlPath, "html", "", "write the report to `FILE` (written whole or not at all)")
			fs.StringVar(&stream, "stream", wire.DefaultStream, "`NAME` of the stream consentd keeps the audit trail in (named in the report's header)")
		},
		do: func(ctx context.Context, e *env, args []string) int {
			if htmlPath == "" {
				fmt.Fprintln(e.stderr, "consentctl: report needs --html FILE: the file to write the page to")
				return exitError
			}
			q := wire.HistoryQuery{Tenant: e.g.tenant, SubjectID: args[0]}
			records, err := fullHistory(ctx, e.client, q)
			if err != nil {
				return e.fail(err)
			}
			src := reportSource{Server: e.g.server, Stream: stream, Service: serviceName(ctx, e)}
			r := buildReport(args[0], events.OrDefaultTenant(e.g.tenant), records, time.Now(), src)
			err = writeWhole(htmlPath, func(f *os.File) error { return writeReportHTML(f, r) })
			if err != nil {
				return e.fail(err)
			}
			verdict := "the chain verified"
			if !r.Verified {
				verdict = "the chain did NOT verify (see the report)"
			}
			fmt.Fprintf(e.stdout, "Wrote the report on %s to %s: %d purposes, %d events; %s.\n", quote(args[0]), htmlPath, len(r.Purposes), r.Events, verdict)
			if !r.Verified {
				return exitProblems
			}
			return exitOK
		},
	}
}

// fullHistory reads every page of q's history, oldest first.
func fullHistory(ctx context.Context, c *client.Client, q wire.HistoryQuery) ([]wire.Record, error) {
	q.Limit = wire.MaxHistoryLimit
	var all []wire.Record
	for {
		h, err := c.History(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, h.Events...)
		if len(h.Events) < q.Limit {
			return all, nil
		}
		q.AfterSeq = h.Events[len(h.Events)-1].Seq
	}
}

// serviceName is the consent service that answers $SRV.INFO, as "consent
// 1.0.0 (instance ID)", or "" when none answers.
func serviceName(ctx context.Context, e *env) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	msg, err := e.nc.RequestWithContext(ctx, "$SRV.INFO."+wire.ServiceName, nil)
	if err != nil {
		return ""
	}
	var info micro.Info
	if json.Unmarshal(msg.Data, &info) != nil || info.Name == "" {
		return ""
	}
	return fmt.Sprintf("%s %s (instance %s)", info.Name, info.Version, info.ID)
}

// reportSource says where a report's records came from.
type reportSource struct {
	Server  string // the NATS URL
	Stream  string
	Service string // "" when unknown
}

// personReport is what the HTML page shows.
type personReport struct {
	Subject     string
	Tenant      string
	GeneratedAt time.Time
	Source      reportSource
	Purposes    []*purposeReport
	Events      int // events in the timelines
	// Integrity lists the messages of the person's history that failed
	// the service's integrity checks, with the quarantine that explains
	// each, if any.
	Integrity []integrityEntry
	// Verified is true when every event's hash recomputes and links to
	// the one before it, and every violation is quarantined; Problems
	// says what failed otherwise.
	Verified bool
	Problems []string
}

// purposeReport is one consent: where it stands and its timeline.
type purposeReport struct {
	Purpose  string
	Status   events.Status
	Timeline []timelineEntry
}

// timelineEntry is one event of a consent.
type timelineEntry struct {
	Seq      uint64
	Event    *events.Event
	Evidence string // indented JSON
	Erased   bool   // sealed personal fields that did not open: the person's key is destroyed
	Problem  string // the hash or link check that failed, if any
}

// integrityEntry is a message that failed the integrity checks.
type integrityEntry struct {
	Seq              uint64
	Check, Reason    string
	QuarantineSeq    uint64 // the consent.quarantined that explains it; 0 if none
	QuarantineReason string // why the quarantine set it aside
}

// buildReport folds a person's history (oldest first) into a report as of
// now: per purpose its status (events.Evolve, events.Consent.View) and its
// timeline. It checks what the history holds, independently of the
// service: every event's hash recomputes from its stored bytes
// (events.VerifyHash), its prev_hash links it to the consent's event
// before it (events.Consent.NextPrevHash), and every message the service
// flagged as a violation is explained by a consent.quarantined.
func buildReport(subject, tenant string, records []wire.Record, now time.Time, src reportSource) *personReport {
	r := &personReport{Subject: subject, Tenant: tenant, GeneratedAt: now.UTC(), Source: src}
	byPurpose := map[string]*purposeReport{}
	folds := map[string]events.Consent{}
	quarantines := map[uint64]*events.Event{}
	quarantineSeqs := map[uint64]uint64{}
	for _, rec := range records {
		ev := rec.Event
		if rec.Violation != nil || ev == nil {
			v := rec.Violation
			if v == nil {
				v = &wire.RecordViolation{Reason: "no event in the record"}
			}
			r.Integrity = append(r.Integrity, integrityEntry{Seq: rec.Seq, Check: v.Check, Reason: v.Reason})
			continue
		}
		if ev.Type == events.TypeQuarantined {
			quarantines[ev.QuarantinedSeq], quarantineSeqs[ev.QuarantinedSeq] = ev, rec.Seq
		}
		p := byPurpose[ev.Purpose]
		if p == nil {
			p = &purposeReport{Purpose: ev.Purpose}
			byPurpose[ev.Purpose] = p
			folds[ev.Purpose] = events.NewConsent(events.Key{Tenant: tenant, SubjectID: subject, Purpose: ev.Purpose})
		}
		entry := timelineEntry{Seq: rec.Seq, Event: ev, Erased: ev.IsSealed() && ev.SubjectID == "", Evidence: indentJSON(ev.Evidence)}
		prev := folds[ev.Purpose]
		if problem := checkEvent(ev, prev); problem != "" {
			entry.Problem = problem
			r.Problems = append(r.Problems, fmt.Sprintf("%s, seq %d: %s", ev.Purpose, rec.Seq, problem))
		}
		folds[ev.Purpose] = events.Evolve(prev, ev, rec.Seq)
		p.Timeline = append(p.Timeline, entry)
		r.Events++
	}
	for i := range r.Integrity {
		in := &r.Integrity[i]
		if q := quarantines[in.Seq]; q != nil {
			in.QuarantineSeq, in.QuarantineReason = quarantineSeqs[in.Seq], q.Reason
			continue
		}
		r.Problems = append(r.Problems, fmt.Sprintf("the message at seq %d failed the integrity check %s and no quarantine explains it", in.Seq, orDash(in.Check)))
	}
	for name, p := range byPurpose {
		c := folds[name]
		p.Status = c.View(now, 0)
		if p.Status.SubjectID == "" {
			p.Status.SubjectID = subject
		}
		r.Purposes = append(r.Purposes, p)
	}
	slices.SortFunc(r.Purposes, func(a, b *purposeReport) int { return strings.Compare(a.Purpose, b.Purpose) })
	r.Verified = len(r.Problems) == 0
	return r
}

// checkEvent returns what is wrong with ev as the next event of the
// consent folded into prev, or "": the rules of audit.VerifyReceipt.
func checkEvent(ev *events.Event, prev events.Consent) string {
	stored := *ev
	raw, err := stored.Seal() // the bytes the ledger stored (sealed fields as stored)
	if err != nil {
		return "cannot re-encode the event: " + err.Error()
	}
	if err := events.VerifyHash(raw, ev); err != nil {
		return "its hash does not recompute from its content"
	}
	if ev.PrevHash != prev.NextPrevHash() {
		return "its prev_hash does not link it to the event before it"
	}
	return ""
}

// indentJSON returns evidence indented for reading, with <, > and & as
// themselves rather than the \u escapes canonical JSON stores (the page
// escapes them for HTML), or as it is when it is not JSON.
func indentJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return string(raw)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if enc.Encode(v) != nil {
		return string(raw)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
