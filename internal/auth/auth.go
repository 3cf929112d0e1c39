// Package auth is Consent Ledger's NATS decentralized authentication: an
// Authority that holds an operator, the system account SYS, the service
// account SVC (the stream and consentd's own connection, nobody else) and
// one client account per tenant, issues user credentials by role and
// revokes them, and configures an embedded nats-server to trust it.
//
// Layout of the authority's directory (mode 0700, every file 0600):
//
//	operator.seed, operator.jwt
//	accounts/SYS/, accounts/SVC/           account.seed, account.jwt
//	accounts/<tenant>/, accounts/_all/     account.seed, account.jwt,
//	                                       roles/<role>.seed, users.json
//	resolver/                              the server's dir resolver (account JWTs)
//	.lock, generation                      taken and rewritten by every change
//
// A client account imports SVC's consent.v1.> service mapped:
// a client sends consent.v1.check and the service receives
// consent.v1.<tenant>.check (consent.v1._all.check from the account of
// all tenants, AllTenants). The import shares the user's identity, so the
// service sees it in the Nats-Request-Info header.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// AllTenants is the tenant argument for a user of every tenant. Such users
// live in their own account, whose requests reach the service as
// consent.v1._all.<endpoint>: the service then takes the tenant from the
// request's body.
const AllTenants = "*"

// AllTenantsToken is the subject token the service sees for AllTenants.
// No tenant can have this name (tenants match ^[a-z0-9][a-z0-9_-]{0,63}$).
const AllTenantsToken = "_all"

// ServiceSubjects is what SVC exports and the service subscribes to: every
// request arrives as consent.v1.<tenant token>.<endpoint>.
const ServiceSubjects = "consent.v1.>"

// Names of the fixed accounts.
const (
	SystemAccountName  = "SYS"
	ServiceAccountName = "SVC"
)

// ErrUserExists is returned by IssueUser for a name that already has
// credentials in that tenant that are not revoked.
var ErrUserExists = errors.New("user exists")

// ErrNoUser is returned by Revoke for a name with no credentials in force.
var ErrNoUser = errors.New("no such user")

// Authority holds the keys and JWTs of the operator and its accounts, in
// its directory. It is safe for concurrent use, and several processes (or
// Authority values) may share one directory: every change takes the
// directory's lock (an flock on DIR/.lock) and first reads the directory
// again if another changed it since (see generationFile), and Identify
// does so when it does not know a key.
type Authority struct {
	dir string

	mu          sync.Mutex
	operator    nkeys.KeyPair
	operatorJWT string
	operatorCl  *jwt.OperatorClaims
	sys, svc    *account
	clients     map[string]*account // by tenant, AllTenants included
	resolver    *server.DirAccResolver
	pushTo      *nats.Conn // of PushChanges
	generation  string     // of the state in memory (see generationFile)
}

// account is one account: its key, its claims as last encoded, and for
// client accounts its role signing keys and users.
type account struct {
	dir    string
	tenant string // "" for SYS and SVC
	kp     nkeys.KeyPair
	pub    string
	claims *jwt.AccountClaims
	jwt    string
	roles  map[Role]nkeys.KeyPair
	users  []User
}

// User is one issued credential.
type User struct {
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	PublicKey string     `json:"public_key"`
	IssuedAt  time.Time  `json:"issued_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Open loads the authority kept in dir, or creates one there (operator,
// SYS and SVC) when dir holds none. dir and its files must be private to
// the user (mode 0700 and 0600); Open refuses any that group or others may
// read, naming the file.
func Open(dir string) (*Authority, error) {
	if err := ensureDir(dir); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	defer unlock()
	a := &Authority{dir: dir, clients: map[string]*account{}}
	found, err := exists(filepath.Join(dir, "operator.jwt"))
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if !found {
		err = a.create()
	} else {
		err = a.load()
	}
	if err == nil {
		a.generation, err = a.readGeneration()
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", dir, err)
	}
	return a, nil
}

// create makes the operator, SYS and SVC. The operator's JWT is written
// last: a directory without it is created again from scratch.
func (a *Authority) create() error {
	op, err := nkeys.CreateOperator()
	if err != nil {
		return err
	}
	a.operator = op
	if a.sys, err = a.newAccount(SystemAccountName, "", nil); err != nil {
		return err
	}
	if a.svc, err = a.newAccount(ServiceAccountName, "", func(ac *jwt.AccountClaims) {
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		// Only accounts holding an activation signed by SVC may import,
		// and each activation names one tenant's subjects.
		ac.Exports.Add(&jwt.Export{
			Name: "consent", Subject: ServiceSubjects, Type: jwt.Service,
			TokenReq: true, ResponseType: jwt.ResponseTypeSingleton,
		})
		ac.Exports.Add(feedExports()...)
	}); err != nil {
		return err
	}
	opPub, err := op.PublicKey()
	if err != nil {
		return err
	}
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "consentd"
	oc.SystemAccount = a.sys.pub
	tok, err := oc.Encode(op)
	if err != nil {
		return err
	}
	seed, err := op.Seed()
	if err != nil {
		return err
	}
	if err := writePrivate(filepath.Join(a.dir, "operator.seed"), seed); err != nil {
		return err
	}
	if err := writePrivate(filepath.Join(a.dir, "operator.jwt"), []byte(tok)); err != nil {
		return err
	}
	a.operatorJWT, a.operatorCl = tok, oc
	return nil
}

// load reads the operator and every account.
func (a *Authority) load() error {
	seed, err := readPrivate(filepath.Join(a.dir, "operator.seed"))
	if err != nil {
		return err
	}
	if a.operator, err = nkeys.FromSeed(seed); err != nil {
		return fmt.Errorf("operator.seed: %w", err)
	}
	tok, err := readPrivate(filepath.Join(a.dir, "operator.jwt"))
	if err != nil {
		return err
	}
	if a.operatorCl, err = jwt.DecodeOperatorClaims(string(tok)); err != nil {
		return fmt.Errorf("operator.jwt: %w", err)
	}
	a.operatorJWT = string(tok)
	if a.sys, err = a.loadAccount(SystemAccountName, ""); err != nil {
		return err
	}
	if a.svc, err = a.loadAccount(ServiceAccountName, ""); err != nil {
		return err
	}
	if err := a.ensureFeedExports(); err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(a.dir, "accounts"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || name == SystemAccountName || name == ServiceAccountName {
			continue
		}
		// A tenant's account.jwt is written last: a directory without it
		// is a creation that did not finish, never given to a server, and
		// Tenant creates it again.
		found, err := exists(filepath.Join(a.dir, "accounts", name, "account.jwt"))
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		tenant := name
		if name == AllTenantsToken {
			tenant = AllTenants
		}
		acc, err := a.loadAccount(name, tenant)
		if err != nil {
			return err
		}
		a.clients[tenant] = acc
	}
	return nil
}

// loadAccount reads accounts/<dirName>.
func (a *Authority) loadAccount(dirName, tenant string) (*account, error) {
	acc := &account{dir: filepath.Join(a.dir, "accounts", dirName), tenant: tenant}
	if err := ensureDir(acc.dir); err != nil {
		return nil, err
	}
	seed, err := readPrivate(filepath.Join(acc.dir, "account.seed"))
	if err != nil {
		return nil, err
	}
	if acc.kp, err = nkeys.FromSeed(seed); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(acc.dir, "account.seed"), err)
	}
	if acc.pub, err = acc.kp.PublicKey(); err != nil {
		return nil, err
	}
	tok, err := readPrivate(filepath.Join(acc.dir, "account.jwt"))
	if err != nil {
		return nil, err
	}
	if acc.claims, err = jwt.DecodeAccountClaims(string(tok)); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(acc.dir, "account.jwt"), err)
	}
	if acc.claims.Subject != acc.pub {
		return nil, fmt.Errorf("%s: the JWT is for %s, not for the account's key %s", filepath.Join(acc.dir, "account.jwt"), acc.claims.Subject, acc.pub)
	}
	acc.jwt = string(tok)
	if tenant == "" {
		return acc, nil
	}
	acc.roles = map[Role]nkeys.KeyPair{}
	for _, r := range Roles {
		p := filepath.Join(acc.dir, "roles", string(r)+".seed")
		seed, err := readPrivate(p)
		if err != nil {
			return nil, err
		}
		if acc.roles[r], err = nkeys.FromSeed(seed); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	users, err := readPrivate(filepath.Join(acc.dir, "users.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(users, &acc.users); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(acc.dir, "users.json"), err)
	}
	if err := a.updateTemplates(acc); err != nil {
		return nil, err
	}
	return acc, nil
}

// updateTemplates gives each role signing key of acc the role's current
// template (Role.template), and saves the account when one changed: a
// newer consentd's permissions apply to the users an older one issued.
func (a *Authority) updateTemplates(acc *account) error {
	changed := false
	for _, r := range Roles {
		pub, err := acc.roles[r].PublicKey()
		if err != nil {
			return err
		}
		scope, ok := acc.claims.SigningKeys.GetScope(pub)
		us, isUser := scope.(*jwt.UserScope)
		if !ok || !isUser {
			return fmt.Errorf("%s: the %s key %s is not a scoped signing key of the account", filepath.Join(acc.dir, "account.jwt"), r, pub)
		}
		if want := r.template(); !reflect.DeepEqual(us.Template, want) {
			us.Template = want
			changed = true
		}
	}
	if !hasImport(acc.claims.Imports, ServiceInfoSubjects) {
		srv, err := a.serviceInfoImport(acc.pub)
		if err != nil {
			return err
		}
		acc.claims.Imports.Add(srv)
		changed = true
	}
	if !changed {
		return nil
	}
	return a.saveAccount(acc)
}

// newAccount creates an account under accounts/<dirName>, lets edit add
// to its claims, and writes its seed, and for SYS and SVC (tenant "") its
// JWT (signed by the operator); a tenant's caller writes the JWT once the
// account's other files are written.
func (a *Authority) newAccount(dirName, tenant string, edit func(*jwt.AccountClaims)) (*account, error) {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		return nil, err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	acc := &account{dir: filepath.Join(a.dir, "accounts", dirName), tenant: tenant, kp: kp, pub: pub}
	if err := ensureDir(acc.dir); err != nil {
		return nil, err
	}
	acc.claims = jwt.NewAccountClaims(pub)
	acc.claims.Name = dirName
	if edit != nil {
		edit(acc.claims)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, err
	}
	if err := writePrivate(filepath.Join(acc.dir, "account.seed"), seed); err != nil {
		return nil, err
	}
	if tenant != "" {
		// The account's JWT, written by the caller, comes last.
		return acc, nil
	}
	if err := a.saveAccount(acc); err != nil {
		return nil, err
	}
	return acc, nil
}

// saveAccount signs acc's claims with the operator key, writes the JWT,
// and hands it to the running server's resolver, if any.
//
// The dir resolver keeps a new JWT only when its jti differs from the
// stored one's, and the jti hashes only the standard claims, whose only
// changing field is iat, in seconds: a second JWT of the account within
// the same second would be dropped silently. So saveAccount waits for
// the next second when the account's last JWT is of this one.
func (a *Authority) saveAccount(acc *account) error {
	if last := acc.claims.IssuedAt; last != 0 && time.Now().Unix() <= last {
		time.Sleep(time.Until(time.Unix(last+1, 0)))
	}
	tok, err := acc.claims.Encode(a.operator)
	if err != nil {
		return fmt.Errorf("sign account %s: %w", acc.claims.Name, err)
	}
	if err := writePrivate(filepath.Join(acc.dir, "account.jwt"), []byte(tok)); err != nil {
		return err
	}
	acc.jwt = tok
	return a.deliver(acc)
}

// deliver hands acc's JWT to the running server's resolver (ServerOptions)
// and to the servers of PushChanges, when there are.
func (a *Authority) deliver(acc *account) error {
	if a.resolver != nil {
		if err := a.resolver.Store(acc.pub, acc.jwt); err != nil {
			return fmt.Errorf("push account %s to the server: %w", acc.claims.Name, err)
		}
	}
	if a.pushTo != nil {
		ctx, cancel := context.WithTimeout(context.Background(), pushTimeout)
		defer cancel()
		if err := pushJWT(ctx, a.pushTo, acc.jwt); err != nil {
			return fmt.Errorf("push account %s: %w", acc.claims.Name, err)
		}
	}
	return nil
}

// pushTimeout bounds the wait for a server's answer to one pushed account.
const pushTimeout = 10 * time.Second

// tenantToken is the directory name and subject token of a tenant's
// account.
func tenantToken(tenant string) string {
	if tenant == AllTenants {
		return AllTenantsToken
	}
	return tenant
}

// Tenant returns the public key of the client account of tenant, creating
// the account (its import of the service and its role signing keys) on
// first use and pushing it to the running server, if any. tenant is a
// tenant name (events.ValidateName) or AllTenants; otherwise it returns a
// *events.FieldError naming "tenant".
func (a *Authority) Tenant(tenant string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if acc, ok := a.clients[tenant]; ok {
		return acc.pub, nil // an account, once created, stays
	}
	var pub string
	err := a.changeLocked(func() error {
		acc, err := a.tenant(tenant)
		if err != nil {
			return err
		}
		pub = acc.pub
		return nil
	})
	return pub, err
}

func (a *Authority) tenant(tenant string) (*account, error) {
	if acc, ok := a.clients[tenant]; ok {
		return acc, nil
	}
	if tenant != AllTenants {
		if err := events.ValidateName("tenant", tenant); err != nil {
			return nil, err
		}
	}
	token := tenantToken(tenant)
	var roles map[Role]nkeys.KeyPair
	var editErr error
	acc, err := a.newAccount(token, tenant, func(ac *jwt.AccountClaims) {
		if tenant == AllTenants {
			ac.Name = "ALL"
		}
		remote := "consent.v1." + token + ".>"
		act := jwt.NewActivationClaims(ac.Subject)
		act.Name = "consent " + token
		act.ImportSubject = jwt.Subject(remote)
		act.ImportType = jwt.Service
		activation, err := act.Encode(a.svc.kp)
		if err != nil {
			editErr = err
			return
		}
		ac.Imports.Add(&jwt.Import{
			Name: "consent", Account: a.svc.pub, Type: jwt.Service, Token: activation,
			Subject: jwt.Subject(remote), LocalSubject: jwt.RenamingSubject(ServiceSubjects),
			Share: true, // Nats-Request-Info then carries the user
		})
		srv, err := a.serviceInfoImport(ac.Subject)
		if err != nil {
			editErr = err
			return
		}
		ac.Imports.Add(srv)
		roles = map[Role]nkeys.KeyPair{}
		for _, r := range Roles {
			kp, err := nkeys.CreateAccount()
			if err != nil {
				editErr = err
				return
			}
			pub, _ := kp.PublicKey()
			scope := jwt.NewUserScope()
			scope.Key = pub
			scope.Role = string(r)
			scope.Template = r.template()
			scope.Description = "consent " + string(r) + " of " + token
			ac.SigningKeys.AddScopedSigner(scope)
			roles[r] = kp
		}
	})
	if editErr != nil {
		return nil, editErr
	}
	if err != nil {
		return nil, err
	}
	acc.roles = roles
	if err := ensureDir(filepath.Join(acc.dir, "roles")); err != nil {
		return nil, err
	}
	for r, kp := range roles {
		seed, err := kp.Seed()
		if err != nil {
			return nil, err
		}
		if err := writePrivate(filepath.Join(acc.dir, "roles", string(r)+".seed"), seed); err != nil {
			return nil, err
		}
	}
	if err := a.saveUsers(acc); err != nil {
		return nil, err
	}
	if err := a.saveAccount(acc); err != nil {
		return nil, err
	}
	a.clients[tenant] = acc
	return acc, nil
}

func (a *Authority) saveUsers(acc *account) error {
	if acc.users == nil {
		acc.users = []User{}
	}
	b, err := json.MarshalIndent(acc.users, "", "  ")
	if err != nil {
		return err
	}
	return writePrivate(filepath.Join(acc.dir, "users.json"), b)
}

// validUserName checks a user name: it becomes a subject token of the
// user's inbox prefix (InboxPrefix), so it follows the tenant rule.
func validUserName(name string) error {
	return events.ValidateName("name", name)
}

// IssueUser creates credentials for a new user name with role in tenant
// (a tenant name or AllTenants; the tenant's account is created if need
// be) and returns them as a NATS .creds file (the user JWT, signed by the
// role's scoped signing key, and the user's seed). The caller owns the
// creds: they are a secret, and the authority keeps only the public key.
// The JWT carries the tags consent-role:<role> and consent-tenant:<tenant
// token>.
//
// It returns a *events.FieldError naming "name" or "tenant" for an invalid
// one, an error naming the role for an unknown one, and ErrUserExists when
// the name has credentials in force in that tenant (Revoke them first).
func (a *Authority) IssueUser(name string, role Role, tenant string) ([]byte, error) {
	if err := validUserName(name); err != nil {
		return nil, err
	}
	if err := role.Validate(); err != nil {
		return nil, err
	}
	var creds []byte
	err := a.change(func() error {
		var err error
		creds, err = a.issueUser(name, role, tenant)
		return err
	})
	return creds, err
}

// issueUser is IssueUser under the directory's lock.
func (a *Authority) issueUser(name string, role Role, tenant string) ([]byte, error) {
	acc, err := a.tenant(tenant)
	if err != nil {
		return nil, err
	}
	if _, ok := acc.active(name); ok {
		return nil, fmt.Errorf("user %q of tenant %q: %w", name, tenant, ErrUserExists)
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	upub, err := ukp.PublicKey()
	if err != nil {
		return nil, err
	}
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	uc.IssuerAccount = acc.pub
	uc.Tags.Add("consent-role:"+string(role), "consent-tenant:"+tenantToken(tenant))
	uc.SetScoped(true)
	tok, err := uc.Encode(acc.roles[role])
	if err != nil {
		return nil, fmt.Errorf("sign user %q: %w", name, err)
	}
	seed, err := ukp.Seed()
	if err != nil {
		return nil, err
	}
	creds, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		return nil, err
	}
	acc.users = append(acc.users, User{Name: name, Role: role, PublicKey: upub, IssuedAt: time.Unix(uc.IssuedAt, 0).UTC()})
	if err := a.saveUsers(acc); err != nil {
		acc.users = acc.users[:len(acc.users)-1]
		return nil, err
	}
	return creds, nil
}

// active returns the index of name's credentials in force.
func (acc *account) active(name string) (int, bool) {
	for i := len(acc.users) - 1; i >= 0; i-- {
		if acc.users[i].Name == name && acc.users[i].RevokedAt == nil {
			return i, true
		}
	}
	return 0, false
}

// Revoke takes away the credentials in force of user name in tenant: it
// adds the user's key to the account JWT's revocations, saves it, and
// pushes it to the running server (ServerOptions) and to PushChanges'
// servers, which close the user's connections and refuse new ones.
// Without a running server the revocation applies from the next
// ServerOptions (or Push) on. It returns ErrNoUser when name has no
// credentials in force there, and an error when the directory cannot be
// locked or read or a push fails (the revocation is saved then).
func (a *Authority) Revoke(name, tenant string) error {
	return a.change(func() error { return a.revoke(name, tenant) })
}

func (a *Authority) revoke(name, tenant string) error {
	acc, ok := a.clients[tenant]
	var i int
	if ok {
		i, ok = acc.active(name)
	}
	if !ok {
		return fmt.Errorf("user %q of tenant %q: %w", name, tenant, ErrNoUser)
	}
	now := time.Now()
	acc.claims.RevokeAt(acc.users[i].PublicKey, now)
	if err := a.saveAccount(acc); err != nil {
		return err
	}
	revoked := time.Unix(now.Unix(), 0).UTC()
	acc.users[i].RevokedAt = &revoked
	return a.saveUsers(acc)
}

// Users returns every credential issued in tenant, revoked ones included,
// in the order issued; nil for a tenant with no account. It reads the
// directory again first (when that fails: the users as last read).
func (a *Authority) Users(tenant string) []User {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.refresh()
	acc, ok := a.clients[tenant]
	if !ok {
		return nil
	}
	return slices.Clone(acc.users)
}

// Tenants returns the tenants that have an account (AllTenants included
// when it has one), sorted. It reads the directory again first (when that
// fails: the tenants as last read).
func (a *Authority) Tenants() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.refresh()
	out := make([]string, 0, len(a.clients))
	for t := range a.clients {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Identify maps what the Nats-Request-Info header of a request says (the
// account's public key, acc, and the key that signed the user,
// issuer_key) back to the tenant and role; ok is false when they are not
// one of this authority's client accounts and role keys. The service
// should use it rather than trust tags alone. When it does not know the
// keys and another process (or Authority) changed the directory since it
// last read it, it reads the directory again and tries again: a tenant
// created by another consentd is known then.
func (a *Authority) Identify(accountKey, issuerKey string) (tenant string, role Role, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if tenant, role, ok = a.identify(accountKey, issuerKey); ok {
		return tenant, role, ok
	}
	if err := a.refresh(); err != nil {
		return "", "", false
	}
	return a.identify(accountKey, issuerKey)
}

func (a *Authority) identify(accountKey, issuerKey string) (tenant string, role Role, ok bool) {
	t, r, _, err := a.findUser(accountKey, issuerKey, "")
	return t, r, err == nil
}

// ServiceAccountKey is SVC's public key (the directory of its JetStream
// data, jetstream/<key>, in the server's store directory).
func (a *Authority) ServiceAccountKey() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.svc.pub
}

// ServerOptions configures o for an embedded nats-server that trusts this
// authority: the operator, the system account, and a dir resolver under
// the authority's directory (resolver/) holding every account's JWT. Until
// the next ServerOptions call, Tenant and Revoke push their changes to
// that resolver, which updates the running server at once.
//
// It returns fresh credentials of a user in SVC with no permission limits,
// for consentd's own (in-process) connection: the caller owns them and
// should keep them in memory. It refuses options that already configure
// users, accounts or operators.
func (a *Authority) ServerOptions(o *server.Options) (serviceCreds []byte, err error) {
	if len(o.Users) > 0 || len(o.Nkeys) > 0 || len(o.Accounts) > 0 || len(o.TrustedOperators) > 0 || len(o.TrustedKeys) > 0 || o.Username != "" || o.Authorization != "" || o.NoAuthUser != "" {
		return nil, errors.New("auth: the server options already configure authentication")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// The state as it is now; the server's resolver gets it below.
	a.resolver = nil
	if err := a.refresh(); err != nil {
		return nil, err
	}
	dir := filepath.Join(a.dir, "resolver")
	if err := ensureDir(dir); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	res, err := server.NewDirAccResolver(dir, 0, time.Minute, server.NoDelete)
	if err != nil {
		return nil, fmt.Errorf("auth: resolver %s: %w", dir, err)
	}
	for _, acc := range a.accounts() {
		if err := res.Store(acc.pub, acc.jwt); err != nil {
			res.Close()
			return nil, fmt.Errorf("auth: store account %s in the resolver: %w", acc.claims.Name, err)
		}
	}
	creds, err := a.serviceUser()
	if err != nil {
		res.Close()
		return nil, err
	}
	o.TrustedOperators = []*jwt.OperatorClaims{a.operatorCl}
	o.AccountResolver = res
	o.SystemAccount = a.sys.pub
	a.resolver = res
	return creds, nil
}

func (a *Authority) accounts() []*account {
	out := []*account{a.sys, a.svc}
	for _, acc := range a.clients {
		out = append(out, acc)
	}
	return out
}

// serviceUser issues credentials of a user "consentd" in SVC, signed by
// SVC's own key: no permission limits.
func (a *Authority) serviceUser() ([]byte, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = "consentd"
	tok, err := uc.Encode(a.svc.kp)
	if err != nil {
		return nil, fmt.Errorf("auth: sign the service user: %w", err)
	}
	seed, err := ukp.Seed()
	if err != nil {
		return nil, err
	}
	return jwt.FormatUserConfig(tok, seed)
}

// ConnectOptions returns the nats.Go options for connecting with creds (a
// .creds file's content): the user's JWT and seed, and the inbox prefix
// its permissions require (InboxPrefix of the JWT's name). It returns an
// error when creds is not a user .creds file.
func ConnectOptions(creds []byte) ([]nats.Option, error) {
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	opts := []nats.Option{nats.UserJWTAndSeed(tok, string(seed))}
	if uc.Name != "" && !strings.ContainsAny(uc.Name, ".*> \t") {
		opts = append(opts, nats.CustomInboxPrefix(InboxPrefix(uc.Name)))
	}
	return opts, nil
}

// OperatorJWT is the operator's JWT, which a nats-server configured from
// files trusts (its operator setting).
func (a *Authority) OperatorJWT() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.operatorJWT
}

// SystemAccountKey is SYS's public key (a nats-server's system_account).
func (a *Authority) SystemAccountKey() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sys.pub
}

// AccountJWTs returns every account's JWT (SYS, SVC and the client
// accounts), by public key: what a server's resolver must hold. It reads
// the directory again first (when that fails: the accounts as last read).
func (a *Authority) AccountJWTs() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.refresh()
	out := map[string]string{}
	for _, acc := range a.accounts() {
		out[acc.pub] = acc.jwt
	}
	return out
}

// SystemUser returns fresh credentials of a user in SYS, signed by SYS's
// own key, for Push. The caller owns them; they may update every account
// of the servers that trust this authority.
func (a *Authority) SystemUser() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.systemUser()
}

// systemUser is SystemUser for a caller that holds a.mu.
func (a *Authority) systemUser() ([]byte, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = "consentd-system"
	tok, err := uc.Encode(a.sys.kp)
	if err != nil {
		return nil, fmt.Errorf("auth: sign the system user: %w", err)
	}
	seed, err := ukp.Seed()
	if err != nil {
		return nil, err
	}
	return jwt.FormatUserConfig(tok, seed)
}

// Push sends every account's JWT to the servers nc (a connection of
// SystemUser) reaches, on $SYS.REQ.CLAIMS.UPDATE, for servers that run a
// full dir resolver this authority did not configure in-process (see
// ServerOptions for those). It waits for an answer to each and returns the
// first error: a server's refusal, or no answer (with a memory resolver
// nothing answers: its accounts must be preloaded instead).
func (a *Authority) Push(ctx context.Context, nc *nats.Conn) error {
	for pub, tok := range a.AccountJWTs() {
		if err := pushJWT(ctx, nc, tok); err != nil {
			return fmt.Errorf("auth: push account %s: %w", pub, err)
		}
	}
	return nil
}

// pushJWT sends an account JWT on $SYS.REQ.CLAIMS.UPDATE and returns the
// answering server's refusal, or no answer, as an error.
func pushJWT(ctx context.Context, nc *nats.Conn, tok string) error {
	m, err := nc.RequestWithContext(ctx, "$SYS.REQ.CLAIMS.UPDATE", []byte(tok))
	if err != nil {
		return err
	}
	var r server.ServerAPIClaimUpdateResponse
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return fmt.Errorf("answer %q: %w", m.Data, err)
	}
	if r.Error != nil {
		return errors.New(r.Error.Description)
	}
	return nil
}

// PushChanges makes the authority keep the servers nc reaches (a
// connection of SystemUser, or of nats-config's sys.creds; servers with a
// full dir resolver: a cluster consentd does not embed) up to date, as
// ServerOptions does for an embedded server: it pushes every account now
// (Push), and from then on every account JWT it writes (a new tenant, a
// revocation, a feed grant) and every one it reads that another process
// changed (Reload, or its next change), before the call that changed it
// returns. nc stays the caller's; PushChanges(ctx, nil) stops. It returns
// Push's error, and then pushes nothing.
func (a *Authority) PushChanges(ctx context.Context, nc *nats.Conn) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pushTo = nil
	if nc == nil {
		return nil
	}
	if err := a.refresh(); err != nil {
		return err
	}
	for _, acc := range a.accounts() {
		if err := pushJWT(ctx, nc, acc.jwt); err != nil {
			return fmt.Errorf("auth: push account %s: %w", acc.claims.Name, err)
		}
	}
	a.pushTo = nc
	return nil
}
