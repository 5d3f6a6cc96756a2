package envconfig

import (
	"errors"
	"strconv"
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

// TestParseValuesAsChecked holds Parse to reading a value exactly as its
// check did: a padded value of any kind is rejected (durations as ints and
// booleans, with no trimming), and an int is as wide as Go's int, so that
// no value reaches the environment library's own errors (which name the Go
// field and quote the value, a secret's too). The first cases are the
// inputs FuzzParse found (testdata/fuzz/FuzzParse).
func TestParseValuesAsChecked(t *testing.T) {
	type cfg struct {
		Timeout   time.Duration  `env:"BRIDGE_SHUTDOWN_TIMEOUT" envDefault:"30s"`
		Secret    time.Duration  `env:"BRIDGE_X_TIMEOUT" secret:"true"`
		Batch     int            `env:"BRIDGE_PUBLISH_BATCH" envDefault:"100"`
		Token     int            `env:"BRIDGE_NATS_TOKEN"`
		Max       int64          `env:"BRIDGE_MAX_BYTES"`
		Small     int8           `env:"BRIDGE_SMALL"`
		Port      uint16         `env:"BRIDGE_PORT"`
		Seed      uint64         `env:"BRIDGE_SEED"`
		Beats     bool           `env:"BRIDGE_PUBLISH_HEARTBEATS"`
		Wait      *time.Duration `env:"BRIDGE_WAIT"`
		WideBatch *int           `env:"BRIDGE_WIDE"`
	}
	wide := 3000000000
	if strconv.IntSize < 64 {
		t.Skip("an int of 32 bits cannot hold 3000000000")
	}
	wait := 5 * time.Second
	tests := []struct {
		env     string
		want    cfg    // when err is ""
		wantErr string // the whole error
	}{
		{env: `BRIDGE_SHUTDOWN_TIMEOUT= 30s`, wantErr: `BRIDGE_SHUTDOWN_TIMEOUT: " 30s" is not a duration (example: BRIDGE_SHUTDOWN_TIMEOUT=30s)`},
		{env: `BRIDGE_X_TIMEOUT= 1s`, wantErr: `BRIDGE_X_TIMEOUT: the value is not a duration (example: BRIDGE_X_TIMEOUT=30s)`},
		{env: `BRIDGE_PUBLISH_BATCH=3000000000`, want: cfg{Timeout: 30 * time.Second, Batch: wide}},
		{env: `BRIDGE_NATS_TOKEN=-3000000000`, want: cfg{Timeout: 30 * time.Second, Batch: 100, Token: -wide}},
		{env: `BRIDGE_SHUTDOWN_TIMEOUT=30s `, wantErr: `BRIDGE_SHUTDOWN_TIMEOUT: "30s " is not a duration (example: BRIDGE_SHUTDOWN_TIMEOUT=30s)`},
		{env: `BRIDGE_WAIT=	5s`, wantErr: `BRIDGE_WAIT: "\t5s" is not a duration (example: BRIDGE_WAIT=30s)`},
		{env: `BRIDGE_WAIT=5s`, want: cfg{Timeout: 30 * time.Second, Batch: 100, Wait: &wait}},
		{env: `BRIDGE_PUBLISH_BATCH= 5`, wantErr: `BRIDGE_PUBLISH_BATCH: " 5" is not an integer (example: BRIDGE_PUBLISH_BATCH=100)`},
		{env: `BRIDGE_PUBLISH_HEARTBEATS=true `, wantErr: `BRIDGE_PUBLISH_HEARTBEATS: "true " is not a boolean (true or false) (example: BRIDGE_PUBLISH_HEARTBEATS=true)`},
		{env: `BRIDGE_WIDE=3000000000`, want: cfg{Timeout: 30 * time.Second, Batch: 100, WideBatch: &wide}},
		{env: `BRIDGE_PUBLISH_BATCH=9223372036854775808`, wantErr: `BRIDGE_PUBLISH_BATCH: "9223372036854775808" is not an integer from -9223372036854775808 to 9223372036854775807 (example: BRIDGE_PUBLISH_BATCH=100)`},
		{env: `BRIDGE_NATS_TOKEN=99999999999999999999`, wantErr: `BRIDGE_NATS_TOKEN: the value is not an integer from -9223372036854775808 to 9223372036854775807 (example: BRIDGE_NATS_TOKEN=10)`},
		{env: `BRIDGE_MAX_BYTES=9223372036854775807`, want: cfg{Timeout: 30 * time.Second, Batch: 100, Max: 1<<63 - 1}},
		{env: `BRIDGE_SMALL=128`, wantErr: `BRIDGE_SMALL: "128" is not an integer from -128 to 127 (example: BRIDGE_SMALL=10)`},
		{env: `BRIDGE_SMALL=-128`, want: cfg{Timeout: 30 * time.Second, Batch: 100, Small: -128}},
		{env: `BRIDGE_PORT=65536`, wantErr: `BRIDGE_PORT: "65536" is not an integer from 0 to 65535 (example: BRIDGE_PORT=10)`},
		{env: `BRIDGE_PORT=-1`, wantErr: `BRIDGE_PORT: "-1" is not a non-negative integer (example: BRIDGE_PORT=10)`},
		{env: `BRIDGE_SEED=18446744073709551615`, want: cfg{Timeout: 30 * time.Second, Batch: 100, Seed: 1<<64 - 1}},
		{env: `BRIDGE_SEED=18446744073709551616`, wantErr: `BRIDGE_SEED: "18446744073709551616" is not an integer from 0 to 18446744073709551615 (example: BRIDGE_SEED=10)`},
	}
	for _, tt := range tests {
		var got cfg
		err := Parse(&got, []string{tt.env})
		if tt.wantErr != "" {
			var ce *Error
			if err == nil || err.Error() != tt.wantErr || !errors.As(err, &ce) {
				t.Errorf("Parse(%q) = %v, want the envconfig.Error %s", tt.env, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.env, err)
			continue
		}
		if got.Timeout != tt.want.Timeout || got.Secret != tt.want.Secret || got.Batch != tt.want.Batch ||
			got.Token != tt.want.Token || got.Max != tt.want.Max || got.Small != tt.want.Small ||
			got.Port != tt.want.Port || got.Seed != tt.want.Seed || got.Beats != tt.want.Beats ||
			!samePtr(got.Wait, tt.want.Wait) || !samePtr(got.WideBatch, tt.want.WideBatch) {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.env, got, tt.want)
		}
	}
}

func samePtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
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
