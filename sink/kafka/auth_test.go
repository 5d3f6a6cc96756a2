package kafkasink_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"

	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

// Each SASL mechanism publishes, reads back and is read by a consumer
// against a kfake that requires it; a wrong password fails without the
// password in the error.
func TestSASL(t *testing.T) {
	const user, password = "bridge", "pässword-42"
	for _, tc := range []struct {
		mechanism string // ours
		kfake     string // kfake's
		consumer  func() (sasl.Mechanism, error)
	}{
		{kafkasink.MechanismPlain, "PLAIN", func() (sasl.Mechanism, error) {
			return plain.Mechanism{Username: user, Password: password}, nil
		}},
		{kafkasink.MechanismSCRAMSHA256, "SCRAM-SHA-256", func() (sasl.Mechanism, error) {
			return scram.Mechanism(scram.SHA256, user, password)
		}},
		{kafkasink.MechanismSCRAMSHA512, "SCRAM-SHA-512", func() (sasl.Mechanism, error) {
			return scram.Mechanism(scram.SHA512, user, password)
		}},
	} {
		t.Run(tc.mechanism, func(t *testing.T) {
			c := newCluster(t, kfake.EnableSASL(), kfake.Superuser(tc.kfake, user, password))
			cfg := testConfig(c)
			cfg.SASLMechanism = tc.mechanism
			cfg.Username = user
			cfg.PasswordFile = password + "\n"
			ctx := testCtx(t)

			s := newSink(t, cfg)
			if err := s.Ready(ctx); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			var g sinktest.Generator
			batch := g.Batch(20)
			publishAll(t, s, batch)
			keys, err := newSink(t, cfg).PublishedSince(ctx, nil)
			if err != nil {
				t.Fatalf("PublishedSince: %v", err)
			}
			if !maps.Equal(keys, keysOf(batch)) {
				t.Errorf("read back %d keys, want %d", len(keys), len(batch))
			}
			mech, err := tc.consumer()
			if err != nil {
				t.Fatal(err)
			}
			checkExactlyOnce(t, consumeAll(t, c, &kafka.Dialer{Timeout: 5 * time.Second, SASLMechanism: mech}), batch)

			cfg.PasswordFile = ""
			cfg.Password = "wrong-secret-value"
			wrong := newSink(t, cfg)
			short, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			err = wrong.Ready(short)
			if err == nil {
				t.Fatal("Ready with a wrong password succeeded")
			}
			if strings.Contains(err.Error(), cfg.Password) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// A password SCRAM cannot normalise is refused at New, and the error names
// the variable, not the password.
func TestSCRAMPasswordNotInError(t *testing.T) {
	const secret = "s3cret\u0007value"
	_, err := kafkasink.New(kafkasink.Config{
		Brokers:       []string{"127.0.0.1:9092"},
		SASLMechanism: kafkasink.MechanismSCRAMSHA256,
		Username:      "bridge",
		Password:      secret,
	}, nil)
	if err == nil {
		t.Fatal("New accepted a password SASLprep rejects")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "BRIDGE_KAFKA_PASSWORD") {
		t.Errorf("error does not name the variable: %v", err)
	}
}

// TLS with a private CA and a client certificate, against a kfake that
// requires one.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	serverCert := ca.issue(t, "kfake", false)
	clientCert := ca.issue(t, "bridge", true)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.cert.Raw)
	certFile := writePEM(t, dir, "client.pem", "CERTIFICATE", clientCert.Certificate[0])
	keyDER, err := x509.MarshalECPrivateKey(clientCert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", keyDER)
	otherCA := newCA(t)
	otherCAFile := writePEM(t, dir, "other-ca.pem", "CERTIFICATE", otherCA.cert.Raw)

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c := newCluster(t, kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}))

	for _, tc := range []struct {
		name   string
		config func(*kafkasink.Config)
		ok     bool
	}{
		{"CA and client certificate", func(c *kafkasink.Config) {
			c.TLSCA, c.TLSCert, c.TLSKey = caFile, certFile, keyFile
		}, true},
		{"no client certificate", func(c *kafkasink.Config) {
			c.TLSCA = caFile
		}, false},
		{"broker certificate from another CA", func(c *kafkasink.Config) {
			c.TLSCA, c.TLSCert, c.TLSKey = otherCAFile, certFile, keyFile
		}, false},
		{"plain text", func(c *kafkasink.Config) {}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(c)
			tc.config(&cfg)
			s := newSink(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err := s.Ready(ctx)
			if !tc.ok {
				if err == nil {
					t.Fatal("Ready succeeded")
				}
				return
			}
			if err != nil {
				t.Fatalf("Ready: %v", err)
			}
			var g sinktest.Generator
			batch := g.Batch(10)
			publishAll(t, s, batch)
			clientTLS := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}
			checkExactlyOnce(t, consumeAll(t, c, &kafka.Dialer{Timeout: 5 * time.Second, TLS: clientTLS}), batch)
		})
	}
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "zulip-bridge test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{cert, key}
}

// issue returns a certificate for 127.0.0.1 (server) or for a client.
func (ca testCA) issue(t *testing.T, name string, client bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses = nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
