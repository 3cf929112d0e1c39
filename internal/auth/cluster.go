package auth

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/jwt/v2"
)

// DefaultResolverDir is the directory accounts.conf gives the servers'
// account resolver when the caller names none. A relative path is taken
// from the nats-server's working directory; each server needs its own.
const DefaultResolverDir = "./jwt"

// AdminUserName is the name of the admin of every tenant that
// WriteClusterConfig issues (admin.creds): its inbox prefix is
// InboxPrefix(AdminUserName), _INBOX_admin.
const AdminUserName = "admin"

// The files WriteClusterConfig writes.
const (
	AccountsConfFile  = "accounts.conf"
	ConsentdCredsFile = "consentd.creds"
	AdminCredsFile    = "admin.creds"
	SysCredsFile      = "sys.creds"
)

// ClusterConfig is what WriteClusterConfig did.
type ClusterConfig struct {
	Dir         string // where the files are
	ResolverDir string // the resolver directory accounts.conf names
	// Accounts is the number of accounts in accounts.conf.
	Accounts int
	// Issued lists the credential files written with new credentials;
	// the others were kept as they were (still valid).
	Issued []string
	// AdminElsewhere is true when the admin of every tenant named
	// AdminUserName is in force but its credentials are not in Dir (they
	// were written elsewhere): no admin.creds is written then. Revoke that
	// admin to have new credentials written.
	AdminElsewhere bool
}

// WriteClusterConfig writes into dir (created with mode 0700; files mode
// 0600) what the operator of a NATS cluster needs to run it with this
// authority:
//
//   - accounts.conf, to include in each nats-server's configuration: the
//     operator's JWT, the system account, a full account resolver in
//     resolverDir (DefaultResolverDir when empty) that never deletes, and
//     every account's JWT as resolver_preload;
//   - consentd.creds, a user of SVC for consentd's own connections
//     (consentd --nats-creds), with no permission limits;
//   - admin.creds, the admin of every tenant (AdminUserName, role Admin,
//     AllTenants), unless that user is in force already with credentials
//     not in dir (see ClusterConfig.AdminElsewhere);
//   - sys.creds, a user of SYS, for Push ($SYS.REQ.CLAIMS.UPDATE).
//
// Credential files already in dir that are still valid (signed by the
// right account, and for admin.creds: the user in force) are kept, so
// running it again changes only accounts.conf. The caller owns the files:
// the creds are secrets. Errors: resolverDir holds a double quote, a
// backslash or a line break (a *events.FieldError naming "resolver_dir"),
// dir or the authority's directory cannot be written, or dir exists and
// group or others may enter it.
func (a *Authority) WriteClusterConfig(dir, resolverDir string) (*ClusterConfig, error) {
	if resolverDir == "" {
		resolverDir = DefaultResolverDir
	}
	if strings.ContainsAny(resolverDir, "\"\\\r\n") {
		return nil, &events.FieldError{Field: "resolver_dir", Problem: "must not hold a double quote, a backslash or a line break"}
	}
	if err := ensureDir(dir); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	out := &ClusterConfig{Dir: dir, ResolverDir: resolverDir}
	err := a.change(func() error {
		if err := a.writeAdminCreds(out); err != nil {
			return err
		}
		for _, f := range []struct {
			name   string
			issuer string
			issue  func() ([]byte, error)
		}{
			{ConsentdCredsFile, a.svc.pub, a.serviceUser},
			{SysCredsFile, a.sys.pub, a.systemUser},
		} {
			path := filepath.Join(dir, f.name)
			if uc, err := readCreds(path); err == nil && uc.Issuer == f.issuer && uc.IssuerAccount == "" {
				continue
			}
			creds, err := f.issue()
			if err != nil {
				return err
			}
			if err := writePrivate(path, creds); err != nil {
				return err
			}
			out.Issued = append(out.Issued, f.name)
		}
		conf := a.accountsConf(resolverDir)
		out.Accounts = len(a.accounts())
		return writePrivate(filepath.Join(dir, AccountsConfFile), []byte(conf))
	})
	if err != nil {
		return nil, fmt.Errorf("auth: cluster configuration in %s: %w", dir, err)
	}
	return out, nil
}

// writeAdminCreds keeps dir's admin.creds when its user is the admin of
// every tenant in force, leaves it out when that admin's credentials are
// elsewhere, and otherwise issues one. The caller holds the directory's
// lock.
func (a *Authority) writeAdminCreds(out *ClusterConfig) error {
	path := filepath.Join(out.Dir, AdminCredsFile)
	if uc, err := readCreds(path); err == nil {
		if acc, ok := a.clients[AllTenants]; ok && uc.IssuerAccount == acc.pub {
			if i, ok := acc.active(uc.Name); ok && acc.users[i].PublicKey == uc.Subject && acc.users[i].Role == Admin {
				return nil
			}
		}
	}
	if acc, ok := a.clients[AllTenants]; ok {
		if _, ok := acc.active(AdminUserName); ok {
			out.AdminElsewhere = true
			return nil
		}
	}
	creds, err := a.issueUser(AdminUserName, Admin, AllTenants)
	if err != nil {
		return err
	}
	if err := writePrivate(path, creds); err != nil {
		return err
	}
	out.Issued = append(out.Issued, AdminCredsFile)
	return nil
}

// readCreds returns the user claims of a .creds file; an error when the
// file is missing or is not one.
func readCreds(path string) (*jwt.UserClaims, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tok, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return nil, err
	}
	if _, err := jwt.ParseDecoratedUserNKey(b); err != nil {
		return nil, err
	}
	return jwt.DecodeUserClaims(tok)
}

// accountsConf is the text of accounts.conf. The caller holds a.mu.
func (a *Authority) accountsConf(resolverDir string) string {
	var b strings.Builder
	b.WriteString("# Consent Ledger's accounts, written by consentd nats-config: include it in\n")
	b.WriteString("# every nats-server's configuration (include accounts.conf). Do not edit:\n")
	b.WriteString("# run consentd nats-config again instead.\n\n")
	fmt.Fprintf(&b, "operator: %q\n", a.operatorJWT)
	fmt.Fprintf(&b, "system_account: %s\n\n", a.sys.pub)
	b.WriteString("# Each server keeps the account JWTs in its own directory, and takes\n")
	b.WriteString("# updates (new tenants, revocations) on $SYS.REQ.CLAIMS.UPDATE.\n")
	fmt.Fprintf(&b, "resolver: {\n  type: full\n  dir: \"%s\"\n  allow_delete: false\n  interval: \"2m\"\n}\n\n", resolverDir)
	b.WriteString("resolver_preload: {\n")
	accs := a.accounts()
	sort.Slice(accs, func(i, j int) bool { return accs[i].claims.Name < accs[j].claims.Name })
	for _, acc := range accs {
		fmt.Fprintf(&b, "  # %s\n  %s: %q\n", acc.claims.Name, acc.pub, acc.jwt)
	}
	b.WriteString("}\n")
	return b.String()
}
