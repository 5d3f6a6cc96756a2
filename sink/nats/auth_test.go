package nats

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

// TestAuth connects to servers that require each supported credential,
// publishes through JetStream (which the sink creates the stream for) and
// reads the messages back; a wrong credential fails New without showing it.
func TestAuth(t *testing.T) {
	dir := t.TempDir()
	pki := testutil.NewPKI(t)
	tests := []struct {
		name      string
		server    func(t *testing.T, o *server.Options)
		good, bad func(c *Config)
		secret    string // must not appear in the error of the bad case
	}{
		{
			name:   "token",
			server: func(t *testing.T, o *server.Options) { o.Authorization = "t0ken-s3cret" },
			good:   func(c *Config) { c.Token = "t0ken-s3cret" },
			bad:    func(c *Config) { c.Token = "wr0ng-t0ken" },
			secret: "wr0ng-t0ken",
		},
		{
			name:   "token file",
			server: func(t *testing.T, o *server.Options) { o.Authorization = "t0ken-s3cret" },
			good:   func(c *Config) { c.TokenFile = "t0ken-s3cret\n" },
			bad:    func(c *Config) { c.TokenFile = "wr0ng-t0ken\n" },
			secret: "wr0ng-t0ken",
		},
		{
			name:   "user and password",
			server: func(t *testing.T, o *server.Options) { o.Username, o.Password = "bridge", "pa55-s3cret" },
			good:   func(c *Config) { c.User, c.Password = "bridge", "pa55-s3cret" },
			bad:    func(c *Config) { c.User, c.Password = "bridge", "wr0ng-pa55" },
			secret: "wr0ng-pa55",
		},
		{
			name: "nkey seed file",
			server: func(t *testing.T, o *server.Options) {
				pub := writeNkeySeed(t, filepath.Join(dir, "good.nk"))
				writeNkeySeed(t, filepath.Join(dir, "other.nk"))
				o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
			},
			good: func(c *Config) { c.NKey = filepath.Join(dir, "good.nk") },
			bad:  func(c *Config) { c.NKey = filepath.Join(dir, "other.nk") },
		},
		{
			name: "creds file (operator, account and user JWTs)",
			server: func(t *testing.T, o *server.Options) {
				operatorTrust(t, o, filepath.Join(dir, "good.creds"), filepath.Join(dir, "foreign.creds"))
			},
			good: func(c *Config) { c.Creds = filepath.Join(dir, "good.creds") },
			bad:  func(c *Config) { c.Creds = filepath.Join(dir, "foreign.creds") },
		},
		{
			name: "TLS with CA and client certificate",
			server: func(t *testing.T, o *server.Options) {
				o.TLSConfig = pki.ServerTLS()
				o.TLS, o.TLSVerify, o.TLSTimeout = true, true, 5
			},
			good: func(c *Config) { c.TLSCA, c.TLSCert, c.TLSKey = pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile },
			// Trusting the server but presenting no certificate.
			bad: func(c *Config) { c.TLSCA = pki.CAFile },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, func(o *server.Options) { tt.server(t, o) })

			cfg := testConfig(ts, true)
			tt.bad(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if s, err := New(ctx, cfg); err == nil {
				_ = s.Close(ctx)
				t.Fatal("New with a wrong credential succeeded")
			} else if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Fatalf("error shows the credential: %v", err)
			} else {
				t.Logf("wrong credential: %v", err)
			}

			cfg = testConfig(ts, true)
			tt.good(&cfg)
			s := newSink(t, cfg)
			var g sinktest.Generator
			batch := g.Batch(10)
			if err := s.Publish(ctx, batch); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			stored, err := readStream(s.nc, cfg.Stream)
			if err != nil {
				t.Fatalf("read stream: %v", err)
			}
			if len(stored) != len(batch) {
				t.Fatalf("stream holds %d messages, want %d", len(stored), len(batch))
			}
			for i := range batch {
				if stored[i].DedupKey != batch[i].DedupKey {
					t.Errorf("message %d: %s, want %s", i, stored[i].DedupKey, batch[i].DedupKey)
				}
			}
		})
	}
}

func writeNkeySeed(t *testing.T, path string) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, seed)
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// operatorTrust puts the server in operator mode: it trusts one operator,
// whose account (with JetStream) issued the user in goodCreds. foreignCreds
// holds a user of an account signed by an operator the server does not know.
func operatorTrust(t *testing.T, o *server.Options, goodCreds, foreignCreds string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	operator, err := nkeys.CreateOperator()
	must(err)
	operatorPub, err := operator.PublicKey()
	must(err)
	resolver := &server.MemAccResolver{}

	account := func(signer nkeys.KeyPair, jetStream bool) (nkeys.KeyPair, string) {
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		claims := jwt.NewAccountClaims(pub)
		if jetStream {
			claims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		token, err := claims.Encode(signer)
		must(err)
		return kp, token
	}
	userCreds := func(accountKP nkeys.KeyPair, path string) {
		kp, err := nkeys.CreateUser()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		token, err := jwt.NewUserClaims(pub).Encode(accountKP)
		must(err)
		seed, err := kp.Seed()
		must(err)
		creds, err := jwt.FormatUserConfig(token, seed)
		must(err)
		writeFile(t, path, creds)
	}

	sys, sysJWT := account(operator, false)
	sysPub, err := sys.PublicKey()
	must(err)
	must(resolver.Store(sysPub, sysJWT))
	app, appJWT := account(operator, true)
	appPub, err := app.PublicKey()
	must(err)
	must(resolver.Store(appPub, appJWT))
	userCreds(app, goodCreds)

	stranger, err := nkeys.CreateOperator()
	must(err)
	foreign, _ := account(stranger, true)
	userCreds(foreign, foreignCreds)

	o.TrustedKeys = []string{operatorPub}
	o.AccountResolver = resolver
	o.SystemAccount = sysPub
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
