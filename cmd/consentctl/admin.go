package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/consentledger/consent/wire"
	"os"
	"strconv"

	"github.com/consentledger/consent/events"
)

// adminQuarantineCommand is admin quarantine SEQ: the operator's recorded
// way past a message that failed the integrity checks
// (consent.v1.admin.quarantine, ledger.Client.Quarantine).
func adminQuarantineCommand() command {
	var q events.Quarantine
	return command{
		name: "admin quarantine", args: "SEQ", nargs: [2]int{1, 1},
		summary: "set aside the message at SEQ that fails the integrity checks; its consent resumes its last good state",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&q.Reason, "reason", "", "why the message is set aside, for the audit trail (`TEXT`, required)")
			fs.StringVar(&q.Actor, "actor", "", "who decided it (`NAME`; default $USER)")
			fs.StringVar(&q.SubjectID, "subject", "", "the consent's `SUBJECT`, with --purpose, when the stream holds no readable event of it")
			fs.StringVar(&q.Purpose, "purpose", "", "the consent's `PURPOSE`, with --subject")
		},
		do: func(ctx context.Context, e *env, args []string) int {
			seq, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || seq == 0 {
				fmt.Fprintf(e.stderr, "consentctl: SEQ %q: want the stream sequence of the message, as consentctl audit verify or check names it\n", args[0])
				return exitError
			}
			q.Seq, q.Tenant = seq, e.g.tenant
			if q.Actor == "" {
				q.Actor = os.Getenv("USER")
			}
			reply, err := e.client.Quarantine(ctx, q)
			if err != nil {
				return e.fail(err)
			}
			if e.g.json {
				return e.printJSON(reply)
			}
			fmt.Fprintf(e.stdout, "%s at seq %d (event %s): seq %d set aside by %s%s\n\n", reply.Event.Type, reply.Seq, reply.Event.ID, seq,
				reply.Event.Actor, recordedBy(reply.Event.RecordedBy))
			printStatuses(e.stdout, []events.Status{reply.Status})
			return exitOK
		},
	}
}

// eraseCommand is erase SUBJECT: erase a person (consent.v1.admin.erase,
// ledger.Client.Erase).
func eraseCommand() command {
	var reason string
	return command{
		name: "erase", args: "SUBJECT", nargs: [2]int{1, 1},
		summary: "erase a person: append consent.erased to each of their consents and destroy their data key; idempotent",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&reason, "reason", "", "why, for the audit trail (`TEXT`, required; stored in the clear, so name a ticket, not the person)")
		},
		do: func(ctx context.Context, e *env, args []string) int {
			r, err := e.client.Erase(ctx, wire.EraseRequest{Tenant: e.g.tenant, SubjectID: args[0], Reason: reason})
			if err != nil {
				return e.fail(err)
			}
			if e.g.json {
				return e.printJSON(r)
			}
			for _, x := range r.Erased {
				fmt.Fprintf(e.stdout, "%s at seq %d: %s erased\n", x.Event.Type, x.Seq, x.Event.Purpose)
			}
			for _, purpose := range r.Already {
				fmt.Fprintf(e.stdout, "%s was erased already\n", purpose)
			}
			if len(r.Erased)+len(r.Already) == 0 {
				fmt.Fprintln(e.stdout, "nothing recorded for this person: nothing to erase")
			}
			if r.KeyDestroyed {
				fmt.Fprintln(e.stdout, "data key destroyed")
			}
			return exitOK
		},
	}
}
