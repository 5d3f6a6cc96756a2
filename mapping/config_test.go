package mapping

import (
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/source"
)

func TestConfigValidate(t *testing.T) {
	valid := []Config{
		{},
		{SubjectPrefix: "zulip", CloudEvents: "off", Sink: "nats"},
		{SubjectPrefix: "acme.zulip-1_x", CloudEvents: "binary", Sink: "kafka"},
		{CloudEvents: "structured", SubjectTemplate: DefaultSubjectTemplate, TopicTemplate: DefaultTopicTemplate},
	}
	for _, cfg := range valid {
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", cfg, err)
		}
	}
	invalid := []struct {
		cfg  Config
		want []string // all in the error
	}{
		{Config{SubjectPrefix: "zu lip"}, []string{`BRIDGE_SUBJECT_PREFIX: "zu lip"`, "' '", "(example: BRIDGE_SUBJECT_PREFIX=acme.zulip)"}},
		{Config{SubjectPrefix: "zulip.>"}, []string{"BRIDGE_SUBJECT_PREFIX", "'>'"}},
		{Config{SubjectPrefix: "a..b"}, []string{"BRIDGE_SUBJECT_PREFIX", "empty token"}},
		{Config{SubjectPrefix: "zulip."}, []string{"BRIDGE_SUBJECT_PREFIX", "empty token"}},
		{Config{SubjectPrefix: strings.Repeat("z", 101)}, []string{"BRIDGE_SUBJECT_PREFIX", "limit is 100"}},
		{Config{CloudEvents: "yes"}, []string{`BRIDGE_CLOUDEVENTS: unknown mode "yes"`, "off, binary or structured", "(example: BRIDGE_CLOUDEVENTS=binary)"}},
		{Config{Sink: "redis"}, []string{`BRIDGE_SINK: unknown sink "redis"`, "nats or kafka", "(example: BRIDGE_SINK=nats)"}},
		// Every problem is reported at once.
		{Config{SubjectPrefix: "a b", CloudEvents: "x", Sink: "y", SubjectTemplate: "{x}"}, []string{
			"BRIDGE_SUBJECT_PREFIX", "BRIDGE_CLOUDEVENTS", "BRIDGE_SINK", "BRIDGE_SUBJECT_TEMPLATE",
		}},
	}
	for _, tt := range invalid {
		err := tt.cfg.Validate()
		if err == nil {
			t.Errorf("Validate(%+v) = nil", tt.cfg)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%+v) = %q, want it to contain %q", tt.cfg, err, w)
			}
		}
	}
}

// TestNewSite checks what the mapping takes from the site: the host in
// Zulip-Site and the dedup keys, the origin as CloudEvents source. How
// ZULIP_SITE is parsed, and that its errors never show a password, is
// source.ParseSite's test.
func TestNewSite(t *testing.T) {
	tests := []struct{ site, host, source string }{
		{"https://chat.example.com", "chat.example.com", "https://chat.example.com"},
		{"https://Chat.Example.COM/", "chat.example.com", "https://chat.example.com"},
		{"chat.example.com", "chat.example.com", "https://chat.example.com"},
		{" https://chat.example.com:443/api/v1 ", "chat.example.com", "https://chat.example.com"},
		{"http://localhost:9991", "localhost:9991", "http://localhost:9991"},
		{"http://127.0.0.1:80", "127.0.0.1", "http://127.0.0.1"},
		{"https://[::1]:8443", "[::1]:8443", "https://[::1]:8443"},
		{"https://[::1]", "[::1]", "https://[::1]"},
		{"HTTPS://xn--caf-dma.example", "xn--caf-dma.example", "https://xn--caf-dma.example"},
	}
	for _, tt := range tests {
		m, err := New(Config{CloudEvents: CloudEventsStructured}, mustSite(tt.site))
		if err != nil {
			t.Errorf("New(%q): %v", tt.site, err)
			continue
		}
		if m.Site() != tt.host || m.source != tt.source {
			t.Errorf("New(%q): host %q source %q, want %q %q", tt.site, m.Site(), m.source, tt.host, tt.source)
		}
		msg, err := m.Map([]byte(`{"type":"heartbeat","id":1}`), testQueue)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := msg.Get(HeaderSite); v != tt.host || msg.DedupKey != tt.host+"/"+testQueue+"/1" {
			t.Errorf("New(%q): Zulip-Site %q, dedup key %q", tt.site, v, msg.DedupKey)
		}
	}
	if _, err := New(Config{}, source.Site{}); err == nil || !strings.Contains(err.Error(), "ZULIP_SITE") {
		t.Errorf("New without a site: %v", err)
	}
	if _, err := New(Config{Sink: "x"}, mustSite(testSite)); err == nil || !strings.Contains(err.Error(), "BRIDGE_SINK") {
		t.Errorf("New with an invalid config: %v", err)
	}
}

// TestConfigZeroValue: the zero value validates and means what the
// environment's defaults mean, as for every Config of the bridge.
func TestConfigZeroValue(t *testing.T) {
	var fromEnv Config
	if err := envconfig.Parse(&fromEnv, nil); err != nil {
		t.Fatal(err)
	}
	if got := (Config{}).withDefaults(); got != fromEnv {
		t.Errorf("zero value means %+v, the environment's defaults are %+v", got, fromEnv)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("Validate(Config{}) = %v", err)
	}
}
