package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
)

// printJSON writes v as indented JSON, as the service sent it.
func (e *env) printJSON(v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return e.fail(err)
	}
	return exitOK
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// printStatuses writes one row per status.
func printStatuses(w io.Writer, statuses []events.Status) {
	tw := newTable(w)
	fmt.Fprintln(tw, "TENANT\tSUBJECT\tPURPOSE\tSTATE\tALLOWED\tPOLICY\tUPDATED\tEXPIRES\tSEQ")
	for _, st := range statuses {
		allowed := yesNo(st.Allowed)
		if st.Outdated {
			allowed = fmt.Sprintf("no (outdated: v%d required)", st.RequiredPolicyVersion)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\n",
			st.Tenant, quote(st.SubjectID), st.Purpose, st.State, allowed, st.PolicyVersion,
			formatTime(st.UpdatedAt), formatTime(st.ExpiresAt), st.Seq)
	}
	_ = tw.Flush()
}

// printHistory writes one row per event, and one of TYPE violation, with
// the check and why, per message that failed the integrity rule.
func printHistory(w io.Writer, h wire.History) {
	tw := newTable(w)
	fmt.Fprintln(tw, "SEQ\tOCCURRED\tPURPOSE\tTYPE\tPOLICY\tACTOR\tDETAILS")
	for _, r := range h.Events {
		if v := r.Violation; v != nil || r.Event == nil {
			if v == nil {
				v = &wire.RecordViolation{}
			}
			fmt.Fprintf(tw, "%d\t-\t-\tviolation\t-\t-\tcheck %s: %s\n", r.Seq, orDash(v.Check), oneLine(v.Reason))
			continue
		}
		ev := r.Event
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n",
			r.Seq, formatTime(&ev.OccurredAt), ev.Purpose, strings.TrimPrefix(string(ev.Type), "consent."),
			ev.PolicyVersion, orDash(ev.Actor), details(ev))
	}
	_ = tw.Flush()
}

// details is what else an event says, in one cell. An event recorded
// well after it occurred (a paper form entered later) says so first, and
// the authenticated user who recorded it (recorded_by) next.
func details(ev *events.Event) string {
	var parts []string
	recorded := ""
	if ev.IsBackdated() {
		recorded = "backdated, recorded " + formatTime(&ev.RecordedAt)
	}
	if ev.RecordedBy != "" {
		if recorded == "" {
			recorded = "recorded"
		}
		recorded += " by " + ev.RecordedBy
	}
	if recorded != "" {
		parts = append(parts, recorded)
	}
	if ev.Description != "" {
		parts = append(parts, "description: "+oneLine(ev.Description))
	}
	if ev.ExpiresAt != nil {
		parts = append(parts, "expires "+formatTime(ev.ExpiresAt))
	}
	if ev.Reason != "" {
		parts = append(parts, "reason: "+oneLine(ev.Reason))
	}
	if ev.Method != "" {
		parts = append(parts, "method "+ev.Method)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

func formatTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// quote shows a subject as typed, quoting it when it has spaces or other
// characters a shell or a table would split on.
func quote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '"' || r == '\'' || r == '\\' }) {
		return s
	}
	return strconv.Quote(s)
}
