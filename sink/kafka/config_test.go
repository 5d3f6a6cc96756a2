package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
)

func TestValidate(t *testing.T) {
	pki := testutil.NewPKI(t) // Validate reads the TLS files
	valid := func() kafkasink.Config {
		return kafkasink.Config{Brokers: []string{"kafka-0:9092", "10.0.0.2:9093"}}
	}
	for _, tc := range []struct {
		name   string
		change func(*kafkasink.Config)
		// want lists what the message must contain; empty: valid.
		want []string
	}{
		{"minimal", func(*kafkasink.Config) {}, nil},
		{"everything", func(c *kafkasink.Config) {
			c.SASLMechanism, c.Username, c.PasswordFile = "SCRAM-SHA-512", "bridge", "secret\n"
			c.TLS, c.TLSCA, c.TLSCert, c.TLSKey = true, pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile
			c.Compression, c.CreateTopics, c.Partitions, c.ReplicationFactor = "zstd", true, 6, 3
		}, nil},
		{"no brokers", func(c *kafkasink.Config) { c.Brokers = nil },
			[]string{"BRIDGE_KAFKA_BROKERS", "required", "example: BRIDGE_KAFKA_BROKERS=kafka-0:9092"}},
		{"broker without port", func(c *kafkasink.Config) { c.Brokers = []string{"kafka-0"} },
			[]string{"BRIDGE_KAFKA_BROKERS", `"kafka-0"`, "host:port"}},
		{"broker with bad port", func(c *kafkasink.Config) { c.Brokers = []string{"kafka-0:99999"} },
			[]string{"BRIDGE_KAFKA_BROKERS", "99999"}},
		{"unknown mechanism", func(c *kafkasink.Config) { c.SASLMechanism, c.Username, c.Password = "gssapi", "u", "p" },
			[]string{"BRIDGE_KAFKA_SASL_MECHANISM", `unknown mechanism "gssapi"`, "example: BRIDGE_KAFKA_SASL_MECHANISM=scram-sha-512"}},
		{"mechanism without user", func(c *kafkasink.Config) { c.SASLMechanism, c.Password = "plain", "p" },
			[]string{"BRIDGE_KAFKA_USERNAME", "required"}},
		{"mechanism without password", func(c *kafkasink.Config) { c.SASLMechanism, c.Username = "plain", "u" },
			[]string{"BRIDGE_KAFKA_PASSWORD", "required"}},
		{"user without mechanism", func(c *kafkasink.Config) { c.Username, c.Password = "u", "p" },
			[]string{"BRIDGE_KAFKA_SASL_MECHANISM", "required"}},
		{"password twice", func(c *kafkasink.Config) {
			c.SASLMechanism, c.Username, c.Password, c.PasswordFile = "plain", "u", "p", "p"
		},
			[]string{"BRIDGE_KAFKA_PASSWORD_FILE", "only one"}},
		{"cert without key", func(c *kafkasink.Config) { c.TLSCert = "/c.pem" },
			[]string{"BRIDGE_KAFKA_TLS_KEY", "required"}},
		{"missing CA file", func(c *kafkasink.Config) { c.TLSCA = "/nonexistent/ca.pem" },
			[]string{"BRIDGE_KAFKA_TLS_CA: cannot read /nonexistent/ca.pem", "example: BRIDGE_KAFKA_TLS_CA="}},
		{"missing key file", func(c *kafkasink.Config) { c.TLSCert, c.TLSKey = pki.ClientCertFile, "/nonexistent/k.pem" },
			[]string{"BRIDGE_KAFKA_TLS_KEY: cannot read /nonexistent/k.pem", "example: BRIDGE_KAFKA_TLS_KEY="}},
		{"unknown codec", func(c *kafkasink.Config) { c.Compression = "brotli" },
			[]string{"BRIDGE_KAFKA_COMPRESSION", `"brotli"`, "example: BRIDGE_KAFKA_COMPRESSION=lz4"}},
		{"negative batch size", func(c *kafkasink.Config) { c.BatchSize = -1 },
			[]string{"BRIDGE_KAFKA_BATCH_SIZE"}},
		{"negative timeout", func(c *kafkasink.Config) { c.WriteTimeout = -time.Second },
			[]string{"BRIDGE_KAFKA_WRITE_TIMEOUT", "negative"}},
		{"bad partitions", func(c *kafkasink.Config) { c.CreateTopics, c.Partitions = true, -3 },
			[]string{"BRIDGE_KAFKA_PARTITIONS", "-3"}},
		{"bad replication factor", func(c *kafkasink.Config) { c.CreateTopics, c.ReplicationFactor = true, 40000 },
			[]string{"BRIDGE_KAFKA_REPLICATION_FACTOR", "40000"}},
		{"topic prefix with a space", func(c *kafkasink.Config) { c.TopicPrefix = "zulip events." },
			[]string{"BRIDGE_KAFKA_TOPIC_PREFIX", `' '`, "[A-Za-z0-9._-]", "example: BRIDGE_KAFKA_TOPIC_PREFIX=zulip."}},
		{"topic prefix too long", func(c *kafkasink.Config) { c.TopicPrefix = strings.Repeat("z", 250) },
			[]string{"BRIDGE_KAFKA_TOPIC_PREFIX", "at most 249"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.change(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", cfg)
			}
			if !containsAll(err.Error(), tc.want...) {
				t.Errorf("Validate: %v\nwant it to mention %q", err, tc.want)
			}
			if _, err := kafkasink.New(context.Background(), cfg); err == nil {
				t.Error("New accepted a config Validate rejects")
			}
		})
	}
}

// The env tags' defaults are the documented defaults, and parsing the
// environment gives a valid config once the brokers are set.
func TestEnvDefaults(t *testing.T) {
	var cfg kafkasink.Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: map[string]string{
		"BRIDGE_KAFKA_BROKERS": "kafka-0:9092,kafka-1:9092",
	}}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"brokers", strings.Join(cfg.Brokers, ","), "kafka-0:9092,kafka-1:9092"},
		{"client id", cfg.ClientID, kafkasink.DefaultClientID},
		{"compression", cfg.Compression, kafkasink.CompressionNone},
		{"batch size", cfg.BatchSize, kafkasink.DefaultBatchSize},
		{"batch bytes", cfg.BatchBytes, int64(kafkasink.DefaultBatchBytes)},
		{"batch timeout", cfg.BatchTimeout, kafkasink.DefaultBatchTimeout},
		{"write timeout", cfg.WriteTimeout, kafkasink.DefaultWriteTimeout},
		{"dial timeout", cfg.DialTimeout, kafkasink.DefaultDialTimeout},
		{"create topics", cfg.CreateTopics, false},
		{"partitions", cfg.Partitions, -1},
		{"replication factor", cfg.ReplicationFactor, -1},
		{"read-back fetch bytes", cfg.ReadBackFetchBytes, kafkasink.DefaultReadBackFetchBytes},
		{"read-back progress", cfg.ReadBackProgress, kafkasink.DefaultReadBackProgress},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestLogValueHidesPassword(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	for _, cfg := range []kafkasink.Config{
		{Brokers: []string{"k:9092"}, SASLMechanism: "plain", Username: "bridge", Password: "hunter2-secret"},
		{Brokers: []string{"k:9092"}, SASLMechanism: "plain", Username: "bridge", PasswordFile: "hunter2-secret\n"},
	} {
		log.Info("config", "kafka", cfg)
	}
	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("log shows the password: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"password_set":true`) {
		t.Errorf("log does not say a password is set: %s", buf.String())
	}
}

func TestValidateTopic(t *testing.T) {
	for name, ok := range map[string]bool{
		"zulip.message":              true,
		"zulip.message.stream-12_x":  true,
		strings.Repeat("a", 249):     true,
		strings.Repeat("a", 250):     false,
		"":                           false,
		".":                          false,
		"..":                         false,
		"zulip.lunch plans":          false,
		"zulip/message":              false,
		"zulip.é":                    false,
		"zulip.message\n":            false,
		"zulip.stream.Denmark:greet": false,
	} {
		err := kafkasink.ValidateTopic(name)
		if (err == nil) != ok {
			t.Errorf("ValidateTopic(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil && !errors.Is(err, kafkasink.ErrInvalidTopic) {
			t.Errorf("ValidateTopic(%q) = %v, not ErrInvalidTopic", name, err)
		}
	}
}

// Ready is true with the broker up, false once it is gone, and Close
// makes every method fail with ErrClosed.
func TestReadyAndClosed(t *testing.T) {
	c := newCluster(t)
	s, err := kafkasink.New(context.Background(), testConfig(c))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Ready(ctx); !errors.Is(err, kafkasink.ErrClosed) {
		t.Errorf("Ready after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Position(ctx); !errors.Is(err, kafkasink.ErrClosed) {
		t.Errorf("Position after Close: %v, want ErrClosed", err)
	}
	if _, err := s.PublishedSince(ctx, nil); !errors.Is(err, kafkasink.ErrClosed) {
		t.Errorf("PublishedSince after Close: %v, want ErrClosed", err)
	}

	live := newSink(t, testConfig(c))
	if err := live.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	c.Close()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := live.Ready(short); err == nil {
		t.Error("Ready with the broker gone succeeded")
	}
}

// TestNilOptions: an option that cannot apply its value fails New instead
// of panicking later, as with the NATS sink.
func TestNilOptions(t *testing.T) {
	cfg := kafkasink.Config{Brokers: []string{"127.0.0.1:9092"}}
	for _, opt := range []kafkasink.Option{kafkasink.WithLogger(nil), kafkasink.WithClock(nil)} {
		if _, err := kafkasink.New(context.Background(), cfg, opt); err == nil || !strings.Contains(err.Error(), "nil") {
			t.Errorf("New with a nil option value = %v, want an error", err)
		}
	}
}
