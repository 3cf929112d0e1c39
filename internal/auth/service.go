package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
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

// ServiceUsers adapts the authority to the consent service's
// ledger.Users (ServiceConfig.Users): IssueUser, Revoke and Users. A
// cluster's servers learn of the changes through PushChanges. Errors: a
// *events.FieldError for an invalid name, tenant or role, or a name not
// in force (Revoke); a *wire.Error 409 for a name in force (Add).
func (a *Authority) ServiceUsers() ledger.Users {
	return serviceUsers{a: a}
}

// serviceUsers is ServiceUsers.
type serviceUsers struct{ a *Authority }

func (u serviceUsers) Add(_ context.Context, name, role, tenant string) (wire.UserCreds, error) {
	creds, err := u.a.IssueUser(name, Role(role), tenant)
	if errors.Is(err, ErrUserExists) {
		return wire.UserCreds{}, &wire.Error{Code: 409, Description: err.Error() + "; revoke it first (consentctl user revoke)"}
	}
	if err != nil {
		if fe, ok := errors.AsType[*events.FieldError](err); ok {
			return wire.UserCreds{}, fe
		}
		if Role(role).Validate() != nil {
			return wire.UserCreds{}, &events.FieldError{Field: "role", Problem: "must be one of checker, writer, subscriber, auditor, admin"}
		}
		return wire.UserCreds{}, err
	}
	for _, info := range u.list(tenant) {
		if info.Name == name && info.RevokedAt == nil {
			return wire.UserCreds{UserInfo: info, Creds: string(creds), InboxPrefix: InboxPrefix(name)}, nil
		}
	}
	return wire.UserCreds{}, fmt.Errorf("user %q issued but not listed", name)
}

func (u serviceUsers) Revoke(_ context.Context, name, tenant string) error {
	err := u.a.Revoke(name, tenant)
	if errors.Is(err, ErrNoUser) {
		return &events.FieldError{Field: "name", Problem: fmt.Sprintf("%q has no credentials in force in tenant %q", name, tenant)}
	}
	return err
}

func (u serviceUsers) List(_ context.Context, tenant string) ([]wire.UserInfo, error) {
	return u.list(tenant), nil
}

func (u serviceUsers) list(tenant string) []wire.UserInfo {
	out := []wire.UserInfo{}
	for _, x := range u.a.Users(tenant) {
		out = append(out, wire.UserInfo{Name: x.Name, Role: string(x.Role), Tenant: tenant,
			PublicKey: x.PublicKey, IssuedAt: x.IssuedAt, RevokedAt: x.RevokedAt})
	}
	return out
}
