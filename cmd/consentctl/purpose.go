package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
)

// purposeCommand is purpose set|get|list: the purpose registry.
func purposeCommand() command {
	var (
		cmd         events.PurposeCommand
		description string
		defaultTTL  string
		retention   string
		expectedSeq optionalUint
		minSeq      uint64
	)
	setOnly := []string{"description", "policy-version", "default-ttl", "retention", "actor", "idempotency-key", "expected-seq"}
	return command{
		name: "purpose", args: "set|get|list [PURPOSE]", nargs: [2]int{1, 2},
		summary: "set, show or list purposes: description, policy version, default ttl, retention",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&description, "description", "", "set: what the purpose is, in words a person reads (`TEXT`; empty clears it)")
			fs.IntVar(&cmd.PolicyVersion, "policy-version", 0, "set: the current policy `VERSION`; raising it makes older grants outdated (default: keep, 1 for a new purpose)")
			fs.StringVar(&defaultTTL, "default-ttl", "", "set: grants without ttl or expires_at lapse after `DURATION`, such as 8760h (empty clears it)")
			fs.StringVar(&retention, "retention", "", "set: once every consent of a person has ended, keep their records `DURATION` after this purpose's ended, such as 17520h (2 years), then erase the person; empty clears it (kept until erased by hand)")
			fs.StringVar(&cmd.Actor, "actor", "", "set: who made the change (`NAME`)")
			fs.StringVar(&cmd.IdempotencyKey, "idempotency-key", "", "set: `KEY` that makes a retry append nothing")
			fs.Var(&expectedSeq, "expected-seq", "set: only if the purpose's last change is at `SEQ` (0: never set)")
			fs.Uint64Var(&minSeq, "min-seq", 0, "get, list: wait until the index has applied `SEQ` (read your writes)")
		},
		do: func(ctx context.Context, e *env, args []string) int {
			verb := args[0]
			wantArgs := map[string]int{"set": 2, "get": 2, "list": 1}
			n, known := wantArgs[verb]
			if !known || len(args) != n {
				fmt.Fprintf(e.stderr, "consentctl: usage: consentctl purpose set PURPOSE [flags] | purpose get PURPOSE | purpose list\n")
				return exitError
			}
			if verb != "set" {
				for _, name := range setOnly {
					if e.set[name] {
						fmt.Fprintf(e.stderr, "consentctl: --%s only goes with purpose set\n", name)
						return exitError
					}
				}
			} else if e.set["min-seq"] {
				fmt.Fprintf(e.stderr, "consentctl: --min-seq goes with purpose get and list\n")
				return exitError
			}
			tenant := e.g.tenant
			switch verb {
			case "set":
				cmd.Tenant, cmd.Purpose, cmd.ExpectedSeq = tenant, args[1], expectedSeq.v
				if e.set["description"] {
					cmd.Description = &description
				}
				if e.set["default-ttl"] {
					cmd.DefaultTTL = &defaultTTL
				}
				if e.set["retention"] {
					cmd.Retention = &retention
				}
				reply, err := e.client.SetPurpose(ctx, cmd)
				if err != nil {
					if errors.Is(err, wire.ErrConflict) {
						fmt.Fprintf(e.stderr, "consentctl: %v\n  See where it stands with: consentctl purpose get %s%s\n", err, cmd.Purpose, tenantFlag(tenant))
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
				printPurposes(e.stdout, []events.Purpose{reply.Purpose})
			case "get":
				p, err := e.client.GetPurpose(ctx, wire.PurposeQuery{Tenant: tenant, Purpose: args[1], MinSeq: minSeq})
				if err != nil {
					return e.fail(err)
				}
				if e.g.json {
					return e.printJSON(p)
				}
				if !p.Registered {
					fmt.Fprintf(e.stdout, "Purpose %s is not registered in tenant %s: its consents need no minimum policy version.\n  Register it with: consentctl purpose set %s --description TEXT%s\n",
						p.Purpose, p.Tenant, p.Purpose, tenantFlag(tenant))
					return exitOK
				}
				printPurposes(e.stdout, []events.Purpose{p})
			case "list":
				list, err := e.client.ListPurposes(ctx, wire.PurposeListQuery{Tenant: tenant, MinSeq: minSeq})
				if err != nil {
					return e.fail(err)
				}
				if e.g.json {
					return e.printJSON(wire.PurposeList{Purposes: list})
				}
				if len(list) == 0 {
					fmt.Fprintf(e.stdout, "No purposes are registered in tenant %s.\n", events.OrDefaultTenant(tenant))
					return exitOK
				}
				printPurposes(e.stdout, list)
			}
			return exitOK
		},
	}
}

// printPurposes writes one row per purpose.
func printPurposes(w io.Writer, purposes []events.Purpose) {
	tw := newTable(w)
	fmt.Fprintln(tw, "TENANT\tPURPOSE\tPOLICY\tDEFAULT TTL\tRETENTION\tUPDATED\tSEQ\tDESCRIPTION")
	for _, p := range purposes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", p.Tenant, p.Purpose, p.PolicyVersion, orDash(p.DefaultTTL),
			orDash(p.Retention), formatTime(p.UpdatedAt), p.Seq, orDash(oneLine(p.Description)))
	}
	_ = tw.Flush()
}
