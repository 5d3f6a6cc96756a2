package envconfig

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type inner struct {
	APIKey  string        `env:"ZULIP_API_KEY"`
	KeyFile string        `env:"ZULIP_API_KEY_FILE,file"`
	Timeout time.Duration `env:"BRIDGE_SHUTDOWN_TIMEOUT" envDefault:"30s"`
}

type sample struct {
	Inner   inner
	Sink    string `env:"BRIDGE_SINK" envDefault:"nats" example:"kafka"`
	Beats   bool   `env:"BRIDGE_PUBLISH_HEARTBEATS" envDefault:"false"`
	Pages   int    `env:"BRIDGE_BACKFILL_PAGE_SIZE" envDefault:"1000"`
	Dir     string `env:"BRIDGE_STATE_DIR" envDefault:"./data"`
	DirDup  string `env:"BRIDGE_STATE_DIR" envDefault:"./data"`
	Ignored string
}

func TestParseNamesVariableAndExample(t *testing.T) {
	tests := []struct {
		env      []string
		wantKey  string
		wantText string
	}{
		{[]string{"BRIDGE_SHUTDOWN_TIMEOUT=soon"}, "BRIDGE_SHUTDOWN_TIMEOUT", "BRIDGE_SHUTDOWN_TIMEOUT=30s"},
		{[]string{"BRIDGE_PUBLISH_HEARTBEATS=yes please"}, "BRIDGE_PUBLISH_HEARTBEATS", "a boolean"},
		{[]string{"BRIDGE_BACKFILL_PAGE_SIZE=1k"}, "BRIDGE_BACKFILL_PAGE_SIZE", "BRIDGE_BACKFILL_PAGE_SIZE=1000"},
		{[]string{"ZULIP_API_KEY_FILE=/does/not/exist"}, "ZULIP_API_KEY_FILE", "cannot read file"},
	}
	for _, tt := range tests {
		var s sample
		err := Parse(&s, tt.env)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("%v: want *Error, got %v", tt.env, err)
		}
		if ce.Key != tt.wantKey || !strings.Contains(err.Error(), tt.wantText) {
			t.Errorf("%v: got %q, want key %s and text %q", tt.env, err, tt.wantKey, tt.wantText)
		}
	}
}

func TestParseNeverEchoesSecretValue(t *testing.T) {
	type withSecretInt struct {
		Token int `env:"BRIDGE_NATS_TOKEN"`
	}
	var s withSecretInt
	err := Parse(&s, []string{"BRIDGE_NATS_TOKEN=hunter2-secret"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error must exist and hide the value: %v", err)
	}
}

func TestParseDefaultsAndValues(t *testing.T) {
	var s sample
	if err := Parse(&s, []string{"BRIDGE_SINK=kafka", "BRIDGE_STATE_DIR=/tmp/x"}); err != nil {
		t.Fatal(err)
	}
	if s.Sink != "kafka" || s.Inner.Timeout != 30*time.Second || s.Pages != 1000 || s.Dir != "/tmp/x" || s.DirDup != "/tmp/x" {
		t.Fatalf("parsed %+v", s)
	}
}

func TestVarsAndDescribe(t *testing.T) {
	vars := Vars(&sample{})
	var keys []string
	for _, v := range vars {
		keys = append(keys, v.Key)
	}
	want := "ZULIP_API_KEY ZULIP_API_KEY_FILE BRIDGE_SHUTDOWN_TIMEOUT BRIDGE_SINK BRIDGE_PUBLISH_HEARTBEATS BRIDGE_BACKFILL_PAGE_SIZE BRIDGE_STATE_DIR"
	if got := strings.Join(keys, " "); got != want {
		t.Fatalf("vars\n got %s\nwant %s", got, want)
	}
	out := Describe(vars, []string{"ZULIP_API_KEY=topsecretvalue", "BRIDGE_SINK=kafka"})
	if strings.Contains(out, "topsecretvalue") {
		t.Fatalf("secret leaked:\n%s", out)
	}
	for _, line := range []string{`ZULIP_API_KEY `, `set (secret)`, `set: "kafka"`, `default="30s"`} {
		if !strings.Contains(out, line) {
			t.Errorf("describe lacks %q:\n%s", line, out)
		}
	}
}

func TestUnknown(t *testing.T) {
	got := Unknown(Vars(&sample{}), []string{"BRIDGE_SNK=nats", "BRIDGE_SINK=nats", "HOME=/root"}, "BRIDGE_", "ZULIP_")
	if len(got) != 1 || got[0] != "BRIDGE_SNK" {
		t.Fatalf("got %v", got)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{Key: "BRIDGE_SINK", Problem: `unknown sink "x"`, Example: "nats"}, `BRIDGE_SINK: unknown sink "x" (example: BRIDGE_SINK=nats)`},
		{Error{Key: "BRIDGE_NATS_PASSWORD", Problem: "is required"}, `BRIDGE_NATS_PASSWORD: is required`},
		{Error{Key: "ZULIP_API_KEY", Problem: "is not set", Example: "ZULIP_API_KEY_FILE=/run/key"}, `ZULIP_API_KEY: is not set (example: ZULIP_API_KEY_FILE=/run/key)`},
		{Error{Key: "BRIDGE_NARROW", Problem: "bad", Example: `'[["stream","a=b"]]'`}, `BRIDGE_NARROW: bad (example: BRIDGE_NARROW='[["stream","a=b"]]')`},
		{Error{Key: "BRIDGE_SUBJECT_TEMPLATE", Problem: "bad", Example: "{prefix}.{type}"}, `BRIDGE_SUBJECT_TEMPLATE: bad (example: BRIDGE_SUBJECT_TEMPLATE={prefix}.{type})`},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
