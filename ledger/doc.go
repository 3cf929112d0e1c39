// Package ledger is the write side and the public face of Consent Ledger.
//
// It owns the CONSENT stream (creating it immutable, or refusing one that is
// not), appends events with per-consent optimistic concurrency, idempotency
// keys and a hash chain, reads histories back from the stream, serves the
// consent micro service, and offers the Go Client that speaks to it.
//
// Reads of current state come from a StateReader (the projector's index);
// this package does not import the projector.
package ledger
