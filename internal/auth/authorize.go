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

// parseRequestInfo reads acc, user and issuer_key, each a JSON string,
// from the top level of the JSON object info, and skips every other member
// without decoding it: the header carries the whole user JWT, which
// json.Unmarshal would validate and scan byte by byte on every request,
// most of Authorize's time. Keys match exactly (encoding/json would also
// take "ACC"). It returns an error for one of the three names given twice
// or not as a string, and for what is not an object; the members it skips
// are checked only as far as finding their end.
func parseRequestInfo(info string) (requestInfo, error) {
	var ri requestInfo
	p := infoScanner{s: info}
	if !p.consume('{') {
		return ri, errors.New("not a JSON object")
	}
	if p.consume('}') {
		return ri, p.end()
	}
	var seen uint8 // a bit per field read
	for {
		key, err := p.str()
		if err != nil {
			return ri, fmt.Errorf("member name: %w", err)
		}
		if !p.consume(':') {
			return ri, fmt.Errorf("member %q: ':' expected", key)
		}
		var field *string
		var bit uint8
		switch key {
		case "acc":
			field, bit = &ri.Account, 1
		case "user":
			field, bit = &ri.User, 2
		case "issuer_key":
			field, bit = &ri.IssuerKey, 4
		}
		switch {
		case field == nil:
			err = p.skipValue()
		case seen&bit != 0:
			err = errors.New("given twice")
		default:
			seen |= bit
			*field, err = p.str()
		}
		if err != nil {
			return ri, fmt.Errorf("member %q: %w", key, err)
		}
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			return ri, p.end()
		}
		return ri, fmt.Errorf("after member %q: ',' or '}' expected", key)
	}
}

// infoScanner reads a JSON text from s, from offset i on.
type infoScanner struct {
	s string
	i int
}

func (p *infoScanner) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

// consume skips white space and then c, if c comes next.
func (p *infoScanner) consume(c byte) bool {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end checks that only white space is left.
func (p *infoScanner) end() error {
	p.space()
	if p.i != len(p.s) {
		return errors.New("data after the object")
	}
	return nil
}

// rawString skips white space and returns the string literal that comes
// next, quotes and escapes included.
func (p *infoScanner) rawString() (string, error) {
	p.space()
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", errors.New("string expected")
	}
	start := p.i
	p.i++
	// Each byte is looked at a bounded number of times, however many
	// escapes the string holds (the connection name in the header is the
	// client's to choose).
	for {
		j := strings.IndexByte(p.s[p.i:], '"')
		if j < 0 {
			return "", errors.New("unterminated string")
		}
		quote := p.i + j
		for p.i < quote {
			k := strings.IndexByte(p.s[p.i:quote], '\\')
			if k < 0 {
				break
			}
			p.i += k + 2 // the backslash and the character it escapes
		}
		if p.i > quote {
			continue // the quote was escaped
		}
		p.i = quote + 1
		return p.s[start:p.i], nil
	}
}

// str returns the string that comes next, decoded. A string of printable
// ASCII without escapes (every key) is returned as it stands; any other
// is decoded by encoding/json.
func (p *infoScanner) str() (string, error) {
	raw, err := p.rawString()
	if err != nil {
		return "", err
	}
	body := raw[1 : len(raw)-1]
	for i := 0; i < len(body); i++ {
		if c := body[i]; c < 0x20 || c > 0x7e || c == '\\' {
			var out string
			err := json.Unmarshal([]byte(raw), &out)
			return out, err
		}
	}
	return body, nil
}

// skipValue skips white space and the value that comes next: a string, an
// object or array (to its matching end), or a literal (to the next
// delimiter).
func (p *infoScanner) skipValue() error {
	p.space()
	if p.i >= len(p.s) {
		return errors.New("value expected")
	}
	switch p.s[p.i] {
	case '"':
		_, err := p.rawString()
		return err
	case '{', '[':
		depth := 0
		for p.i < len(p.s) {
			switch p.s[p.i] {
			case '"':
				if _, err := p.rawString(); err != nil {
					return err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					p.i++
					return nil
				}
			}
			p.i++
		}
		return errors.New("unterminated value")
	}
	start := p.i
	for p.i < len(p.s) && !strings.ContainsRune(",}] \t\r\n", rune(p.s[p.i])) {
		p.i++
	}
	if p.i == start {
		return errors.New("value expected")
	}
	return nil
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
	ri, err := parseRequestInfo(info)
	if err != nil {
		return "", fmt.Errorf("the request's identity is unreadable: %w", err)
	}
	tenant, role, name, err := a.identifyUser(ri.Account, ri.IssuerKey, ri.User)
	if err != nil {
		return "", err
	}
	if tenantToken(tenant) != token {
		return "", fmt.Errorf("the request's account is tenant %q's, not %q's", tenantToken(tenant), token)
	}
	if !role.Allows(endpoint) {
		return "", fmt.Errorf("role %s may not use consent.v1.%s", role, endpoint)
	}
	if name == "" {
		return "", errors.New("the request's user is unknown or revoked")
	}
	return name + "@" + token, nil
}

// identifyUser is Identify and the user's name at once, without deriving
// a public key: it finds the client account whose key is accountKey, takes
// the role from that account's scoped signing key issuerKey as its claims
// hold it (the scope the server applied to the user: tenant and
// updateTemplates make every role key one, with its role), and the name
// of the user in force with public key userKey there ("" when it is
// unknown or revoked, so that Revoke applies to the next request). On a
// miss it reads the directory again (an account or user another process
// made) and tries once more. It returns an error when the account or the
// signing key is not one of this authority's.
//
// Identify derives each role key's public key from its seed (an ed25519
// scalar multiplication per role tried): most of the 80 to 140µs that
// Authorize took per request with it (BenchmarkAuthorize, "before").
func (a *Authority) identifyUser(accountKey, issuerKey, userKey string) (tenant string, role Role, name string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	tenant, role, name, err = a.findUser(accountKey, issuerKey, userKey)
	if err == nil && name != "" {
		return tenant, role, name, nil
	}
	if rerr := a.refresh(); rerr != nil {
		return tenant, role, name, err
	}
	return a.findUser(accountKey, issuerKey, userKey)
}

// findUser is identifyUser without reading the directory; a.mu is held.
func (a *Authority) findUser(accountKey, issuerKey, userKey string) (tenant string, role Role, name string, err error) {
	for t, acc := range a.clients {
		if acc.pub != accountKey {
			continue
		}
		scope, ok := acc.claims.SigningKeys.GetScope(issuerKey)
		us, isUser := scope.(*jwt.UserScope)
		if !ok || !isUser || Role(us.Role).Validate() != nil || acc.roles[Role(us.Role)] == nil {
			break
		}
		for _, u := range acc.users {
			if u.PublicKey == userKey && u.RevokedAt == nil {
				name = u.Name
				break
			}
		}
		return t, Role(us.Role), name, nil
	}
	return "", "", "", errors.New("the request's account or signing key is not one of this ledger's")
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
	for {
		ptok, prest, pmore := strings.Cut(pattern, ".")
		stok, srest, smore := strings.Cut(subject, ".")
		switch {
		case ptok == ">":
			return true // subject has a token here
		case ptok != "*" && ptok != stok:
			return false
		case !pmore || !smore:
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
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
