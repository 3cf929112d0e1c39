package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
)

// ServiceAuthorize returns the authority as the consent service's
// ledger.Authorize (ServiceConfig.Authorize, FeedConfig.Identify): each
// request is decided by Authorize, and its caller is the user it returns
// in the subject's tenant token.
func (a *Authority) ServiceAuthorize() ledger.Authorize {
	return func(endpoint, token, info string) (ledger.Caller, error) {
		user, err := a.Authorize(endpoint, token, info)
		if err != nil {
			return ledger.Caller{}, err
		}
		return ledger.Caller{User: user, Tenant: token}, nil
	}
}

// ServiceUsers returns the authority as the consent service's
// ledger.Users (ServiceConfig.Users): IssueUser, Revoke and Users. push,
// when not nil, is called after every change, for servers this process
// does not run (see Push); with an embedded server (ServerOptions) the
// change reaches it without. Errors: a *events.FieldError for an invalid
// name, tenant or role; a *ledger.Error 409 for a name in force (Add), 404
// for one not in force (Revoke); push's error.
func (a *Authority) ServiceUsers(push func(ctx context.Context) error) ledger.Users {
	return serviceUsers{a: a, push: push}
}

// serviceUsers is ServiceUsers.
type serviceUsers struct {
	a    *Authority
	push func(ctx context.Context) error // nil with the embedded server
}

func (u serviceUsers) Add(ctx context.Context, name, role, tenant string) (ledger.UserCreds, error) {
	creds, err := u.a.IssueUser(name, Role(role), tenant)
	if errors.Is(err, ErrUserExists) {
		return ledger.UserCreds{}, &ledger.Error{Code: 409, Description: err.Error() + "; revoke it first (consentctl user revoke)"}
	}
	if err != nil {
		if fe, ok := errors.AsType[*events.FieldError](err); ok {
			return ledger.UserCreds{}, fe
		}
		if Role(role).Validate() != nil {
			return ledger.UserCreds{}, &events.FieldError{Field: "role", Problem: "must be one of checker, writer, subscriber, auditor, admin"}
		}
		return ledger.UserCreds{}, err
	}
	if err := u.pushed(ctx); err != nil {
		return ledger.UserCreds{}, err
	}
	for _, info := range u.list(tenant) {
		if info.Name == name && info.RevokedAt == nil {
			return ledger.UserCreds{UserInfo: info, Creds: string(creds), InboxPrefix: InboxPrefix(name)}, nil
		}
	}
	return ledger.UserCreds{}, fmt.Errorf("user %q issued but not listed", name)
}

func (u serviceUsers) Revoke(ctx context.Context, name, tenant string) error {
	if err := u.a.Revoke(name, tenant); errors.Is(err, ErrNoUser) {
		return &ledger.Error{Code: 404, Description: err.Error()}
	} else if err != nil {
		return err
	}
	return u.pushed(ctx)
}

func (u serviceUsers) List(_ context.Context, tenant string) ([]ledger.UserInfo, error) {
	return u.list(tenant), nil
}

func (u serviceUsers) list(tenant string) []ledger.UserInfo {
	out := []ledger.UserInfo{}
	for _, x := range u.a.Users(tenant) {
		out = append(out, ledger.UserInfo{Name: x.Name, Role: string(x.Role), Tenant: tenant,
			PublicKey: x.PublicKey, IssuedAt: x.IssuedAt, RevokedAt: x.RevokedAt})
	}
	return out
}

func (u serviceUsers) pushed(ctx context.Context) error {
	if u.push == nil {
		return nil
	}
	if err := u.push(ctx); err != nil {
		return fmt.Errorf("push the accounts to the NATS servers: %w", err)
	}
	return nil
}
