package source_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// pki is a private CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files.
type pki struct {
	caFile, clientCert, clientKey, clientBoth string
	serverTLS                                 *tls.Config
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage, ips []net.IP) (certPEM, keyPEM []byte, pair tls.Certificate) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
		pair, err = tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return certPEM, keyPEM, pair
	}
	_, _, serverPair := issue(2, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	clientCert, clientKey, _ := issue(3, x509.ExtKeyUsageClientAuth, nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	write := func(name string, data ...[]byte) string {
		p := filepath.Join(dir, name)
		var all []byte
		for _, d := range data {
			all = append(all, d...)
		}
		if err := os.WriteFile(p, all, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return &pki{
		caFile:     write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		clientCert: write("client.pem", clientCert),
		clientKey:  write("client-key.pem", clientKey),
		clientBoth: write("client-both.pem", clientCert, clientKey),
		serverTLS: &tls.Config{
			Certificates: []tls.Certificate{serverPair},
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
		},
	}
}

// TestTLS: a private CA bundle and a client certificate (mutual TLS) work;
// missing either fails at once with a non-transient error; insecure works
// and says so loudly.
func TestTLS(t *testing.T) {
	p := newPKI(t)
	sim := zuliptest.NewUnstartedServer(zuliptest.Config{})
	ts := httptest.NewUnstartedServer(sim.Handler())
	ts.TLS = p.serverTLS
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	ts.StartTLS()
	t.Cleanup(ts.Close)

	tests := []struct {
		name    string
		cfg     func(*source.Config)
		wantErr bool
	}{
		{"bundle and client certificate", func(c *source.Config) { c.CertBundle, c.Cert, c.CertKey = p.caFile, p.clientCert, p.clientKey }, false},
		{"certificate and key in one file", func(c *source.Config) { c.CertBundle, c.Cert = p.caFile, p.clientBoth }, false},
		{"no client certificate", func(c *source.Config) { c.CertBundle = p.caFile }, true},
		{"no CA bundle", func(c *source.Config) { c.Cert, c.CertKey = p.clientCert, p.clientKey }, true},
		{"insecure", func(c *source.Config) { c.Cert, c.CertKey, c.AllowInsecure = p.clientCert, p.clientKey, new(true) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := source.Config{Site: ts.URL, Email: zuliptest.DefaultBot.Email, APIKey: zuliptest.DefaultBot.APIKey}
			tt.cfg(&cfg)
			logs := &logRecorder{}
			var wrapped atomic.Int32
			c, err := source.NewClient(cfg, source.WithLogger(slog.New(logs)),
				source.WithTransportWrapper(func(rt http.RoundTripper) http.RoundTripper {
					return roundTripFunc(func(r *http.Request) (*http.Response, error) {
						wrapped.Add(1)
						return rt.RoundTrip(r)
					})
				}))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Register(t.Context())
			if wrapped.Load() != 1 {
				t.Errorf("the transport wrapper saw %d requests, want 1", wrapped.Load())
			}
			if tt.wantErr {
				var te *source.TransportError
				if !errors.As(err, &te) || source.IsTransient(err) {
					t.Fatalf("Register: %v; want a TLS error that is not transient", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Register: %v", err)
			}
			warned := len(logs.lines(slog.LevelWarn, "TLS CERTIFICATE VERIFICATION IS DISABLED")) > 0
			if warned != (cfg.AllowInsecure != nil) {
				t.Errorf("insecure warning logged: %v", warned)
			}
		})
	}

	cfg := source.Config{Site: ts.URL, Email: zuliptest.DefaultBot.Email, APIKey: zuliptest.DefaultBot.APIKey, CertBundle: filepath.Join(t.TempDir(), "missing.pem")}
	if _, err := source.NewClient(cfg); err == nil || !strings.Contains(err.Error(), "ZULIP_CERT_BUNDLE") {
		t.Errorf("missing bundle: %v, want an error naming ZULIP_CERT_BUNDLE", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
