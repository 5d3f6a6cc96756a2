package nats

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestUnreachable: New against a port where no server listens fails at
// once with ErrUnreachable, naming the URL (credentials redacted) and
// BRIDGE_NATS_URL, with one "nats sink:" prefix; a server that answers and
// refuses is not ErrUnreachable; once a server listens there, New works.
func TestUnreachable(t *testing.T) {
	ts := startServer(t, func(o *server.Options) { o.Username, o.Password = "bridge", "pa55-s3cret" })
	ts.stop()
	addr := strings.TrimPrefix(ts.url(), "nats://")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, jetStream := range []bool{true, false} {
		cfg := testConfig(ts, jetStream)
		cfg.URL = "nats://bridge:pa55-s3cret@" + addr
		_, err := New(ctx, cfg)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("jetstream=%v: New = %v, want ErrUnreachable", jetStream, err)
		}
		msg := err.Error()
		for _, want := range []string{"nats://redacted@" + addr, "BRIDGE_NATS_URL", "no servers available"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q lacks %q", msg, want)
			}
		}
		if strings.Contains(msg, "pa55-s3cret") || strings.Count(msg, "nats sink:") != 1 {
			t.Errorf("error %q shows the password or repeats its prefix", msg)
		}
		if _, err := Connect(ctx, cfg); !errors.Is(err, ErrUnreachable) {
			t.Errorf("Connect = %v, want ErrUnreachable", err)
		}
	}

	ts.start()
	cfg := testConfig(ts, true)
	cfg.URL = "nats://bridge:wr0ng@" + addr
	if _, err := New(ctx, cfg); err == nil || errors.Is(err, ErrUnreachable) || strings.Contains(err.Error(), "wr0ng") {
		t.Errorf("New with a wrong password = %v, want a refusal that is not ErrUnreachable and hides the password", err)
	}
	cfg.URL = "nats://bridge:pa55-s3cret@" + addr
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New once the server listens: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Error(err)
	}
}

func TestRedactedURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "",
		"nats://h:4222":             "nats://h:4222",
		"nats://tok3n@h:4222":       "nats://redacted@h:4222",
		"nats://u:p@a:1, tls://b:2": "nats://redacted@a:1,tls://b:2",
		"nats://u:p%zz@h:1":         "redacted@h:1",
	} {
		if got := (Config{URL: in}).RedactedURL(); got != want {
			t.Errorf("RedactedURL(%q) = %q, want %q", in, got, want)
		}
	}
}
