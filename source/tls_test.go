package source_test

import (
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// TestTLS: a private CA bundle and a client certificate (mutual TLS) work;
// missing either fails at once with a non-transient error; insecure works
// and says so loudly.
func TestTLS(t *testing.T) {
	p := testutil.NewPKI(t)
	sim := zuliptest.NewUnstartedServer(zuliptest.Config{})
	ts := httptest.NewUnstartedServer(sim.Handler())
	ts.TLS = p.ServerTLS()
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	ts.StartTLS()
	t.Cleanup(ts.Close)

	tests := []struct {
		name    string
		cfg     func(*source.Config)
		wantErr bool
	}{
		{"bundle and client certificate", func(c *source.Config) { c.CertBundle, c.Cert, c.CertKey = p.CAFile, p.ClientCertFile, p.ClientKeyFile }, false},
		{"certificate and key in one file", func(c *source.Config) { c.CertBundle, c.Cert = p.CAFile, p.ClientFile }, false},
		{"no client certificate", func(c *source.Config) { c.CertBundle = p.CAFile }, true},
		{"no CA bundle", func(c *source.Config) { c.Cert, c.CertKey = p.ClientCertFile, p.ClientKeyFile }, true},
		{"insecure", func(c *source.Config) {
			c.Cert, c.CertKey, c.AllowInsecure = p.ClientCertFile, p.ClientKeyFile, new(true)
		}, false},
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
