package ledger

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/micro"
)

// Observer is told what the Service and the Ledger decide, for metrics
// (consentd's internal/metrics implements it over Prometheus). Its methods
// are called on the request paths, concurrently: they must be quick, must
// not block and must not keep their arguments. Every string argument comes
// from a small fixed set (the Append*, Lookup* constants, event types and
// endpoint names): never a subject id or a tenant.
type Observer interface {
	// Appended: one append of an event of type t ended with result
	// (AppendStored, ...) after d. For the commands (request, grant, deny,
	// revoke) d runs from the service taking the request to its reply; for
	// consent.expired and consent.erased it is the append itself.
	Appended(t events.Type, result string, d time.Duration)
	// Looked: one request to a lookup endpoint (LookupEndpoints) was
	// answered with result (LookupAllowed, ...) d after it was taken.
	Looked(endpoint, result string, d time.Duration)
	// MinSeqWaited: a lookup waited for its min_seq; reached is false when
	// the wait timed out (answered 503).
	MinSeqWaited(reached bool)
	// GroupCommitted: group commit sent one group of n events, which took
	// d to be stored (or refused).
	GroupCommitted(n int, d time.Duration)
}

// Results of Observer.Appended.
const (
	AppendStored      = "stored"      // a new event was stored
	AppendDuplicate   = "duplicate"   // a repeated idempotency key: the first event was returned
	AppendConflict    = "conflict"    // 409 other than a forbidden transition: expected_seq missed, contention, integrity, an expiry lost to another instance
	AppendForbidden   = "forbidden"   // 409 forbidden by the consent's state (the transition table), or 403 (the caller may not)
	AppendBadRequest  = "bad_request" // 400 or 413
	AppendUnavailable = "unavailable" // 503: writes refused on an unsafe stream, no leader, timeouts
	AppendError       = "error"       // anything else (500)
)

// Results of Observer.Looked.
const (
	LookupAllowed         = "allowed"          // check: consent given
	LookupConsentRequired = "consent_required" // check: 403 carrying the status
	LookupFound           = "found"            // any other lookup answered
	LookupBadRequest      = "bad_request"      // 400 or 413
	LookupForbidden       = "forbidden"        // 403: the caller may not
	LookupConflict        = "conflict"         // 409 (history of a consent with an integrity violation)
	LookupUnavailable     = "unavailable"      // 503: index not ready, min_seq not reached in time, stream unavailable
	LookupError           = "error"            // anything else (500)
)

// AppendResults and LookupResults list every result an Observer is given.
var (
	AppendResults = []string{AppendStored, AppendDuplicate, AppendConflict, AppendForbidden, AppendBadRequest, AppendUnavailable, AppendError}
	LookupResults = []string{LookupAllowed, LookupConsentRequired, LookupFound, LookupBadRequest, LookupForbidden, LookupConflict, LookupUnavailable, LookupError}
)

// LookupEndpoints are the endpoints whose requests Observer.Looked counts
// (the reads of the consent service); the commands count in Appended.
var LookupEndpoints = []string{"status", "check", "list", "history", "status_at", "receipt", "purpose.get", "purpose.list"}

// AppendedTypes are the event types Observer.Appended is given.
var AppendedTypes = []events.Type{events.TypeRequested, events.TypeGranted, events.TypeDenied, events.TypeRevoked, events.TypeExpired, events.TypeErased}

// appendResult classifies the outcome of an append.
func appendResult(reply *wire.Reply, err error) string {
	if err == nil {
		if reply != nil && reply.Duplicate {
			return AppendDuplicate
		}
		return AppendStored
	}
	switch WireError(err).Code {
	case 400, 413:
		return AppendBadRequest
	case 403:
		return AppendForbidden
	case 409:
		if errors.Is(err, events.ErrForbidden) {
			return AppendForbidden
		}
		return AppendConflict
	case 503:
		return AppendUnavailable
	}
	if errors.Is(err, ErrExpiryLost) {
		return AppendConflict
	}
	return AppendError
}

// lookupResult classifies the answer to a lookup.
func lookupResult(check bool, err error) string {
	if err == nil {
		if check {
			return LookupAllowed
		}
		return LookupFound
	}
	we := WireError(err)
	switch we.Code {
	case 400, 413:
		return LookupBadRequest
	case 403:
		if we.Status != nil {
			return LookupConsentRequired
		}
		return LookupForbidden
	case 409:
		return LookupConflict
	case 503:
		return LookupUnavailable
	}
	return LookupError
}

// observedEndpoint is what the Service reports of one endpoint's requests.
type observedEndpoint struct {
	name    string
	check   bool        // the check endpoint: success is "allowed"
	command events.Type // the event type of a command endpoint, else ""
}

// observedRequest is a request taken at start, for Observer.
type observedRequest struct {
	micro.Request
	start time.Time
	ep    *observedEndpoint
}

// observed wraps the handler of endpoint name so that its answer reaches
// the Service's Observer; it returns h itself without an Observer, or for
// an endpoint the Observer is not told about.
func (s *Service) observed(name string, h micro.HandlerFunc) micro.HandlerFunc {
	if s.cfg.Observer == nil {
		return h
	}
	ep := &observedEndpoint{name: name, check: name == "check"}
	for _, k := range events.Kinds {
		if string(k) == name {
			ep.command = k.EventType()
		}
	}
	if ep.command == "" && !slices.Contains(LookupEndpoints, name) {
		return h
	}
	return func(req micro.Request) {
		h(&observedRequest{Request: req, start: time.Now(), ep: ep})
	}
}

// observe tells the Observer how req was answered: body or err, as
// respond and publish send it.
func (s *Service) observe(req micro.Request, body any, err error) {
	if s.cfg.Observer == nil {
		return
	}
	var o *observedRequest
	for o == nil {
		switch r := req.(type) {
		case *observedRequest:
			o = r
		case *callerRequest:
			req = r.Request
		default:
			return
		}
	}
	d := time.Since(o.start)
	if o.ep.command != "" {
		var reply *wire.Reply
		if r, ok := body.(wire.Reply); ok {
			reply = &r
		}
		s.cfg.Observer.Appended(o.ep.command, appendResult(reply, err), d)
		return
	}
	s.cfg.Observer.Looked(o.ep.name, lookupResult(o.ep.check, err), d)
}

// observeMinSeq wraps w, a lookup waiting for min_seq, so that the
// Observer learns whether the wait reached it.
func (s *Service) observeMinSeq(w work) work {
	if s.cfg.Observer == nil {
		return w
	}
	return func(ctx context.Context) (any, error) {
		body, err := w(ctx)
		s.cfg.Observer.MinSeqWaited(!errors.Is(err, events.ErrStale))
		return body, err
	}
}

// observeAppend tells the Ledger's Observer that an append of an event of
// type t that began at start ended with reply and err.
func (l *Ledger) observeAppend(t events.Type, start time.Time, reply *wire.Reply, err error) {
	if l.observer != nil {
		l.observer.Appended(t, appendResult(reply, err), time.Since(start))
	}
}
