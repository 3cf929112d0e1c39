package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/jwt/v2"
)

// requestInfo is the part of a Nats-Request-Info header (nats-server's
// ClientInfo) that Authorize reads. The server writes it, replacing any
// header of that name the client sent.
type requestInfo struct {
	Account   string `json:"acc"`
	User      string `json:"user"`       // the user's public key
	IssuerKey string `json:"issuer_key"` // the key that signed the user: a role's
}

// Authorize decides a request to the consent service: endpoint is its name
// under consent.v1 ("check", "purpose.set", "feed.open"), token the
// tenant token the sender's account import put in the subject, and info
// the request's Nats-Request-Info header. The sender must be a user in
// force of one of this authority's client accounts, signed by a role key
// of that account whose role may use endpoint, and the account must be the
// tenant token's. It returns the user as recorded on events,
// "<name>@<token>", or an error saying what is wrong.
func (a *Authority) Authorize(endpoint, token, info string) (string, error) {
	if info == "" {
		return "", errors.New("the request carries no identity (it did not come through a client account's import)")
	}
	var ri requestInfo
	if err := json.Unmarshal([]byte(info), &ri); err != nil {
		return "", fmt.Errorf("the request's identity is unreadable: %w", err)
	}
	tenant, role, ok := a.Identify(ri.Account, ri.IssuerKey)
	if !ok {
		return "", errors.New("the request's account or signing key is not one of this ledger's")
	}
	if tenantToken(tenant) != token {
		return "", fmt.Errorf("the request's account is tenant %q's, not %q's", tenantToken(tenant), token)
	}
	if !role.Allows(endpoint) {
		return "", fmt.Errorf("role %s may not use consent.v1.%s", role, endpoint)
	}
	name, ok := a.userName(tenant, ri.User)
	if !ok {
		return "", errors.New("the request's user is unknown or revoked")
	}
	return name + "@" + token, nil
}

// userName returns the name of the user in force with public key key in
// tenant's account, reading the directory again on a miss (a user another
// process issued).
func (a *Authority) userName(tenant, key string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if name, ok := a.findUser(tenant, key); ok {
		return name, true
	}
	if err := a.refresh(); err != nil {
		return "", false
	}
	return a.findUser(tenant, key)
}

func (a *Authority) findUser(tenant, key string) (string, bool) {
	acc, ok := a.clients[tenant]
	if !ok {
		return "", false
	}
	for _, u := range acc.users {
		if u.PublicKey == key && u.RevokedAt == nil {
			return u.Name, true
		}
	}
	return "", false
}

// Allows reports whether the role may use endpoint, named as under
// consent.v1 ("check", "purpose.set").
func (r Role) Allows(endpoint string) bool {
	subject := "consent.v1." + endpoint
	return slices.ContainsFunc(r.Subjects(), func(allowed string) bool { return subjectMatches(allowed, subject) })
}

// subjectMatches reports whether the NATS subject pattern (tokens, * for
// one token, > for the rest) matches subject.
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

// ServiceUser returns fresh credentials of a user of SVC with no
// permission limits: what consentd's own connections use. The caller owns
// them; they reach the stream and everything in it, so only consentd (and
// tests standing in for an attacker who has the authority's directory)
// should hold them.
func (a *Authority) ServiceUser() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.serviceUser()
}

// ServiceInfoSubjects are the consent service's $SRV subjects (micro's
// PING, INFO and STATS: endpoints, counters, the last error of each, the
// index's and the stream's health). SVC exports them and every client
// account imports them, but only the auditor and admin roles may publish
// to them: `nats micro info consent` with those credentials.
const ServiceInfoSubjects = "$SRV.>"

// serviceInfoImport is the import of ServiceInfoSubjects into the client
// account accountKey, with its activation.
func (a *Authority) serviceInfoImport(accountKey string) (*jwt.Import, error) {
	act := jwt.NewActivationClaims(accountKey)
	act.Name = "consent service info"
	act.ImportSubject = ServiceInfoSubjects
	act.ImportType = jwt.Service
	token, err := act.Encode(a.svc.kp)
	if err != nil {
		return nil, fmt.Errorf("auth: sign the service info activation: %w", err)
	}
	return &jwt.Import{Name: "consent service info", Account: a.svc.pub, Type: jwt.Service, Token: token, Subject: ServiceInfoSubjects}, nil
}

// hasImport reports whether imports hold one of subject.
func hasImport(imports jwt.Imports, subject string) bool {
	for _, im := range imports {
		if string(im.Subject) == subject {
			return true
		}
	}
	return false
}
