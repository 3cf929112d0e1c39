// Package ledger is the server side of Consent Ledger.
//
// It owns the CONSENT stream (creating it immutable, or refusing one that is
// not), appends events with per-consent optimistic concurrency, idempotency
// keys and a hash chain, reads histories back from the stream, and serves
// the consent micro service and the change feed. The Go client that speaks
// to it is package client; the request and reply types both use are in
// package wire.
//
// Reads of current state come from a StateReader (the projector's index);
// this package does not import the projector.
package ledger
