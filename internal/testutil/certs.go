package testutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a private CA with a server certificate for 127.0.0.1 and
// localhost and a client certificate, both signed by it. The files are
// what a client is configured with; the tls.Config values are for the
// servers under test and for consumers that check what was written.
type PKI struct {
	CAFile         string // the CA certificate, PEM
	ClientCertFile string // the client certificate, PEM
	ClientKeyFile  string // its private key, PEM (PKCS #8)
	ClientFile     string // certificate and key in one file

	ca         *x509.Certificate
	server     tls.Certificate
	clientCert tls.Certificate
}

// NewPKI generates a PKI in a fresh t.TempDir. Each call makes a new CA,
// so a second PKI stands for a CA the first one's peers do not trust.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "zulip-bridge test CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	})
	server, serverKey := newCert(t, ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "server"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	})
	client, clientKey := newCert(t, ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "bridge"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	})
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	clientPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: client.Raw})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})

	write := func(name string, data ...[]byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, bytes.Join(data, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return &PKI{
		CAFile:         write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})),
		ClientCertFile: write("client.pem", clientPEM),
		ClientKeyFile:  write("client-key.pem", keyPEM),
		ClientFile:     write("client-both.pem", clientPEM, keyPEM),
		ca:             ca,
		server:         tls.Certificate{Certificate: [][]byte{server.Raw}, PrivateKey: serverKey, Leaf: server},
		clientCert:     tls.Certificate{Certificate: [][]byte{client.Raw}, PrivateKey: clientKey, Leaf: client},
	}
}

func (p *PKI) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return pool
}

// ServerTLS returns a new server configuration that presents the server
// certificate and requires a client certificate signed by the CA. Each
// call returns its own value, as servers may modify the one they are given.
func (p *PKI) ServerTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientCAs:    p.pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLS returns a new client configuration that trusts only the CA
// and presents the client certificate.
func (p *PKI) ClientTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.clientCert},
		RootCAs:      p.pool(),
		MinVersion:   tls.VersionTLS12,
	}
}

// newCert signs tmpl with parent, or self-signs it when parent is nil,
// valid from an hour ago to an hour from now.
func newCert(t testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Unique serials: a verifier may reject two certificates from one
	// issuer with the same serial.
	tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
