package main

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestListenBeyondLoopbackNeedsTLS(t *testing.T) {
	loopback := []string{"127.0.0.1:4222", "127.8.9.10:4222", "[::1]:4222", "localhost:4222", "LocalHost:4222", "[::ffff:127.0.0.1]:4222", "127.0.0.1:-1"}
	reachable := []string{"0.0.0.0:4222", "[::]:4222", "192.168.1.20:4222", "10.0.0.7:4222", "[fe80::1]:4222", "[2001:db8::1]:4222",
		"consent.example.com:4222", "localhost.example.com:4222", "myhost:4222"}
	for _, addr := range loopback {
		t.Run(addr, func(t *testing.T) {
			_, err := parse([]string{"--listen", addr})
			assert.NoError(t, err, "loopback without TLS is allowed")
		})
	}
	for _, addr := range reachable {
		t.Run(addr, func(t *testing.T) {
			_, err := parse([]string{"--listen", addr})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "--listen "+addr+": other hosts could connect")
			assert.Contains(t, err.Error(), "--tls-cert and --tls-key")
			assert.Contains(t, err.Error(), "--insecure-listen-without-tls")
			assert.Contains(t, err.Error(), "clients still authenticate with their credentials, but in plain text")

			cfg, err := parse([]string{"--listen", addr, "--tls-cert", "server.pem", "--tls-key", "server-key.pem"})
			require.NoError(t, err, "with TLS")
			assert.Equal(t, "server.pem", cfg.TLSCert)
			assert.Equal(t, "server-key.pem", cfg.TLSKey)

			cfg, err = parse([]string{"--listen", addr, "--insecure-listen-without-tls"})
			require.NoError(t, err, "told to")
			assert.True(t, cfg.InsecureListenWithoutTLS)
		})
	}

	// The same by environment variables, as in a container.
	_, err := parse(nil, "CONSENTD_LISTEN=0.0.0.0:4222")
	require.ErrorContains(t, err, "--insecure-listen-without-tls")
	cfg, err := parse(nil, "CONSENTD_LISTEN=0.0.0.0:4222", "CONSENTD_INSECURE_LISTEN_WITHOUT_TLS=true")
	require.NoError(t, err)
	assert.True(t, cfg.InsecureListenWithoutTLS)
	cfg, err = parse(nil, "CONSENTD_LISTEN=0.0.0.0:4222", "CONSENTD_TLS_CERT=/tls/server.pem", "CONSENTD_TLS_KEY=/tls/key.pem", "CONSENTD_TLS_CLIENT_CA=/tls/ca.pem")
	require.NoError(t, err)
	assert.Equal(t, "/tls/ca.pem", cfg.TLSClientCA)
}

func TestTLSFlagsRefusedTogetherOrAlone(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"cert without key", []string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{"key without cert", []string{"--tls-key", "k.pem"}, "--tls-cert and --tls-key go together"},
		{"client CA without TLS", []string{"--tls-client-ca", "ca.pem"}, "--tls-client-ca needs --tls-cert and --tls-key"},
		{"insecure with TLS", []string{"--listen", "0.0.0.0:4222", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--insecure-listen-without-tls"}, "--insecure-listen-without-tls contradicts --tls-cert"},
		{"TLS with nats-url", []string{"--nats-url", "tls://n1:4222", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, "--tls-cert configures the embedded NATS server and cannot be used with --nats-url (set listen, tls and sync_interval in the NATS server's own configuration; consentd connects to it over TLS with --nats-tls-ca"},
		{"insecure with nats-url", []string{"--nats-url", "nats://n1:4222", "--insecure-listen-without-tls"}, "--insecure-listen-without-tls configures the embedded NATS server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.args)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// startTLSConsentd runs the whole daemon with TLS on its embedded server.
func startTLSConsentd(t *testing.T, pki natstest.PKI, clientCA string) *Main {
	t.Helper()
	m := NewMain()
	m.Config.Listen = "127.0.0.1:-1"
	m.Config.DataDir = t.TempDir()
	m.Config.LogLevel = "warn"
	m.Config.TLSCert, m.Config.TLSKey, m.Config.TLSClientCA = pki.ServerCert, pki.ServerKey, clientCA
	var stdout bytes.Buffer
	m.Stdout, m.Stderr = &stdout, testWriter{t}
	err := m.Run(t.Context())
	if err != nil {
		_ = m.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	assert.Regexp(t, `^consentd: listening on tls://127\.0\.0\.1:\d+ `, stdout.String())
	return m
}

// grantAndCheck records a grant through nc and checks it, as an
// application does.
func grantAndCheck(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	client := client.NewClient(nc, client.ClientOptions{})
	granted, err := client.Grant(t.Context(), events.Command{SubjectID: subject, Purpose: "marketing_email", Actor: "subject"})
	require.NoError(t, err)
	st, err := client.Check(t.Context(), wire.StatusQuery{SubjectID: subject, Purpose: "marketing_email", MinSeq: granted.Seq})
	require.NoError(t, err)
	assert.True(t, st.Allowed)
}

func TestConsentdTLS(t *testing.T) {
	pki := natstest.NewPKI(t)
	m := startTLSConsentd(t, pki, "")
	u, err := url.Parse(m.ClientURL())
	require.NoError(t, err)
	require.Equal(t, "tls", u.Scheme)

	// A client that trusts the CA, by the URL consentd prints and by name.
	nc, err := nats.Connect(m.ClientURL(), append(adminOptions(t, m.Config.DataDir), nats.RootCAs(pki.CA))...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	state, err := nc.TLSConnectionState()
	require.NoError(t, err)
	assert.True(t, state.HandshakeComplete)
	grantAndCheck(t, nc, "alice@example.com")
	byName, err := nats.Connect("nats://localhost:"+u.Port(), append(adminOptions(t, m.Config.DataDir), nats.RootCAs(pki.CA))...)
	require.NoError(t, err)
	t.Cleanup(byName.Close)
	grantAndCheck(t, byName, "bob@example.com")

	// A client that trusts other CAs (the system's, or another one) is
	// refused by its own TLS check, whichever URL it is given: nats.go
	// switches to TLS when the server requires it.
	for _, tt := range []struct {
		name string
		url  string
		opts []nats.Option
	}{
		{"system CAs", m.ClientURL(), nil},
		{"another CA", m.ClientURL(), []nats.Option{nats.RootCAs(natstest.NewPKI(t).CA)}},
		{"system CAs, nats:// URL", "nats://" + u.Host, nil},
	} {
		_, err := nats.Connect(tt.url, append(tt.opts, nats.Timeout(5*time.Second))...)
		var unknownCA x509.UnknownAuthorityError
		assert.True(t, errors.As(err, &unknownCA), "%s: %v", tt.name, err)
	}

	// A plain-text client gets the INFO that requires TLS and nothing
	// more: its CONNECT and PING are not answered and the server hangs up.
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Regexp(t, regexp.MustCompile(`^INFO \{.*"tls_required":true`), info)
	_, err = conn.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\nSUB consent.> 1\r\n"))
	require.NoError(t, err)
	rest, err := io.ReadAll(r)
	if ne, ok := errors.AsType[net.Error](err); ok {
		assert.False(t, ne.Timeout(), "the server hangs up rather than wait")
	}
	assert.NotContains(t, string(rest), "PONG")
	assert.NotContains(t, string(rest), "MSG")
}

func TestConsentdTLSClientCertificates(t *testing.T) {
	pki := natstest.NewPKI(t)
	m := startTLSConsentd(t, pki, pki.CA)

	// Trusting the server is not enough: the server wants a certificate.
	_, err := nats.Connect(m.ClientURL(), nats.RootCAs(pki.CA), nats.Timeout(5*time.Second))
	require.Error(t, err)
	// The server's alert, or its hang-up, depending on timing.
	assert.Regexp(t, `certificate required|closed by remote after TLS handshake`, err.Error())

	// One from another CA is refused too.
	other := natstest.NewPKI(t)
	_, err = nats.Connect(m.ClientURL(), nats.RootCAs(pki.CA), nats.ClientCert(other.ClientCert, other.ClientKey), nats.Timeout(5*time.Second))
	require.Error(t, err)
	assert.Regexp(t, `unknown certificate authority|closed by remote after TLS handshake`, err.Error())

	nc, err := nats.Connect(m.ClientURL(), append(adminOptions(t, m.Config.DataDir), nats.RootCAs(pki.CA), nats.ClientCert(pki.ClientCert, pki.ClientKey))...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	grantAndCheck(t, nc, "alice@example.com")
}

func TestConsentdTLSFilesThatDoNotLoad(t *testing.T) {
	pki := natstest.NewPKI(t)
	for name, tt := range map[string]struct {
		cert, key, clientCA string
		want                string
	}{
		"missing certificate": {"/nonexistent/server.pem", pki.ServerKey, "", "--tls-cert /nonexistent/server.pem"},
		"key of another pair": {pki.ServerCert, pki.ClientKey, "", "--tls-key " + pki.ClientKey},
		"client CA not a PEM": {pki.ServerCert, pki.ServerKey, pki.ServerKey, "--tls-client-ca " + pki.ServerKey + ": no PEM certificate"},
		"missing client CA":   {pki.ServerCert, pki.ServerKey, "/nonexistent/ca.pem", "--tls-client-ca: open /nonexistent/ca.pem"},
	} {
		t.Run(name, func(t *testing.T) {
			m := NewMain()
			m.Config.Listen, m.Config.DataDir, m.Config.LogLevel = "127.0.0.1:-1", t.TempDir(), "warn"
			m.Config.TLSCert, m.Config.TLSKey, m.Config.TLSClientCA = tt.cert, tt.key, tt.clientCA
			m.Stdout, m.Stderr = io.Discard, testWriter{t}
			err := m.Run(t.Context())
			require.NoError(t, m.Close())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestConsentdJoinsATLSServer(t *testing.T) {
	pki := natstest.NewPKI(t)
	s := natstest.RunServer(t, natstest.TLS(t, pki, true))
	newMain := func() *Main {
		m := NewMain()
		m.Config.NATSURL, m.Config.DataDir, m.Config.LogLevel = s.ClientURL(), t.TempDir(), "warn"
		m.Stdout, m.Stderr = io.Discard, testWriter{t}
		return m
	}

	// Without the CA the server's certificate is not trusted: a
	// configuration error, not a wait.
	m := newMain()
	err := m.Run(t.Context())
	require.NoError(t, m.Close())
	var unknownCA x509.UnknownAuthorityError
	require.True(t, errors.As(err, &unknownCA), "%v", err)

	m = newMain()
	m.Config.NATSTLSCA, m.Config.NATSTLSCert, m.Config.NATSTLSKey = pki.CA, pki.ClientCert, pki.ClientKey
	err = m.Run(t.Context())
	if err != nil {
		_ = m.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })

	nc, err := nats.Connect(s.ClientURL(), nats.RootCAs(pki.CA), nats.ClientCert(pki.ClientCert, pki.ClientKey))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	grantAndCheck(t, nc, "alice@example.com")
}
