package checkpoint_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/checkpoint/checkpointtest"
	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/source"
)

// golden is the checkpoint stored in testdata/v1.json. A bridge must keep
// reading checkpoints that earlier bridges wrote, so this file never
// changes while FormatVersion is 1.
var golden = checkpoint.Checkpoint{
	Version:      1,
	Site:         "https://chat.example.com",
	QueueID:      "1700000000:7",
	LastEventID:  41,
	MaxMessageID: 9001,
	SinkPosition: json.RawMessage(`{"stream":"ZULIP","seq":1234}`),
	UpdatedAt:    time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.FixedZone("", 2*60*60)),
}

func TestFormatV1(t *testing.T) {
	file, err := os.ReadFile("testdata/v1.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := checkpoint.Decode(file)
	if err != nil {
		t.Fatalf("Decode(testdata/v1.json): %v", err)
	}
	if d := checkpointtest.Equal(got, golden); d != "" {
		t.Errorf("Decode(testdata/v1.json): %s", d)
	}
	enc, err := checkpoint.Encode(golden)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if want := bytes.TrimSpace(file); !bytes.Equal(enc, want) {
		t.Errorf("Encode =\n%s\nwant (testdata/v1.json)\n%s", enc, want)
	}
}

func TestEncodeSetsVersion(t *testing.T) {
	cp := golden
	cp.Version = 7
	enc, err := checkpoint.Encode(cp)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	got, err := checkpoint.Decode(enc)
	if err != nil || got.Version != checkpoint.FormatVersion {
		t.Fatalf("Decode(Encode(version 7)) = version %d, %v; want version %d", got.Version, err, checkpoint.FormatVersion)
	}
}

func TestSinkPosition(t *testing.T) {
	tests := []struct {
		name string
		pos  json.RawMessage
		want json.RawMessage
	}{
		{"absent", nil, nil},
		{"null", json.RawMessage("null"), nil},
		{"compacted", json.RawMessage("{ \"a\" : [1, 2] }"), json.RawMessage(`{"a":[1,2]}`)},
		{"scalar", json.RawMessage(`"opaque"`), json.RawMessage(`"opaque"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp := golden
			cp.SinkPosition = tt.pos
			enc, err := checkpoint.Encode(cp)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := checkpoint.Decode(enc)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.Equal(got.SinkPosition, tt.want) {
				t.Errorf("SinkPosition = %q, want %q", got.SinkPosition, tt.want)
			}
		})
	}
}

func TestDecodeErrorDoesNotEchoData(t *testing.T) {
	// Whatever sits in a corrupt file is not ours to print: it could be
	// anything, a credential included.
	_, err := checkpoint.Decode([]byte(`{"version":1,"site":"x","api_key":"s3cr3t-value",`))
	if !errors.Is(err, checkpoint.ErrCorrupt) {
		t.Fatalf("Decode: %v; want ErrCorrupt", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %q repeats the data", err)
	}
}

func TestConfigEnvDefaults(t *testing.T) {
	var c checkpoint.Config
	if err := env.ParseWithOptions(&c, env.Options{Environment: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	want := checkpoint.Config{
		Kind:       checkpoint.KindFile,
		StateDir:   checkpoint.DefaultStateDir,
		Name:       checkpoint.DefaultName,
		KVBucket:   checkpoint.DefaultKVBucket,
		KafkaTopic: checkpoint.DefaultKafkaTopic,
		Create:     new(true),
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults from env tags = %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(defaults): %v", err)
	}
	// The zero value means the same: the defaults, creating what is missing.
	var zero checkpoint.Config
	if err := zero.Validate(); err != nil {
		t.Errorf("Validate(zero value): %v", err)
	}
	if !zero.CreateMissing() || zero.Bucket() != want.KVBucket || zero.Topic() != want.KafkaTopic {
		t.Errorf("zero value: create %v, bucket %q, topic %q; want the defaults", zero.CreateMissing(), zero.Bucket(), zero.Topic())
	}
	if (checkpoint.Config{Create: new(false)}).CreateMissing() {
		t.Error("Create=false creates")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string // "" = valid
	}{
		{"defaults", nil, ""},
		{"nats-kv", map[string]string{"BRIDGE_CHECKPOINT": "nats-kv", "BRIDGE_CHECKPOINT_REPLICAS": "3"}, ""},
		{"kafka", map[string]string{"BRIDGE_CHECKPOINT": "kafka", "BRIDGE_CHECKPOINT_REPLICAS": "7"}, ""},
		{"explicit key", map[string]string{"BRIDGE_CHECKPOINT_KEY": "chat.example.com/bridge=a_b-c"}, ""},
		{"unknown kind", map[string]string{"BRIDGE_CHECKPOINT": "redis"}, "BRIDGE_CHECKPOINT"},
		{"kind with case", map[string]string{"BRIDGE_CHECKPOINT": "File"}, "BRIDGE_CHECKPOINT"},
		{"name with space", map[string]string{"BRIDGE_CHECKPOINT_NAME": "my bridge"}, "BRIDGE_CHECKPOINT_NAME"},
		{"name with slash", map[string]string{"BRIDGE_CHECKPOINT_NAME": "a/b"}, "BRIDGE_CHECKPOINT_NAME"},
		{"name too long", map[string]string{"BRIDGE_CHECKPOINT_NAME": strings.Repeat("n", 65)}, "BRIDGE_CHECKPOINT_NAME"},
		{"key with space", map[string]string{"BRIDGE_CHECKPOINT_KEY": "a b"}, "BRIDGE_CHECKPOINT_KEY"},
		{"key with leading dot", map[string]string{"BRIDGE_CHECKPOINT_KEY": ".a"}, "BRIDGE_CHECKPOINT_KEY"},
		{"key with trailing dot", map[string]string{"BRIDGE_CHECKPOINT_KEY": "a."}, "BRIDGE_CHECKPOINT_KEY"},
		{"key with double dot", map[string]string{"BRIDGE_CHECKPOINT_KEY": "a..b"}, "BRIDGE_CHECKPOINT_KEY"},
		{"key with wildcard", map[string]string{"BRIDGE_CHECKPOINT_KEY": "a.*"}, "BRIDGE_CHECKPOINT_KEY"},
		{"bucket with dot", map[string]string{"BRIDGE_CHECKPOINT_KV_BUCKET": "a.b"}, "BRIDGE_CHECKPOINT_KV_BUCKET"},
		{"topic with slash", map[string]string{"BRIDGE_CHECKPOINT_KAFKA_TOPIC": "a/b"}, "BRIDGE_CHECKPOINT_KAFKA_TOPIC"},
		{"topic dotdot", map[string]string{"BRIDGE_CHECKPOINT_KAFKA_TOPIC": ".."}, "BRIDGE_CHECKPOINT_KAFKA_TOPIC"},
		{"topic too long", map[string]string{"BRIDGE_CHECKPOINT_KAFKA_TOPIC": strings.Repeat("t", 250)}, "BRIDGE_CHECKPOINT_KAFKA_TOPIC"},
		{"negative replicas", map[string]string{"BRIDGE_CHECKPOINT_REPLICAS": "-1"}, "BRIDGE_CHECKPOINT_REPLICAS"},
		{"kv replicas above 5", map[string]string{"BRIDGE_CHECKPOINT": "nats-kv", "BRIDGE_CHECKPOINT_REPLICAS": "6"}, "BRIDGE_CHECKPOINT_REPLICAS"},
		{"kafka replicas above int16", map[string]string{"BRIDGE_CHECKPOINT": "kafka", "BRIDGE_CHECKPOINT_REPLICAS": "40000"}, "BRIDGE_CHECKPOINT_REPLICAS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c checkpoint.Config
			if err := env.ParseWithOptions(&c, env.Options{Environment: tt.env}); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if tt.wantVar == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %v", tt.env)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.wantVar+": ") || !strings.Contains(msg, "(example: "+tt.wantVar+"=") {
				t.Errorf("Validate = %q; want it to start with %s and give an example", msg, tt.wantVar)
			}
		})
	}
}

// TestConfigValidateAll: every problem is reported at once, each in the
// one format.
func TestConfigValidateAll(t *testing.T) {
	err := checkpoint.Config{Kind: "redis", Name: "a b", KVBucket: "a.b", Replicas: -1}.Validate()
	if err == nil {
		t.Fatal("Validate accepted four problems")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 4 {
		t.Fatalf("Validate = %q; want 4 problems", err)
	}
	for i, v := range []string{"BRIDGE_CHECKPOINT", "BRIDGE_CHECKPOINT_NAME", "BRIDGE_CHECKPOINT_KV_BUCKET", "BRIDGE_CHECKPOINT_REPLICAS"} {
		if !strings.HasPrefix(lines[i], v+": ") || !strings.HasSuffix(lines[i], ")") || !strings.Contains(lines[i], " (example: "+v+"=") {
			t.Errorf("problem %d = %q; want %s: ... (example: %s=...)", i, lines[i], v, v)
		}
	}
}

func mustSite(t *testing.T, raw string) source.Site {
	t.Helper()
	s, err := source.ParseSite(raw)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDefaultKey(t *testing.T) {
	tests := []struct {
		site, name, want string
	}{
		{"https://chat.example.com", "bridge", "chat.example.com/bridge"},
		{"https://Chat.Example.com/", "bridge", "chat.example.com/bridge"},
		{"https://Chat.Example.com:443/", "bridge", "chat.example.com/bridge"},
		{"chat.example.com", "kafka-bridge", "chat.example.com/kafka-bridge"},
		{"http://localhost:9991", "bridge", "localhost_3a9991/bridge"},
		{"https://[::1]:443", "b", "_5b_3a_3a1_5d/b"},
		{"https://[::1]:8443", "b", "_5b_3a_3a1_5d_3a8443/b"},
		{"https://under_score.example", "b", "under_5fscore.example/b"},
	}
	for _, tt := range tests {
		got, err := checkpoint.DefaultKey(mustSite(t, tt.site), tt.name)
		if err != nil || got != tt.want {
			t.Errorf("DefaultKey(%q, %q) = %q, %v; want %q", tt.site, tt.name, got, err, tt.want)
		}
	}
	// Escaping must be injective: '_' in a host cannot fake an escape.
	a, _ := checkpoint.DefaultKey(mustSite(t, "https://a_3a1"), "b")
	b, _ := checkpoint.DefaultKey(mustSite(t, "https://a:1"), "b")
	if a == b {
		t.Errorf("hosts a_3a1 and a:1 share key %q", a)
	}
	for _, bad := range []struct {
		site source.Site
		name string
	}{{source.Site{}, "b"}, {mustSite(t, "https://x"), "a b"}, {mustSite(t, "https://x"), ""}} {
		if k, err := checkpoint.DefaultKey(bad.site, bad.name); err == nil {
			t.Errorf("DefaultKey(%q, %q) = %q; want an error", bad.site, bad.name, k)
		}
	}
}

func TestLegacyKeyFor(t *testing.T) {
	tests := []struct{ site, key, want string }{
		{"https://Chat.Example.com:443/", "", "chat.example.com_3a443/bridge"},
		{"http://chat.example.com:80", "", "chat.example.com_3a80/bridge"},
		{"https://[::1]:443", "", "_5b_3a_3a1_5d_3a443/bridge"},
		{"https://chat.example.com", "", ""},        // the same key: nothing to look up
		{"http://localhost:9991", "", ""},           // a port that is not the default was always kept
		{"https://chat.example.com:443", "k/1", ""}, // an explicit key never changed
	}
	for _, tt := range tests {
		if got := (checkpoint.Config{Key: tt.key}).LegacyKeyFor(mustSite(t, tt.site)); got != tt.want {
			t.Errorf("LegacyKeyFor(%q) = %q, want %q", tt.site, got, tt.want)
		}
	}
}

func TestKeyFor(t *testing.T) {
	c := checkpoint.Config{Name: "n1"}
	if k, err := c.KeyFor(mustSite(t, "https://chat.example.com")); err != nil || k != "chat.example.com/n1" {
		t.Errorf("KeyFor derived = %q, %v", k, err)
	}
	c.Key = "explicit/key"
	if k, err := c.KeyFor(mustSite(t, "https://chat.example.com")); err != nil || k != "explicit/key" {
		t.Errorf("KeyFor explicit = %q, %v", k, err)
	}
}

// TestKeyHelpShowsTheStoredKey holds BRIDGE_CHECKPOINT_KEY's documented
// meaning (docs/configuration.md) to what DefaultKey derives: the example
// it gives is the key the stores really use, escaped host included, so
// that `nats kv get` with the documented key finds the checkpoint.
func TestKeyHelpShowsTheStoredKey(t *testing.T) {
	var help string
	for _, v := range envconfig.Vars(&checkpoint.Config{}) {
		if v.Key == "BRIDGE_CHECKPOINT_KEY" {
			help = v.Help
		}
	}
	key, err := checkpoint.DefaultKey(mustSite(t, "http://localhost:9991"), "bridge")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ZULIP_SITE=http://localhost:9991 gives " + key + " ", "nats kv get zulip-bridge-checkpoints " + key + ")"} {
		if !strings.Contains(help, want) {
			t.Errorf("BRIDGE_CHECKPOINT_KEY help %q lacks %q", help, want)
		}
	}
	if bucket := (checkpoint.Config{}).Bucket(); !strings.Contains(help, " "+bucket+" ") {
		t.Errorf("BRIDGE_CHECKPOINT_KEY help %q does not name the default bucket %q", help, bucket)
	}
}
