// Package events is the vocabulary of Consent Ledger: the event types that
// make up the audit trail, the commands that produce them, the state a
// consent is in, and the pure functions that connect them.
//
// Decide turns a command and a consent's current state into the next event
// (or a typed error); Evolve folds an event into the state. Both are
// deterministic and do no I/O, so the ledger (which appends), the projector
// (which indexes) and the audit replay (which verifies) can never disagree
// about what a sequence of events means.
//
// The package imports only the standard library and golang.org/x/text
// (Unicode normalisation of subject ids).
package events
