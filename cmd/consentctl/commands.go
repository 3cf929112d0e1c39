package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
)

func commands() []command {
	return append([]command{
		commandOf(events.KindRequest, "record that SUBJECT was asked to consent to PURPOSE"),
		commandOf(events.KindGrant, "record that SUBJECT consented to PURPOSE"),
		commandOf(events.KindDeny, "record that SUBJECT declined"),
		commandOf(events.KindRevoke, "record that SUBJECT withdrew a grant"),
		statusCommand("status", "show where one consent stands", false),
		statusCommand("check", "exit 0 if allowed, 1 if consent is required, 2 on error", true),
		listCommand(),
		historyCommand(),
		reportCommand(),
		watchCommand(),
		purposeCommand(),
		adminQuarantineCommand(),
		eraseCommand(),
	}, append(holdCommands(), userCommands()...)...)
}

// optionalUint is a flag whose absence differs from 0 (expected_seq 0 means
// "no events yet").
type optionalUint struct{ v *uint64 }

func (o *optionalUint) String() string {
	if o.v == nil {
		return ""
	}
	return strconv.FormatUint(*o.v, 10)
}

func (o *optionalUint) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return errors.New("want a stream sequence: 0 or a positive integer")
	}
	o.v = &n
	return nil
}

// timeFlag is an RFC 3339 time.
type timeFlag struct{ t *time.Time }

func (f *timeFlag) String() string {
	if f.t == nil {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f *timeFlag) Set(s string) error {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return errors.New("want an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	f.t = &t
	return nil
}

// commandOf is request, grant, deny or revoke.
func commandOf(kind events.Kind, summary string) command {
	var (
		cmd         events.Command
		evidence    string
		expectedSeq optionalUint
		expiresAt   timeFlag
		occurredAt  timeFlag
	)
	return command{
		name: string(kind), args: "SUBJECT PURPOSE", summary: summary, nargs: [2]int{2, 2},
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&cmd.PolicyVersion, "policy-version", 0, "`VERSION` of the notice or policy the person saw (default 1)")
			switch kind {
			case events.KindRequest:
				fs.StringVar(&cmd.Description, "description", "", "what the person is asked to agree to (`TEXT`)")
			case events.KindGrant:
				fs.StringVar(&cmd.TTL, "ttl", "", "the grant lapses after `DURATION`, such as 8760h")
				fs.Var(&expiresAt, "expires-at", "the grant lapses at `TIME` (RFC 3339)")
			case events.KindDeny, events.KindRevoke:
				fs.StringVar(&cmd.Reason, "reason", "", "why, in the person's or your words (`TEXT`)")
			}
			fs.StringVar(&cmd.Actor, "actor", "", "who recorded it: subject when the person acted, else a service or operator `NAME`")
			fs.StringVar(&cmd.Method, "method", "", "how consent was collected (`METHOD`: dialog, api, import, ...)")
			fs.StringVar(&evidence, "evidence", "", "evidence as a JSON object (`JSON`, at most 4 KiB)")
			fs.Var(&occurredAt, "occurred-at", "when it happened (`TIME`, RFC 3339; default now)")
			fs.StringVar(&cmd.IdempotencyKey, "idempotency-key", "", "`KEY` that makes a retry append nothing")
			fs.Var(&expectedSeq, "expected-seq", "append only if the consent's last event is at `SEQ` (0: no events yet)")
		},
		do: func(ctx context.Context, e *env, args []string) int {
			cmd.Tenant, cmd.SubjectID, cmd.Purpose = e.g.tenant, args[0], args[1]
			cmd.ExpiresAt, cmd.OccurredAt, cmd.ExpectedSeq = expiresAt.t, occurredAt.t, expectedSeq.v
			if evidence != "" {
				if err := checkJSON([]byte(evidence)); err != nil {
					fmt.Fprintf(e.stderr, "consentctl: --evidence is not valid JSON: %v\n", err)
					return exitError
				}
				cmd.Evidence = json.RawMessage(evidence)
			}
			var reply wire.Reply
			var err error
			switch kind {
			case events.KindRequest:
				reply, err = e.client.Request(ctx, cmd)
			case events.KindGrant:
				reply, err = e.client.Grant(ctx, cmd)
			case events.KindDeny:
				reply, err = e.client.Deny(ctx, cmd)
			case events.KindRevoke:
				reply, err = e.client.Revoke(ctx, cmd)
			}
			if err != nil {
				if errors.Is(err, wire.ErrConflict) {
					fmt.Fprintf(e.stderr, "consentctl: %v\n  See where it stands with: consentctl status %s %s%s\n", err, quote(cmd.SubjectID), cmd.Purpose, tenantFlag(e.g.tenant))
					return exitError
				}
				return e.fail(err)
			}
			if e.g.json {
				return e.printJSON(reply)
			}
			if reply.Duplicate {
				fmt.Fprintf(e.stdout, "Already recorded under this idempotency key: nothing appended.\n")
			}
			fmt.Fprintf(e.stdout, "%s at seq %d (event %s)\n\n", reply.Event.Type, reply.Seq, reply.Event.ID)
			printStatuses(e.stdout, []events.Status{reply.Status})
			return exitOK
		},
	}
}

func statusCommand(name, summary string, check bool) command {
	var (
		q  wire.StatusQuery
		at timeFlag // status only: the status at a past time (audit.go)
		by string
	)
	return command{
		name: name, args: "SUBJECT PURPOSE", summary: summary, nargs: [2]int{2, 2},
		flags: func(fs *flag.FlagSet) {
			fs.Uint64Var(&q.MinSeq, "min-seq", 0, "wait until the index has applied `SEQ` (read your writes)")
			fs.IntVar(&q.MinPolicyVersion, "min-policy-version", 0, "allowed only if granted at policy `VERSION` or later")
			if !check {
				fs.Var(&at, "at", "the status at a past `TIME` (RFC 3339), folded from the stream")
				fs.StringVar(&by, "by", "recorded", "with --at, go by `BASIS`: recorded (what the ledger had recorded by then) or occurred (what had happened by then, as known now)")
			}
		},
		do: func(ctx context.Context, e *env, args []string) int {
			q.Tenant, q.SubjectID, q.Purpose = e.g.tenant, args[0], args[1]
			if at.t != nil {
				return statusAt(ctx, e, q, *at.t, by)
			}
			var st events.Status
			var err error
			if check {
				st, err = e.client.Check(ctx, q)
			} else {
				st, err = e.client.Status(ctx, q)
			}
			if err != nil && !(check && errors.Is(err, wire.ErrConsentRequired)) {
				return e.fail(err)
			}
			if e.g.json {
				e.printJSON(st)
			} else {
				printStatuses(e.stdout, []events.Status{st})
			}
			if err != nil {
				minPolicy := q.MinPolicyVersion
				if minPolicy == 0 {
					minPolicy = st.RequiredPolicyVersion // the purpose's current version
				}
				fmt.Fprintf(e.stderr, "consentctl: %s\n  %s\n", required(st, minPolicy), whatToDo(st, minPolicy, e.g.tenant))
				return exitRequired
			}
			return exitOK
		},
	}
}

// required says what check found, in the service's words.
func required(st events.Status, minPolicyVersion int) string {
	if st.State == events.StateGranted {
		return fmt.Sprintf("consent required: granted at policy version %d, but version %d is required", st.PolicyVersion, minPolicyVersion)
	}
	if st.State == events.StateIntegrityViolation {
		return fmt.Sprintf("consent required: %s at seq %d", st.State, st.ViolationSeq)
	}
	return "consent required: " + string(st.State)
}

// whatToDo tells the operator the next step for a consent that does not
// allow the action.
func whatToDo(st events.Status, minPolicyVersion int, tenant string) string {
	who, what := quote(st.SubjectID), st.Purpose
	t := tenantFlag(tenant)
	switch st.State {
	case events.StateNone:
		return fmt.Sprintf("Nothing is recorded for %s and %s: do not proceed. Ask them first (consentctl request %s %s%s) and record their answer with grant or deny.", who, what, who, what, t)
	case events.StateRequested:
		return fmt.Sprintf("%s was asked but has not answered: do not proceed until they grant it (consentctl grant %s %s%s).", who, who, what, t)
	case events.StateDenied:
		return fmt.Sprintf("%s declined %s: do not proceed unless they grant it later.", who, what)
	case events.StateRevoked:
		return fmt.Sprintf("%s withdrew consent to %s: do not proceed unless they grant it again.", who, what)
	case events.StateExpired:
		return fmt.Sprintf("The grant expired at %s: ask %s again before proceeding.", formatTime(st.ExpiresAt), who)
	case events.StateIntegrityViolation:
		return fmt.Sprintf("The history of this consent holds a message at seq %d that fails the integrity checks: do not proceed. Run consentctl audit verify; an operator who has looked into it sets it aside with consentctl admin quarantine %d --reason TEXT%s.", st.ViolationSeq, st.ViolationSeq, t)
	case events.StateGranted:
		return fmt.Sprintf("%s agreed to policy version %d: ask them to agree to version %d (consentctl request %s %s --policy-version %d%s).", who, st.PolicyVersion, minPolicyVersion, who, what, minPolicyVersion, t)
	}
	return "Do not proceed."
}

func listCommand() command {
	var q wire.ListQuery
	return command{
		name: "list", args: "SUBJECT", summary: "show every purpose SUBJECT has a consent for", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) {
			fs.Uint64Var(&q.MinSeq, "min-seq", 0, "wait until the index has applied `SEQ` (read your writes)")
		},
		do: func(ctx context.Context, e *env, args []string) int {
			q.Tenant, q.SubjectID = e.g.tenant, args[0]
			statuses, err := e.client.List(ctx, q)
			if err != nil {
				return e.fail(err)
			}
			if e.g.json {
				return e.printJSON(wire.StatusList{Statuses: statuses})
			}
			if len(statuses) == 0 {
				fmt.Fprintf(e.stdout, "Nothing is recorded for %s in tenant %s.\n", quote(q.SubjectID), events.OrDefaultTenant(q.Tenant))
				return exitOK
			}
			printStatuses(e.stdout, statuses)
			return exitOK
		},
	}
}

func historyCommand() command {
	var q wire.HistoryQuery
	return command{
		name: "history", args: "SUBJECT [PURPOSE]", summary: "show the recorded events, oldest first", nargs: [2]int{1, 2},
		flags: func(fs *flag.FlagSet) {
			fs.Uint64Var(&q.AfterSeq, "after-seq", 0, "start after stream sequence `SEQ` (for the next page)")
			fs.IntVar(&q.Limit, "limit", 0, "at most `N` events (default 100, at most 1000)")
		},
		do: func(ctx context.Context, e *env, args []string) int {
			q.Tenant, q.SubjectID = e.g.tenant, args[0]
			if len(args) == 2 {
				q.Purpose = args[1]
			}
			h, err := e.client.History(ctx, q)
			if err != nil {
				return e.fail(err)
			}
			if e.g.json {
				return e.printJSON(h)
			}
			if len(h.Events) == 0 {
				fmt.Fprintf(e.stdout, "No events for %s in tenant %s.\n", quote(q.SubjectID), events.OrDefaultTenant(q.Tenant))
				return exitOK
			}
			printHistory(e.stdout, h)
			limit := q.Limit
			if limit == 0 {
				limit = wire.DefaultHistoryLimit
			}
			if len(h.Events) == limit {
				last := h.Events[len(h.Events)-1].Seq
				fmt.Fprintf(e.stdout, "\nMore may follow: add --after-seq %d\n", last)
			}
			return exitOK
		},
	}
}

// checkJSON returns nil if data is one JSON value, else what is wrong and
// where: line and column (from 1, in bytes) and byte offset (from 0).
func checkJSON(data []byte) error {
	var v any
	err := json.Unmarshal(data, &v)
	var syntax *json.SyntaxError
	if !errors.As(err, &syntax) {
		return err
	}
	// Offset is the number of bytes read when the error was found: the bad
	// byte is the last of them, or there is none at the end of the input.
	at := max(syntax.Offset-1, 0)
	if err.Error() == "unexpected end of JSON input" {
		at = int64(len(data))
	}
	before := data[:at]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Errorf("%v at line %d, column %d (byte offset %d)", err, line, col, at)
}

// tenantFlag returns " --tenant T" for hints, or "" for the default tenant.
func tenantFlag(tenant string) string {
	if tenant == "" || tenant == events.DefaultTenant {
		return ""
	}
	return " --tenant " + tenant
}
