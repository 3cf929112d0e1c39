package ledger

import (
	"errors"
	"fmt"
	"strings"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/micro"
)

// HeaderRequestInfo is the header NATS puts on a request that crossed a
// service import: who sent it (account, user, the key that signed the
// user, the user's name and tags). The importing account cannot forge it:
// the server replaces any header of that name the client sent.
const HeaderRequestInfo = "Nats-Request-Info"

// Caller is who sent a request, as ServiceConfig.Authorize established it
// from the request's identity.
type Caller struct {
	// User is recorded on every event the request appends, as recorded_by:
	// "<user name>@<tenant token>".
	User string
	// Tenant is the tenant token of the caller's account: a tenant, or
	// AllTenantsToken for a user of every tenant.
	Tenant string
}

// Authorize decides whether the sender of a request may use endpoint (its
// name under consent.v1, e.g. "check" or "purpose.set"), which reached the
// service under the tenant token of the sender's account (the subject
// consent.v1.<token>.<endpoint>). info is the request's Nats-Request-Info
// header ("" when it has none). It returns who the caller is, or an error
// saying why not; the service answers that error as a 403.
type Authorize func(endpoint, token, info string) (Caller, error)

// callerRequest is a request that Authorize let through: Subject is the
// endpoint's own (consent.v1.<endpoint>, what the counters are kept by),
// and caller is who sent it.
type callerRequest struct {
	micro.Request
	subject string
	caller  Caller
}

func (r *callerRequest) Subject() string { return r.subject }

// authorized wraps the handler of endpoint name for a Service with
// ServiceConfig.Authorize: it receives consent.v1.<token>.<name>, asks
// Authorize, answers 403 when refused and hands the request on otherwise.
func (s *Service) authorized(name string, h micro.HandlerFunc) micro.HandlerFunc {
	subject := "consent.v1." + name
	return func(req micro.Request) {
		caller, err := identify(s.cfg.Authorize, name, subjectToken(req.Subject()), req.Headers().Get(HeaderRequestInfo))
		if err != nil {
			s.respond(req, nil, err)
			return
		}
		h(&callerRequest{Request: req, subject: subject, caller: caller})
	}
}

// identify asks authorize who sent a request to endpoint under the tenant
// token token, with Nats-Request-Info info: the caller, or a 403 saying
// why not (a refusal, or a caller of another tenant than the token's).
func identify(authorize Authorize, endpoint, token, info string) (Caller, error) {
	caller, err := authorize(endpoint, token, info)
	if err == nil && caller.Tenant != token {
		err = fmt.Errorf("the caller's tenant %q is not the request's %q", caller.Tenant, token)
	}
	if err != nil {
		return Caller{}, &wire.Error{Code: 403, Description: "forbidden: " + err.Error()}
	}
	return caller, nil
}

// scoped reports whether the tenant token token is one tenant's (a
// caller of every tenant, or of a Service without Authorize, has "" or
// AllTenantsToken).
func scoped(token string) bool { return token != "" && token != wire.AllTenantsToken }

// forbiddenTenant is the 403 for a caller of the tenant token that names
// another tenant, asked.
func forbiddenTenant(asked, token string) *wire.Error {
	return &wire.Error{Code: 403, Description: fmt.Sprintf("forbidden: tenant %q: your credentials are for tenant %q only", asked, token)}
}

// subjectToken returns the tenant token of consent.v1.<token>.<endpoint>.
func subjectToken(subject string) string {
	rest := strings.TrimPrefix(subject, "consent.v1.")
	token, _, _ := strings.Cut(rest, ".")
	return token
}

// endpointSubject maps a subscription's subject to its endpoint's:
// consent.v1.*.<endpoint> (a Service with Authorize) to consent.v1.<endpoint>.
func endpointSubject(subject string) string {
	if rest, ok := strings.CutPrefix(subject, "consent.v1.*."); ok {
		return "consent.v1." + rest
	}
	return subject
}

// logAttrs returns what a log line about req says of it: the endpoint,
// the tenant token and user when known, and the stream sequence err
// names, if any. Never the person: no subject id is in a NATS subject.
func (s *Service) logAttrs(req micro.Request, err error) []any {
	endpoint := strings.TrimPrefix(req.Subject(), "consent.v1.")
	var attrs []any
	if c := callerOf(req); c.Tenant != "" {
		attrs = []any{"endpoint", endpoint, "tenant", c.Tenant, "user", c.User}
	} else if s.cfg.Authorize != nil {
		// Refused before the caller was known: consent.v1.<token>.<endpoint>.
		token, name, _ := strings.Cut(endpoint, ".")
		attrs = []any{"endpoint", name, "tenant", token}
	} else {
		attrs = []any{"endpoint", endpoint}
	}
	var ie *IntegrityError
	if errors.As(err, &ie) {
		attrs = append(attrs, "seq", ie.Seq)
	}
	return attrs
}

// callerOf returns who sent req; the zero Caller for a Service without
// Authorize.
func callerOf(req micro.Request) Caller {
	if r, ok := req.(*callerRequest); ok {
		return r.caller
	}
	return Caller{}
}

// scope decides the tenant of a request whose body names tenant: a caller
// of one tenant may name only its own (or none, meaning its own); a caller
// of every tenant, or any caller of a Service without Authorize, names
// the tenant it wants (default "default"). It sets *tenant to the
// decision, or returns a 403 naming the field.
func scope(req micro.Request, tenant *string) error {
	token := callerOf(req).Tenant
	if !scoped(token) {
		return nil
	}
	if *tenant != "" && *tenant != token {
		return forbiddenTenant(*tenant, token)
	}
	*tenant = token
	return nil
}

// tenantOf returns the tenant field of a request body, nil for a body
// that has none.
func tenantOf(q any) *string {
	switch q := q.(type) {
	case *events.Command:
		return &q.Tenant
	case *events.PurposeCommand:
		return &q.Tenant
	case *events.Quarantine:
		return &q.Tenant
	case *wire.EraseRequest:
		return &q.Tenant
	case *wire.HoldRequest:
		return &q.Tenant
	case *wire.HoldListQuery:
		return &q.Tenant
	case *wire.StatusQuery:
		return &q.Tenant
	case *wire.ListQuery:
		return &q.Tenant
	case *wire.HistoryQuery:
		return &q.Tenant
	case *wire.PurposeQuery:
		return &q.Tenant
	case *wire.PurposeListQuery:
		return &q.Tenant
	case *wire.StatusAtQuery:
		return &q.Tenant
	case *wire.ReceiptQuery:
		return &q.Tenant
	}
	return nil
}

// scopeBody applies scope to q's tenant field, if it has one.
func scopeBody(req micro.Request, q any) error {
	if t := tenantOf(q); t != nil {
		return scope(req, t)
	}
	return nil
}
