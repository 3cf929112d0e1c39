package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/consentledger/consent/wire"
)

// userCommands are user add, user revoke and user list: the credentials of
// the ledger's clients (consent.v1.admin.user.*, admin role).
func userCommands() []command {
	var role, out string
	return []command{
		{
			name: "user add", args: "NAME", nargs: [2]int{1, 1},
			summary: "issue NATS credentials for a new user of the ledger, with one role in one tenant (--tenant '*' for every tenant)",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&role, "role", "", "what the user may do (`ROLE`, required): checker, writer, subscriber, auditor or admin")
				fs.StringVar(&out, "out", "", "write the credentials to `FILE` (mode 0600) instead of standard output")
			},
			do: func(ctx context.Context, e *env, args []string) int {
				if role == "" {
					fmt.Fprintln(e.stderr, "consentctl: --role is required: checker, writer, subscriber, auditor or admin")
					return exitError
				}
				// --out is created before the credentials are issued: they
				// would be in force, and lost, if it could not be written.
				var f *os.File
				if out != "" {
					var err error
					if f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
						fmt.Fprintf(e.stderr, "consentctl: --out: %v\n", err)
						return exitError
					}
					defer f.Close()
				}
				u, err := e.client.AddUser(ctx, wire.UserRequest{Name: args[0], Role: role, Tenant: e.g.tenant})
				if err != nil {
					if f != nil {
						_ = os.Remove(out)
					}
					return e.fail(err)
				}
				if f != nil {
					if _, err = f.WriteString(u.Creds); err == nil {
						err = f.Close()
					}
					if err != nil {
						fmt.Fprintf(e.stderr, "consentctl: --out: %v\n  User %s is issued: revoke it (consentctl user revoke %s) and add it again.\n", err, u.Name, u.Name)
						return exitError
					}
				}
				if e.g.json {
					return e.printJSON(u)
				}
				if out == "" {
					fmt.Fprint(e.stdout, u.Creds)
					return exitOK
				}
				fmt.Fprintf(e.stdout, "user %s (%s of tenant %s) written to %s\n  connect with: nats --creds %s --inbox-prefix %s ...\n",
					u.Name, u.Role, u.Tenant, out, out, u.InboxPrefix)
				return exitOK
			},
		},
		{
			name: "user revoke", args: "NAME", nargs: [2]int{1, 1},
			summary: "take a user's credentials away: its connections are closed and refused from now on",
			do: func(ctx context.Context, e *env, args []string) int {
				if err := e.client.RevokeUser(ctx, wire.UserRequest{Name: args[0], Tenant: e.g.tenant}); err != nil {
					return e.fail(err)
				}
				fmt.Fprintf(e.stdout, "user %s revoked\n", args[0])
				return exitOK
			},
		},
		{
			name: "user list", nargs: [2]int{0, 0},
			summary: "list the credentials issued in a tenant, revoked ones included",
			do: func(ctx context.Context, e *env, _ []string) int {
				users, err := e.client.Users(ctx, wire.UserRequest{Tenant: e.g.tenant})
				if err != nil {
					return e.fail(err)
				}
				if e.g.json {
					return e.printJSON(wire.UserList{Users: users})
				}
				w := newTable(e.stdout)
				fmt.Fprintln(w, "NAME\tROLE\tTENANT\tISSUED\tREVOKED\tPUBLIC KEY")
				for _, u := range users {
					revoked := "-"
					if u.RevokedAt != nil {
						revoked = u.RevokedAt.Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, u.Tenant, u.IssuedAt.Format(time.RFC3339), revoked, u.PublicKey)
				}
				_ = w.Flush()
				return exitOK
			},
		},
	}
}
