// Package wire holds what the consent service and its clients exchange:
// the request subjects (SubjectCheck, SubjectGrant, ...), the request and
// reply bodies (StatusQuery, Reply, History, ...) with their JSON names,
// and the wire Error with one sentinel per code (ErrConsentRequired,
// ErrConflict, ...).
//
// Both sides import it: the server (package ledger) decodes these bodies
// and encodes its errors as *Error; the Go client (package client) sends
// them and turns the service's error headers back into *Error, so that
// errors.Is(err, wire.ErrConflict) holds on either side. docs/contract.md
// is the reference of the same contract for other languages.
//
// The package does no I/O; its values are plain data.
package wire
