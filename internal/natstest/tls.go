package natstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// PKI is a throwaway certificate authority with a server and a client
// certificate, as PEM files in a temporary directory of the test. Every
// call of NewPKI makes a new, unrelated CA.
type PKI struct {
	CA         string // the CA's certificate: what clients and servers trust
	ServerCert string // for 127.0.0.1, ::1 and localhost, signed by the CA
	ServerKey  string
	ClientCert string // for client authentication, signed by the CA
	ClientKey  string
}

// NewPKI generates an ECDSA P-256 CA and a server and a client certificate
// signed by it, valid for an hour, and writes them under tb.TempDir().
func NewPKI(tb testing.TB) PKI {
	tb.Helper()
	dir := tb.TempDir()
	caKey := newKey(tb)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "natstest CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatalf("natstest: CA certificate: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatalf("natstest: CA certificate: %v", err)
	}
	p := PKI{CA: filepath.Join(dir, "ca.pem")}
	writePEM(tb, p.CA, "CERTIFICATE", caDER)

	issue := func(serial int64, name string, usage x509.ExtKeyUsage, dnsNames []string, ips []net.IP) (certFile, keyFile string) {
		key := newKey(tb)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Minute),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     dnsNames,
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			tb.Fatalf("natstest: %s certificate: %v", name, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			tb.Fatalf("natstest: %s key: %v", name, err)
		}
		certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(tb, certFile, "CERTIFICATE", der)
		writePEM(tb, keyFile, "PRIVATE KEY", keyDER)
		return certFile, keyFile
	}
	p.ServerCert, p.ServerKey = issue(2, "server", x509.ExtKeyUsageServerAuth,
		[]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback})
	p.ClientCert, p.ClientKey = issue(3, "client", x509.ExtKeyUsageClientAuth, nil, nil)
	return p
}

// TLS makes the server require TLS with the PKI's server certificate, and
// with verifyClients a client certificate signed by its CA too.
func TLS(tb testing.TB, p PKI, verifyClients bool) Option {
	tb.Helper()
	opts := &server.TLSConfigOpts{CertFile: p.ServerCert, KeyFile: p.ServerKey}
	if verifyClients {
		opts.CaFile, opts.Verify = p.CA, true
	}
	tc, err := server.GenTLSConfig(opts)
	if err != nil {
		tb.Fatalf("natstest: TLS configuration: %v", err)
	}
	return func(o *server.Options) {
		o.TLSConfig, o.TLS, o.TLSVerify = tc, true, verifyClients
	}
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("natstest: key: %v", err)
	}
	return key
}

func writePEM(tb testing.TB, file, blockType string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		tb.Fatalf("natstest: %v", err)
	}
}
