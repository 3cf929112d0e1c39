package ledger

import (
	"context"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go/micro"
)

// Users issues and revokes client credentials: consentd's is
// internal/auth's Authority. Errors that are the request's fault are
// *events.FieldError (400; Revoke's for a name with no credentials in
// force names "name") or *wire.Error (409); others are 500.
type Users interface {
	Add(ctx context.Context, name, role, tenant string) (wire.UserCreds, error)
	Revoke(ctx context.Context, name, tenant string) error
	List(ctx context.Context, tenant string) ([]wire.UserInfo, error)
}

// userEndpoints are admin.user.add, revoke and list, when the Service has
// ServiceConfig.Users.
func (s *Service) userEndpoints() []endpoint {
	if s.cfg.Users == nil {
		return nil
	}
	return []endpoint{
		{"admin.user.add", s.handleUser(true, true)},
		{"admin.user.revoke", s.handleUser(true, false)},
		{"admin.user.list", s.handleUser(false, false)},
	}
}

// handleUser answers the user endpoints: named ones need a name, add a
// role too.
func (s *Service) handleUser(named, add bool) micro.HandlerFunc {
	return func(req micro.Request) {
		if s.tooLarge(req) {
			return
		}
		var q wire.UserRequest
		err := events.DecodeStrict(req.Data(), &q)
		if err == nil && q.Tenant != "*" {
			err = scope(req, &q.Tenant)
			q.Tenant = events.OrDefaultTenant(q.Tenant)
		} else if token := callerOf(req).Tenant; err == nil && scoped(token) {
			err = forbiddenTenant("*", token)
		}
		if err == nil {
			err = validateUserRequest(&q, named, add)
		}
		if err != nil {
			s.respond(req, nil, err)
			return
		}
		s.goAsync(req, s.cfg.CommandTimeout, func(ctx context.Context) (any, error) {
			switch {
			case add:
				return s.cfg.Users.Add(ctx, q.Name, q.Role, q.Tenant)
			case named:
				if err := s.cfg.Users.Revoke(ctx, q.Name, q.Tenant); err != nil {
					return nil, err
				}
				return wire.UserList{Users: []wire.UserInfo{}}, nil
			}
			users, err := s.cfg.Users.List(ctx, q.Tenant)
			return wire.UserList{Users: users}, err
		})
	}
}

func validateUserRequest(q *wire.UserRequest, named, add bool) error {
	if q.Tenant != "*" {
		if err := events.ValidateName("tenant", q.Tenant); err != nil {
			return err
		}
	}
	switch {
	case named && q.Name == "":
		return &events.FieldError{Field: "name", Problem: "is required"}
	case !named && q.Name != "":
		return &events.FieldError{Field: "name", Problem: "is not taken here"}
	case add && q.Role == "":
		return &events.FieldError{Field: "role", Problem: "is required: checker, writer, subscriber, auditor or admin"}
	case !add && q.Role != "":
		return &events.FieldError{Field: "role", Problem: "is not taken here"}
	}
	if named {
		return events.ValidateName("name", q.Name)
	}
	return nil
}
