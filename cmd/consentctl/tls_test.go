package main

import (
	"net/url"
	"testing"

	"github.com/consentledger/consent/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConsentctlTLS(t *testing.T) {
	pki := natstest.NewPKI(t)
	tlsURL := startConsentdWith(t, []natstest.Option{natstest.TLS(t, pki, false)}, nats.RootCAs(pki.CA))
	u, err := url.Parse(tlsURL)
	require.NoError(t, err)
	require.Equal(t, "tls", u.Scheme)

	code, out, errOut := ctl(t, tlsURL, "--tls-ca", pki.CA, "grant", "alice@example.com", "marketing_email")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "consent.granted at seq 1")
	// --tls-ca with a nats:// URL, and a tls:// URL by name, connect over TLS too.
	code, out, errOut = ctl(t, "nats://127.0.0.1:"+u.Port(), "check", "alice@example.com", "marketing_email", "--min-seq", "1", "--tls-ca", pki.CA)
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^default\s+alice@example\.com\s+marketing_email\s+granted\s+yes\s`, out)
	code, _, errOut = ctl(t, "tls://localhost:"+u.Port(), "--tls-ca", pki.CA, "status", "alice@example.com", "marketing_email")
	require.Equal(t, exitOK, code, errOut)

	tests := []struct {
		name    string
		url     string
		args    []string
		wantErr string
	}{
		{"no CA", tlsURL, nil, "give that CA with --tls-ca FILE"},
		{"another CA", tlsURL, []string{"--tls-ca", natstest.NewPKI(t).CA}, "give that CA with --tls-ca FILE"},
		{"no CA, nats:// URL", "nats://127.0.0.1:" + u.Port(), nil, "give that CA with --tls-ca FILE"},
		{"missing CA file", tlsURL, []string{"--tls-ca", "/nonexistent/ca.pem"}, "Check the files given to --tls-ca"},
		{"cert without key", tlsURL, []string{"--tls-ca", pki.CA, "--tls-cert", pki.ClientCert}, "--tls-cert and --tls-key go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := ctl(t, tt.url, append(tt.args, "status", "alice@example.com", "marketing_email")...)
			assert.Equal(t, exitError, code)
			assert.Contains(t, errOut, tt.wantErr)
		})
	}

	// A server without TLS is not silently used in plain text.
	plain := natstest.RunServer(t)
	code, _, errOut = ctl(t, plain.ClientURL(), "--tls-ca", pki.CA, "status", "alice@example.com", "marketing_email")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "The server does not offer TLS")
}

func TestConsentctlTLSClientCertificate(t *testing.T) {
	pki := natstest.NewPKI(t)
	tlsURL := startConsentdWith(t, []natstest.Option{natstest.TLS(t, pki, true)},
		nats.RootCAs(pki.CA), nats.ClientCert(pki.ClientCert, pki.ClientKey))

	code, _, errOut := ctl(t, tlsURL, "--tls-ca", pki.CA, "status", "alice@example.com", "marketing_email")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "it asks for a client certificate")

	code, out, errOut := ctl(t, tlsURL, "--tls-ca", pki.CA, "--tls-cert", pki.ClientCert, "--tls-key", pki.ClientKey,
		"grant", "alice@example.com", "marketing_email")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "consent.granted at seq 1")
}
