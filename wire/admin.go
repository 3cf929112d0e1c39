package wire

import (
	"time"
)

// The user administration endpoints (admin role; answered only by a
// ledger.Service with ledger.ServiceConfig.Users).
const (
	SubjectUserAdd    = "consent.v1.admin.user.add"
	SubjectUserRevoke = "consent.v1.admin.user.revoke"
	SubjectUserList   = "consent.v1.admin.user.list"
)

// UserRequest is the body of admin.user.add (Name, Role, Tenant),
// admin.user.revoke (Name, Tenant) and admin.user.list (Tenant). Tenant is
// a tenant name, "*" for a user of every tenant, or empty: the caller's
// own tenant, "default" for a caller of every tenant.
type UserRequest struct {
	Name   string `json:"name,omitempty"`
	Role   string `json:"role,omitempty"`
	Tenant string `json:"tenant,omitempty"`
}

// UserInfo describes one issued credential.
type UserInfo struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Tenant    string     `json:"tenant"`
	PublicKey string     `json:"public_key"`
	IssuedAt  time.Time  `json:"issued_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// UserCreds is the reply of admin.user.add: the user and its NATS
// credentials file (a secret: store it with mode 0600), and the inbox
// prefix its client must use.
type UserCreds struct {
	UserInfo
	Creds       string `json:"creds"`
	InboxPrefix string `json:"inbox_prefix"`
}

// UserList is the reply of admin.user.list.
type UserList struct {
	Users []UserInfo `json:"users"`
}

// SubjectQuarantine is the operator's endpoint that gets a consent past a
// message that failed the integrity checks: request events.Quarantine,
// reply Reply (the consent.quarantined event, its seq and the status it
// leads to). See ledger.Ledger.Quarantine.
const SubjectQuarantine = "consent.v1.admin.quarantine"
