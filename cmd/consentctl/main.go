// Command consentctl is the command line of Consent Ledger: it records
// consent (request, grant, deny, revoke) and asks where it stands (status,
// check, list, history) through the consent service that consentd runs.
//
// Run consentctl --help for the commands. check exits 0 when the consent
// allows the action, 1 when consent is required and 2 on any other error,
// so scripts can gate on it.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
