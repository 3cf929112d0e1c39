// Package client is the Go client of the Consent Ledger service: it records
// consent, answers "may I?" and follows every change, over a NATS
// connection the caller owns.
//
// # Connect
//
// A Client sends requests to the consent service (consentd) over NATS
// request-reply. Connect with nats.go as for any NATS service, then:
//
//	nc, err := nats.Connect(url, nats.UserCredentials(creds))
//	...
//	c := client.NewClient(nc, client.ClientOptions{})
//
// A Client is safe for concurrent use and does not own nc: close the
// connection when done.
//
// # Record and check consent
//
// Request, Grant, Deny and Revoke append an event (an events.Command) and
// return a wire.Reply with its stream sequence. Check answers whether the
// action is allowed now; Status, List and History read state and events.
//
//	r, err := c.Grant(ctx, events.Command{SubjectID: "alice@example.com", Purpose: "newsletter"})
//	st, err := c.Check(ctx, wire.StatusQuery{SubjectID: "alice@example.com", Purpose: "newsletter", MinSeq: r.Seq})
//
// MinSeq makes a read reflect at least that write (read your writes).
//
// # Watch changes
//
// Watch follows the stream itself: every change of a consent (and of the
// purpose registry) in stream order, each with the status it leads to.
// A durable watch (WatchOptions.Durable) survives restarts and must
// acknowledge what it handled (Change.Ack); see docs/subscribers.md.
//
// # Check in memory
//
// A Checker answers checks from memory, kept current by a watch of the
// stream, and asks the service only for what it has not seen: for a
// service that checks consent on every request.
//
// # Errors
//
// An error the service answered with is a *wire.Error matching one
// sentinel per code: errors.Is(err, wire.ErrConsentRequired) for a check
// that does not allow the action, wire.ErrConflict for a change the
// consent's state forbids or an expected_seq that does not match,
// wire.ErrBadRequest for an invalid field (the description names it),
// wire.ErrForbidden for credentials that do not allow the request, and
// wire.ErrUnavailable when no service answers or the index has not reached
// min_seq in time (retry). A context that ends first gives its own error.
//
// The request and reply types and the subjects live in package wire, which
// the server (package ledger) uses too.
package client
