package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/consentledger/consent/internal/auth"
	"github.com/consentledger/consent/ledger"
)

// AdminCredsFile is the name, in the data directory, of the credentials
// of the administrator of every tenant, which consentd writes on its first
// start with the embedded server (mode 0600) and consentctl finds there.
const AdminCredsFile = "admin.creds"

// adminUser is the name of the user in AdminCredsFile.
const adminUser = "admin"

// authDir returns the directory of the authority: --auth-dir, or
// DATA-DIR/auth with the embedded server; "" when consentd runs without
// one (--insecure-no-auth, or --nats-url without --auth-dir).
func (c *Config) authDir(dataDir string) string {
	switch {
	case c.AuthDir != "":
		return absDir(c.AuthDir)
	case c.Embedded() && !c.InsecureNoAuth:
		return filepath.Join(dataDir, "auth")
	}
	return ""
}

// openAuthority opens (or creates) the authority in dir.
func openAuthority(dir string) (*auth.Authority, error) {
	a, err := auth.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("--auth-dir: %w", err)
	}
	return a, nil
}

// moveAccountStore moves the embedded server's JetStream store of the
// global account ($G, used before authentication) to the service
// account's directory, so that a data directory from a consentd without
// authentication keeps its stream. It does nothing when there is nothing
// to move, and refuses when both exist.
func moveAccountStore(dataDir, serviceAccount string) error {
	from := filepath.Join(dataDir, "jetstream", "$G")
	to := filepath.Join(dataDir, "jetstream", serviceAccount)
	if _, err := os.Stat(from); errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if _, err := os.Stat(to); err == nil {
		return fmt.Errorf("%s and %s both hold a JetStream store: consentd ran with and without authentication on this data directory; move one away", from, to)
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("move the stream into the service account: %w", err)
	}
	return nil
}

// ensureAdminCreds writes the administrator's credentials into
// dataDir/admin.creds (mode 0600) unless the file is there: on the first
// start, or after it was deleted (then the credentials it held are
// revoked first, as whoever has the data directory may).
func ensureAdminCreds(a *auth.Authority, dataDir string) (string, bool, error) {
	path := filepath.Join(dataDir, AdminCredsFile)
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	if err := a.Revoke(adminUser, auth.AllTenants); err != nil && !errors.Is(err, auth.ErrNoUser) {
		return "", false, err
	}
	creds, err := a.IssueUser(adminUser, auth.Admin, auth.AllTenants)
	if err != nil {
		return "", false, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, creds, 0o600); err != nil {
		return "", false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", false, err
	}
	return path, true, nil
}

// authorize is the service's ledger.Authorize: nil without authentication.
func (m *Main) authorize() ledger.Authorize {
	if m.authority == nil {
		return nil
	}
	return m.authority.ServiceAuthorize()
}

// users is the service's ledger.Users: nil without authentication.
func (m *Main) users() ledger.Users {
	if m.authority == nil {
		return nil
	}
	return m.authority.ServiceUsers()
}

// pushAccounts keeps the servers of a NATS deployment consentd did not
// start up to date with the authority (new tenants, users revoked, feeds
// granted), through a connection of the system account.
func (m *Main) pushAccounts(ctx context.Context) error {
	creds, err := m.authority.SystemUser()
	if err != nil {
		return err
	}
	opts, err := auth.ConnectOptions(creds)
	if err != nil {
		return err
	}
	cfg := m.Config
	cfg.NATSCreds, cfg.NATSUser, cfg.NATSPassword = "", "", ""
	if m.sysConn, err = connect(ctx, &cfg, nil, "consentd-system", m.log, opts...); err != nil {
		return err
	}
	if err := m.authority.PushChanges(ctx, m.sysConn); err != nil {
		return fmt.Errorf("push the accounts to the NATS servers: %w", err)
	}
	return nil
}

// privateFile refuses a secret file (credentials) that users other than
// its owner may read or change, naming the flag that gave it.
func privateFile(flagName, path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", flagName, err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s %s: mode %04o lets other users read these credentials; run chmod 600 %s", flagName, path, perm, path)
	}
	return nil
}
