package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/consentledger/consent/wire"
	"time"
)

// holdCommands are hold set, hold release and hold list: the legal holds
// that suspend the erasure of a person (consent.v1.admin.hold.*, admin
// role).
func holdCommands() []command {
	var reason string
	return []command{
		{
			name: "hold set", args: "SUBJECT", nargs: [2]int{1, 1},
			summary: "put a person on legal hold: neither retention nor an erase erases them until the hold is released",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&reason, "reason", "", "why, such as a case number (`TEXT`, required; stored in the clear, so name a case, not the person)")
			},
			do: func(ctx context.Context, e *env, args []string) int {
				r, err := e.client.SetHold(ctx, wire.HoldRequest{Tenant: e.g.tenant, SubjectID: args[0], Reason: reason})
				if err != nil {
					return e.fail(err)
				}
				if e.g.json {
					return e.printJSON(r)
				}
				fmt.Fprintf(e.stdout, "%s is on legal hold (subject key %s): %s\n", args[0], r.Hold.SubjectKey, r.Hold.Reason)
				return exitOK
			},
		},
		{
			name: "hold release", args: "SUBJECT", nargs: [2]int{1, 1},
			summary: "release a person's legal hold: their erasure by retention resumes",
			do: func(ctx context.Context, e *env, args []string) int {
				r, err := e.client.ReleaseHold(ctx, wire.HoldRequest{Tenant: e.g.tenant, SubjectID: args[0]})
				if err != nil {
					return e.fail(err)
				}
				if e.g.json {
					return e.printJSON(r)
				}
				if !r.Released {
					fmt.Fprintf(e.stdout, "%s was not on legal hold: nothing released\n", args[0])
					return exitOK
				}
				fmt.Fprintf(e.stdout, "legal hold of %s released (set %s by %s: %s)\n", args[0],
					r.Hold.SetAt.Format(time.RFC3339), orDash(r.Hold.SetBy), r.Hold.Reason)
				return exitOK
			},
		},
		{
			name: "hold list", nargs: [2]int{0, 0},
			summary: "list the legal holds of a tenant, by subject key",
			do: func(ctx context.Context, e *env, _ []string) int {
				r, err := e.client.ListHolds(ctx, wire.HoldListQuery{Tenant: e.g.tenant})
				if err != nil {
					return e.fail(err)
				}
				if e.g.json {
					return e.printJSON(r)
				}
				w := newTable(e.stdout)
				fmt.Fprintln(w, "TENANT\tSUBJECT KEY\tSET\tBY\tREASON")
				for _, h := range r.Holds {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", h.Tenant, h.SubjectKey, h.SetAt.Format(time.RFC3339), orDash(h.SetBy), oneLine(h.Reason))
				}
				_ = w.Flush()
				return exitOK
			},
		},
	}
}
