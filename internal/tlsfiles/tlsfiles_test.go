package tlsfiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

func TestLoad(t *testing.T) {
	pki := testutil.NewPKI(t)
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	f := func(v, p string) File { return File{Var: v, Path: p, Example: "/etc/x.pem"} }
	for _, tt := range []struct {
		name          string
		ca, cert, key string
		wantVar, want string // "" = loads
	}{
		{"nothing", "", "", "", "", ""},
		{"all three", pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile, "", ""},
		{"cert holding its key", "", pki.ClientFile, "", "", ""},
		{"missing CA", missing, "", "", "CA", "cannot read " + missing + ": no such file or directory"},
		{"CA not PEM", junk, "", "", "CA", "holds no PEM certificate"},
		{"key without cert", "", "", pki.ClientKeyFile, "KEY", "is set without CERT"},
		{"missing cert", "", missing, pki.ClientKeyFile, "CERT", "cannot read"},
		{"missing key", "", pki.ClientCertFile, missing, "KEY", "cannot read"},
		{"bad pair", "", junk, junk, "CERT", "cannot load"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(f("CA", tt.ca), f("CERT", tt.cert), f("KEY", tt.key))
			if tt.wantVar == "" {
				if err != nil || cfg == nil || cfg.MinVersion == 0 {
					t.Fatalf("Load = %v, %v", cfg, err)
				}
				if (tt.ca != "") != (cfg.RootCAs != nil) || (tt.cert != "") != (len(cfg.Certificates) == 1) {
					t.Errorf("Load: roots %v, %d certificates", cfg.RootCAs != nil, len(cfg.Certificates))
				}
				return
			}
			var ce *envconfig.Error
			if !errors.As(err, &ce) || ce.Key != tt.wantVar || !strings.Contains(err.Error(), tt.want) || ce.Example == "" {
				t.Errorf("Load = %v; want an *envconfig.Error for %s saying %q", err, tt.wantVar, tt.want)
			}
		})
	}
}
