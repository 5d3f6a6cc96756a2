package kafka_test

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
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
	_, err := kafkasink.New(context.Background(), kafkasink.Config{
		Brokers:       []string{"127.0.0.1:9092"},
		SASLMechanism: kafkasink.MechanismSCRAMSHA256,
		Username:      "bridge",
		Password:      secret,
	})
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
	pki := testutil.NewPKI(t)
	otherCAFile := testutil.NewPKI(t).CAFile
	c := newCluster(t, kfake.TLS(pki.ServerTLS()))

	for _, tc := range []struct {
		name   string
		config func(*kafkasink.Config)
		ok     bool
	}{
		{"CA and client certificate", func(c *kafkasink.Config) {
			c.TLSCA, c.TLSCert, c.TLSKey = pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile
		}, true},
		{"no client certificate", func(c *kafkasink.Config) {
			c.TLSCA = pki.CAFile
		}, false},
		{"broker certificate from another CA", func(c *kafkasink.Config) {
			c.TLSCA, c.TLSCert, c.TLSKey = otherCAFile, pki.ClientCertFile, pki.ClientKeyFile
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
			checkExactlyOnce(t, consumeAll(t, c, &kafka.Dialer{Timeout: 5 * time.Second, TLS: pki.ClientTLS()}), batch)
		})
	}
}
