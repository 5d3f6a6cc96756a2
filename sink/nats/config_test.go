package nats

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

func TestDefaultConfigMatchesEnvDefaults(t *testing.T) {
	var cfg Config
	if err := envconfig.Parse(&cfg, nil); err != nil {
		t.Fatalf("parse empty environment: %v", err)
	}
	// The zero value means the same as the environment's defaults.
	if got, want := (Config{}).withDefaults(), cfg.withDefaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("zero value means %+v, envDefault tags give %+v", got, want)
	}
	if *cfg.JetStream != true || *cfg.CreateStream != true || cfg.Stream != "ZULIP" || cfg.SubjectPrefix != "zulip" ||
		cfg.DuplicateWindow != 2*time.Minute || cfg.Replicas != 1 || cfg.MaxPending != 4096 {
		t.Errorf("envDefault tags give %+v", cfg)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the zero value does not validate: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "password"), []byte("pa55-from-file\n"))
	var cfg Config
	err := envconfig.Parse(&cfg, []string{
		"BRIDGE_NATS_URL=nats://a:4222,tls://b:4443",
		"BRIDGE_NATS_JETSTREAM=true",
		"BRIDGE_NATS_STREAM=EVENTS",
		"BRIDGE_NATS_DUPLICATE_WINDOW=10m",
		"BRIDGE_NATS_MAX_AGE=168h",
		"BRIDGE_NATS_MAX_BYTES=1073741824",
		"BRIDGE_NATS_REPLICAS=3",
		"BRIDGE_NATS_USER=bridge",
		"BRIDGE_NATS_PASSWORD_FILE=" + filepath.Join(dir, "password"),
	})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	urls, _ := cfg.urls()
	if len(urls) != 2 || cfg.Stream != "EVENTS" || cfg.DuplicateWindow != 10*time.Minute ||
		cfg.MaxAge != 168*time.Hour || cfg.MaxBytes != 1<<30 || cfg.Replicas != 3 {
		t.Errorf("parsed %+v", cfg)
	}
	if got := cfg.password(); got != "pa55-from-file" {
		t.Errorf("password from file = %q, want it without the trailing newline", got)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "not-a-cert.pem"), []byte("hello"))
	tests := []struct {
		name    string
		change  func(c *Config)
		wantKey string // empty: valid
		want    string
	}{
		{"defaults with a URL", func(c *Config) {}, "", ""},
		{"empty URL means embedded", func(c *Config) { c.URL = "" }, "", ""},
		{"several URLs", func(c *Config) { c.URL = "nats://a:4222, nats://b:4222" }, "", ""},
		{"core mode ignores stream settings", func(c *Config) { c.JetStream = new(false); c.Stream = "bad.name"; c.Replicas = 9 }, "", ""},
		{"http URL", func(c *Config) { c.URL = "http://nats:4222" }, "BRIDGE_NATS_URL", "scheme must be nats"},
		{"URL without host", func(c *Config) { c.URL = "nats://:4222" }, "BRIDGE_NATS_URL", "no host"},
		{"empty list entry", func(c *Config) { c.URL = "nats://a:4222,,nats://b:4222" }, "BRIDGE_NATS_URL", "URL 2 of the list is empty"},
		{"stream with a dot", func(c *Config) { c.Stream = "zulip.events" }, "BRIDGE_NATS_STREAM", "must not contain"},
		{"empty stream means ZULIP", func(c *Config) { c.Stream = "" }, "", ""},
		{"zero duplicate window means 2m", func(c *Config) { c.DuplicateWindow = 0 }, "", ""},
		{"zero replicas means 1", func(c *Config) { c.Replicas = 0 }, "", ""},
		{"blank stream", func(c *Config) { c.Stream = " " }, "BRIDGE_NATS_STREAM", "must not contain"},
		{"negative duplicate window", func(c *Config) { c.DuplicateWindow = -time.Second }, "BRIDGE_NATS_DUPLICATE_WINDOW", "positive"},
		{"window longer than max age", func(c *Config) { c.MaxAge = time.Minute }, "BRIDGE_NATS_DUPLICATE_WINDOW", "longer than BRIDGE_NATS_MAX_AGE"},
		{"negative max bytes", func(c *Config) { c.MaxBytes = -1 }, "BRIDGE_NATS_MAX_BYTES", "positive"},
		{"six replicas", func(c *Config) { c.Replicas = 6 }, "BRIDGE_NATS_REPLICAS", "between 1 and 5"},
		{"zero pending window means 4096", func(c *Config) { c.MaxPending = 0 }, "", ""},
		{"negative pending window", func(c *Config) { c.MaxPending = -1 }, "BRIDGE_NATS_MAX_PENDING", "at least 1"},
		{"negative replicas", func(c *Config) { c.Replicas = -1 }, "BRIDGE_NATS_REPLICAS", "between 1 and 5"},
		{"missing creds file", func(c *Config) { c.Creds = filepath.Join(dir, "nope.creds") }, "BRIDGE_NATS_CREDS", "cannot read"},
		{"missing nkey file", func(c *Config) { c.NKey = filepath.Join(dir, "nope.nk") }, "BRIDGE_NATS_NKEY", "cannot read"},
		{"user without password", func(c *Config) { c.User = "bridge" }, "BRIDGE_NATS_PASSWORD", "required"},
		{"password without user", func(c *Config) { c.Password = "x" }, "BRIDGE_NATS_USER", "required"},
		{"password twice", func(c *Config) { c.User, c.Password, c.PasswordFile = "u", "x", "y" }, "BRIDGE_NATS_PASSWORD", "not both"},
		{"token twice", func(c *Config) { c.Token, c.TokenFile = "x", "y" }, "BRIDGE_NATS_TOKEN", "not both"},
		{"token and user", func(c *Config) { c.Token, c.User, c.Password = "x", "u", "p" }, "BRIDGE_NATS_TOKEN", "conflicts with BRIDGE_NATS_USER"},
		{"cert without key", func(c *Config) { c.TLSCert = "/c.pem" }, "BRIDGE_NATS_TLS_KEY", "go together"},
		{"CA that is not PEM", func(c *Config) { c.TLSCA = filepath.Join(dir, "not-a-cert.pem") }, "BRIDGE_NATS_TLS_CA", "no PEM certificate"},
		{"missing CA", func(c *Config) { c.TLSCA = filepath.Join(dir, "nope.pem") }, "BRIDGE_NATS_TLS_CA", "cannot read"},
		{"bad client pair", func(c *Config) {
			c.TLSCert, c.TLSKey = filepath.Join(dir, "not-a-cert.pem"), filepath.Join(dir, "not-a-cert.pem")
		}, "BRIDGE_NATS_TLS_CERT", "cannot load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{}
			cfg.URL = "nats://127.0.0.1:4222"
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ce *envconfig.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Validate = %v, want an *envconfig.Error for %s", err, tt.wantKey)
			}
			if !strings.Contains(err.Error(), tt.wantKey+": ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %q, want %s and %q", err, tt.wantKey, tt.want)
			}
		})
	}
}

// TestSecretsStayOutOfErrorsAndLogs puts credentials everywhere they could
// leak: a URL's userinfo in a bad and a good configuration, the password in
// the connection options, a disconnect and a reconnect that get logged.
func TestSecretsStayOutOfErrorsAndLogs(t *testing.T) {
	const secret = "pa55-s3cret"
	bad := Config{}
	bad.URL = "http://bridge:" + secret + "@nats:4222"
	if err := bad.Validate(); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Validate(URL with a password) = %v: want an error without the password", err)
	}
	bad.URL = "nats://bridge:" + secret + "@nats:4222/%zz"
	if err := bad.Validate(); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Validate(unparsable URL with a password) = %v: want an error without the password", err)
	}

	ts := startServer(t, func(o *server.Options) { o.Username, o.Password = "bridge", secret })
	var logs testutil.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	wrong := testConfig(ts, true)
	wrong.User, wrong.Password = "bridge", "not-"+secret
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := New(ctx, wrong, WithLogger(logger)); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("New with a wrong password = %v: want an error without the password", err)
	}

	cfg := testConfig(ts, true)
	cfg.URL = strings.Replace(cfg.URL, "nats://", "nats://bridge:"+secret+"@", 1)
	s := newSink(t, cfg, WithLogger(logger))
	ts.stop()
	testutil.WaitFor(t, 30*time.Second, "the sink to notice the server is gone", func() bool { return s.Ready(ctx) != nil })
	ts.start()
	testutil.WaitFor(t, 30*time.Second, "the sink to reconnect", func() bool { return s.Ready(ctx) == nil })
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// nats.go runs its callbacks on a goroutine of its own.
	testutil.WaitFor(t, 30*time.Second, "the closed connection to be logged", func() bool { return strings.Contains(logs.String(), "nats connection closed") })
	if strings.Contains(logs.String(), secret) {
		t.Errorf("logs show the password:\n%s", logs.String())
	}
	for _, want := range []string{"nats connected", "nats disconnected", "nats reconnected", "nats connection closed"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

func TestBackoff(t *testing.T) {
	prev := time.Duration(0)
	for attempt := 1; attempt <= 20; attempt++ {
		d := backoff(attempt)
		base := min(100*time.Millisecond<<(attempt-1), 5*time.Second)
		if attempt > 7 {
			base = 5 * time.Second
		}
		if d < base || d > base+base/5+1 {
			t.Errorf("backoff(%d) = %v, want within [%v, %v]", attempt, d, base, base+base/5)
		}
		if base < prev {
			t.Errorf("backoff base shrinks at attempt %d", attempt)
		}
		prev = base
	}
}

// TestCoreWarnsAtMostOnce: a core NATS sink says at start, at warn, that
// it is at-most-once.
func TestCoreWarnsAtMostOnce(t *testing.T) {
	ts := startServer(t)
	for _, js := range []bool{false, true} {
		var logs testutil.SyncBuffer
		logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		openSink(t, testConfig(ts, js), WithLogger(logger))
		warned := strings.Contains(logs.String(), `level=WARN msg="core NATS (BRIDGE_NATS_JETSTREAM=false) is AT-MOST-ONCE`)
		if warned == js {
			t.Errorf("JetStream %v: warned %v:\n%s", js, warned, logs.String())
		}
	}
}
