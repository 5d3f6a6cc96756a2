package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

// validEnv is a configuration that passes validation (nothing is reached).
func validEnv(t *testing.T) []string {
	return []string{
		"ZULIP_SITE=https://chat.example.com",
		"ZULIP_EMAIL=bot@chat.example.com",
		"ZULIP_API_KEY=" + testAPIKey,
		"BRIDGE_STATE_DIR=" + t.TempDir(),
	}
}

func TestBadConfigurationExits2(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(testAPIKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(certFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name    string
		env     []string // added to validEnv; a "KEY=" entry removes KEY
		wantVar string
		never   string // must not be in the output
	}{
		{"site with a password that does not parse", []string{"ZULIP_SITE=https://bot:hunter2@chat.example.com/%zz"}, "ZULIP_SITE", "hunter2"},
		{"site with a password", []string{"ZULIP_SITE=https://bot:hunter2@chat.example.com"}, "ZULIP_SITE", "hunter2"},
		// A TLS file that cannot be read is a configuration error, the
		// same for Zulip, NATS and Kafka.
		{"missing Zulip CA", []string{"ZULIP_CERT_BUNDLE=" + missing}, "ZULIP_CERT_BUNDLE", ""},
		{"missing Zulip client key", []string{"ZULIP_CERT=" + certFile, "ZULIP_CERT_KEY=" + missing}, "ZULIP_CERT_KEY", ""},
		{"missing NATS CA", []string{"BRIDGE_NATS_URL=nats://nats:4222", "BRIDGE_NATS_TLS_CA=" + missing}, "BRIDGE_NATS_TLS_CA", ""},
		{"missing NATS client key", []string{"BRIDGE_NATS_URL=nats://nats:4222", "BRIDGE_NATS_TLS_CERT=" + certFile, "BRIDGE_NATS_TLS_KEY=" + missing}, "BRIDGE_NATS_TLS_KEY", ""},
		{"missing Kafka CA", []string{"BRIDGE_SINK=kafka", "BRIDGE_KAFKA_BROKERS=k:9092", "BRIDGE_KAFKA_TLS_CA=" + missing}, "BRIDGE_KAFKA_TLS_CA", ""},
		{"missing Kafka client key", []string{"BRIDGE_SINK=kafka", "BRIDGE_KAFKA_BROKERS=k:9092", "BRIDGE_KAFKA_TLS_CERT=" + certFile, "BRIDGE_KAFKA_TLS_KEY=" + missing}, "BRIDGE_KAFKA_TLS_KEY", ""},
		{"unknown sink", []string{"BRIDGE_SINK=rabbitmq"}, "BRIDGE_SINK", ""},
		{"malformed narrow", []string{`BRIDGE_NARROW=[["stream"`}, "BRIDGE_NARROW", ""},
		{"narrow of the wrong shape", []string{`BRIDGE_NARROW={"stream":"Denmark"}`}, "BRIDGE_NARROW", ""},
		{"bad duration", []string{"BRIDGE_SHUTDOWN_TIMEOUT=soon"}, "BRIDGE_SHUTDOWN_TIMEOUT", ""},
		{"bad lifespan", []string{"BRIDGE_QUEUE_LIFESPAN=forever"}, "BRIDGE_QUEUE_LIFESPAN", ""},
		{"bad bool", []string{"BRIDGE_PUBLISH_HEARTBEATS=maybe"}, "BRIDGE_PUBLISH_HEARTBEATS", ""},
		{"bad site URL", []string{"ZULIP_SITE=ht!tp://chat example com"}, "ZULIP_SITE", ""},
		{"missing site", []string{"ZULIP_SITE="}, "ZULIP_SITE", ""},
		{"missing email", []string{"ZULIP_EMAIL="}, "ZULIP_EMAIL", ""},
		{"missing key", []string{"ZULIP_API_KEY="}, "ZULIP_API_KEY", ""},
		{"key and key file", []string{"ZULIP_API_KEY_FILE=" + keyFile}, "ZULIP_API_KEY_FILE", ""},
		{"bad NATS URL", []string{"BRIDGE_NATS_URL=http://nats:4222"}, "BRIDGE_NATS_URL", ""},
		{"kafka without brokers", []string{"BRIDGE_SINK=kafka"}, "BRIDGE_KAFKA_BROKERS", ""},
		{"bad SASL mechanism", []string{"BRIDGE_SINK=kafka", "BRIDGE_KAFKA_BROKERS=k:9092", "BRIDGE_KAFKA_SASL_MECHANISM=kerberos"}, "BRIDGE_KAFKA_SASL_MECHANISM", ""},
		{"bad checkpoint store", []string{"BRIDGE_CHECKPOINT=etcd"}, "BRIDGE_CHECKPOINT", ""},
		{"kafka checkpoint with nats", []string{"BRIDGE_CHECKPOINT=kafka"}, "BRIDGE_CHECKPOINT", ""},
		{"bad template", []string{"BRIDGE_SUBJECT_TEMPLATE={prefix}.{nonsense}"}, "BRIDGE_SUBJECT_TEMPLATE", ""},
		{"bad log level", []string{"BRIDGE_LOG_LEVEL=loud"}, "BRIDGE_LOG_LEVEL", ""},
		{"bad log format", []string{"BRIDGE_LOG_FORMAT=xml"}, "BRIDGE_LOG_FORMAT", ""},
		{"bad http addr", []string{"BRIDGE_HTTP_ADDR=8080"}, "BRIDGE_HTTP_ADDR", ""},
		{"bad pprof switch", []string{"BRIDGE_PPROF=on"}, "BRIDGE_PPROF", ""},
		{"bad OTLP protocol", []string{"OTEL_EXPORTER_OTLP_PROTOCOL=thrift"}, "OTEL_EXPORTER_OTLP_PROTOCOL", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := override(validEnv(t), tt.env)
			for _, cmd := range []string{"run", "check"} {
				var stdout, stderr testutil.SyncBuffer
				done := make(chan int, 1)
				go func() { done <- run([]string{cmd}, env, &stdout, &stderr) }()
				var code int
				select {
				case code = <-done:
				case <-time.After(30 * time.Second):
					t.Fatalf("%s did not exit: the configuration was accepted:\n%s", cmd, stderr.String())
				}
				out := stdout.String() + stderr.String()
				if code != exitConfig {
					t.Errorf("%s: exit %d, want %d; output:\n%s", cmd, code, exitConfig, out)
				}
				if !strings.Contains(stderr.String(), "  "+tt.wantVar+": ") {
					t.Errorf("%s: error does not name %s:\n%s", cmd, tt.wantVar, out)
				}
				if tt.never != "" && strings.Contains(out, tt.never) {
					t.Errorf("%s: output shows %q:\n%s", cmd, tt.never, out)
				}
				if !strings.Contains(stderr.String(), "example") && !strings.Contains(stderr.String(), "e.g.") {
					t.Errorf("%s: error gives no example of a valid value:\n%s", cmd, out)
				}
				if strings.Contains(out, testAPIKey) {
					t.Errorf("%s: output contains the API key:\n%s", cmd, out)
				}
			}
		})
	}
}

// override returns base with the KEY=VALUE pairs of extra replacing or
// (with an empty value) removing those of base.
func override(base, extra []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		kept := out[:0]
		for _, b := range out {
			if !strings.HasPrefix(b, k+"=") {
				kept = append(kept, b)
			}
		}
		out = kept
		if v != "" {
			out = append(out, kv)
		}
	}
	return out
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"run", "extra"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, nil, &stdout, &stderr); code != exitConfig {
			t.Errorf("%v: exit %d, want %d", args, code, exitConfig)
		}
		if !strings.Contains(stderr.String(), "usage:") {
			t.Errorf("%v: no usage in %q", args, stderr.String())
		}
	}
}

func TestEnvShowsSecretsOnlyAsSet(t *testing.T) {
	env := append(validEnv(t), "BRIDGE_NATS_PASSWORD=natsSecretValue42", "BRIDGE_KAFKA_PASSWORD=kafkaSecretValue42", "BRIDGE_SNIK=nats")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"env"}, env, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	out := stdout.String()
	for _, secret := range []string{testAPIKey, "natsSecretValue42", "kafkaSecretValue42"} {
		if strings.Contains(out, secret) {
			t.Errorf("bridge env shows a secret:\n%s", out)
		}
	}
	for _, want := range []string{`ZULIP_SITE`, `set: "https://chat.example.com"`, `set (secret)`, `BRIDGE_SINK`, `default="nats"`, `BRIDGE_SNIK`} {
		if !strings.Contains(out, want) {
			t.Errorf("bridge env lacks %q:\n%s", want, out)
		}
	}
	// Every variable of the table of docs/configuration.md is listed.
	for _, v := range []string{"BRIDGE_EVENT_TYPES", "BRIDGE_NARROW", "BRIDGE_ALL_PUBLIC_STREAMS", "BRIDGE_QUEUE_LIFESPAN",
		"BRIDGE_NATS_URL", "BRIDGE_NATS_JETSTREAM", "BRIDGE_NATS_STREAM", "BRIDGE_NATS_CREATE_STREAM", "BRIDGE_NATS_CREDS",
		"BRIDGE_NATS_NKEY", "BRIDGE_NATS_USER", "BRIDGE_NATS_PASSWORD", "BRIDGE_NATS_TOKEN", "BRIDGE_NATS_TLS_CA",
		"BRIDGE_KAFKA_BROKERS", "BRIDGE_KAFKA_SASL_MECHANISM", "BRIDGE_KAFKA_USERNAME", "BRIDGE_KAFKA_PASSWORD",
		"BRIDGE_KAFKA_TLS_CA", "BRIDGE_SUBJECT_PREFIX", "BRIDGE_SUBJECT_TEMPLATE", "BRIDGE_TOPIC_TEMPLATE",
		"BRIDGE_PUBLISH_HEARTBEATS", "BRIDGE_CHECKPOINT", "BRIDGE_STATE_DIR", "BRIDGE_HTTP_ADDR", "BRIDGE_LOG_LEVEL",
		"BRIDGE_LOG_FORMAT", "BRIDGE_SHUTDOWN_TIMEOUT", "ZULIP_CONFIG", "ZULIP_SITE", "ZULIP_EMAIL", "ZULIP_API_KEY",
		"ZULIP_CERT", "ZULIP_CERT_KEY", "ZULIP_CERT_BUNDLE", "ZULIP_ALLOW_INSECURE"} {
		if !strings.Contains(out, v+" ") {
			t.Errorf("bridge env does not list %s", v)
		}
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if code := run([]string{"version"}, nil, &stdout, &stdout); code != exitOK || !strings.HasPrefix(stdout.String(), "zulip-bridge ") {
		t.Fatalf("exit %d, output %q", code, stdout.String())
	}
}

// TestDemo runs `bridge demo` with no environment and waits for events as
// its consumer prints them.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testutil.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- cmdDemo(ctx, nil, &stdout, &stderr) }()
	testutil.WaitFor(t, 60*time.Second, "the demo to print a message event", func() bool {
		select {
		case code := <-done:
			t.Fatalf("demo exited %d early:\n%s\n%s", code, stdout.String(), stderr.String())
		default:
		}
		return strings.Contains(stdout.String(), "── zulip.message.") && strings.Contains(stdout.String(), "Zulip-Event-Type: message")
	})
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("demo exit %d after interrupt:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop after interrupt")
	}
}
