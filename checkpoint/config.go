package checkpoint

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Store kinds, the values of BRIDGE_CHECKPOINT.
const (
	KindFile   = "file"
	KindNATSKV = "nats-kv"
	KindKafka  = "kafka"
)

// Defaults of Config; an empty field means its default.
const (
	DefaultStateDir   = "./data"
	DefaultName       = "bridge"
	DefaultKVBucket   = "zulip-bridge-checkpoints"
	DefaultKafkaTopic = "zulip-bridge-checkpoints"
)

// Config selects and configures the checkpoint store. Empty strings mean
// the documented default, so the zero value is a file store in ./data.
type Config struct {
	// Kind is the store: "file" (default), "nats-kv" or "kafka".
	Kind string `env:"BRIDGE_CHECKPOINT" envDefault:"file" example:"nats-kv" help:"checkpoint store: file (in the state dir), nats-kv or kafka (compacted topic)"`
	// StateDir holds the file store's checkpoint.json and its lock file.
	// Default "./data". The embedded NATS server keeps its data there too.
	StateDir string `env:"BRIDGE_STATE_DIR" envDefault:"./data" example:"/var/lib/zulip-bridge" help:"checkpoint file and embedded NATS storage"`
	// Name tells apart bridges that share a bucket or topic for one Zulip
	// site, such as one bridge per sink: it is part of the derived key.
	// Letters, digits, '-' and '_'; default "bridge".
	Name string `env:"BRIDGE_CHECKPOINT_NAME" envDefault:"bridge" example:"kafka-bridge" help:"tells apart bridges of one site sharing a checkpoint bucket or topic"`
	// Key replaces the derived key "<site host>/<Name>" of the nats-kv and
	// kafka stores. Letters, digits and "-/_=.", not starting or ending
	// with '.'. Default empty: derived.
	Key string `env:"BRIDGE_CHECKPOINT_KEY" example:"chat.example.com/bridge" help:"checkpoint key in the bucket or topic; empty = <site host>/<BRIDGE_CHECKPOINT_NAME>"`
	// KVBucket is the JetStream key-value bucket of the nats-kv store.
	// Default "zulip-bridge-checkpoints".
	KVBucket string `env:"BRIDGE_CHECKPOINT_KV_BUCKET" envDefault:"zulip-bridge-checkpoints" example:"zulip-bridge-checkpoints" help:"JetStream key-value bucket of the nats-kv checkpoint"`
	// KafkaTopic is the compacted topic of the kafka store. It must not be
	// one of the topics the Kafka sink writes. Default
	// "zulip-bridge-checkpoints".
	KafkaTopic string `env:"BRIDGE_CHECKPOINT_KAFKA_TOPIC" envDefault:"zulip-bridge-checkpoints" example:"zulip-bridge-checkpoints" help:"compacted topic of the kafka checkpoint"`
	// Create makes the bucket or topic when it does not exist. The zero
	// value does not; the environment default is true.
	Create bool `env:"BRIDGE_CHECKPOINT_CREATE" envDefault:"true" example:"false" help:"create the checkpoint bucket or topic if missing"`
	// Replicas is the replication of a bucket or topic that Create makes:
	// 0 (default) leaves it to the server (one replica for a bucket, the
	// broker's default.replication.factor for a topic). At most 5 for
	// nats-kv.
	Replicas int `env:"BRIDGE_CHECKPOINT_REPLICAS" envDefault:"0" example:"3" help:"replicas of a created checkpoint bucket or topic; 0 = server default"`
}

var (
	nameRe   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	keyRe    = regexp.MustCompile(`^[-/_=.A-Za-z0-9]{1,255}$`)
	bucketRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	topicRe  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
)

// Validate reports the first setting that cannot work, naming its variable
// and giving a valid example.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch c.Kind {
	case KindFile, KindNATSKV, KindKafka:
	default:
		return fmt.Errorf("BRIDGE_CHECKPOINT: unknown store %q; want file, nats-kv or kafka (example: BRIDGE_CHECKPOINT=file)", c.Kind)
	}
	if !nameRe.MatchString(c.Name) {
		return fmt.Errorf("BRIDGE_CHECKPOINT_NAME: %q must be 1 to 64 letters, digits, '-' or '_' (example: BRIDGE_CHECKPOINT_NAME=kafka-bridge)", c.Name)
	}
	if c.Key != "" && !validKey(c.Key) {
		return fmt.Errorf("BRIDGE_CHECKPOINT_KEY: %q must be 1 to 255 letters, digits or \"-/_=.\", without '..' and not starting or ending with '.' (example: BRIDGE_CHECKPOINT_KEY=chat.example.com/bridge)", c.Key)
	}
	if !bucketRe.MatchString(c.KVBucket) {
		return fmt.Errorf("BRIDGE_CHECKPOINT_KV_BUCKET: %q must be 1 to 64 letters, digits, '-' or '_' (example: BRIDGE_CHECKPOINT_KV_BUCKET=%s)", c.KVBucket, DefaultKVBucket)
	}
	if !topicRe.MatchString(c.KafkaTopic) || c.KafkaTopic == "." || c.KafkaTopic == ".." {
		return fmt.Errorf("BRIDGE_CHECKPOINT_KAFKA_TOPIC: %q must be 1 to 249 letters, digits, '.', '-' or '_', and not \".\" or \"..\" (example: BRIDGE_CHECKPOINT_KAFKA_TOPIC=%s)", c.KafkaTopic, DefaultKafkaTopic)
	}
	switch {
	case c.Replicas < 0:
		return fmt.Errorf("BRIDGE_CHECKPOINT_REPLICAS: %d is negative; use 0 for the server's default (example: BRIDGE_CHECKPOINT_REPLICAS=3)", c.Replicas)
	case c.Kind == KindNATSKV && c.Replicas > 5:
		return fmt.Errorf("BRIDGE_CHECKPOINT_REPLICAS: %d is more than the 5 replicas JetStream allows (example: BRIDGE_CHECKPOINT_REPLICAS=3)", c.Replicas)
	case c.Replicas > 32767:
		return fmt.Errorf("BRIDGE_CHECKPOINT_REPLICAS: %d is more than Kafka allows (example: BRIDGE_CHECKPOINT_REPLICAS=3)", c.Replicas)
	}
	return nil
}

// WithDefaults returns c with every empty field set to its default.
func (c Config) WithDefaults() Config {
	if c.Kind == "" {
		c.Kind = KindFile
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.KVBucket == "" {
		c.KVBucket = DefaultKVBucket
	}
	if c.KafkaTopic == "" {
		c.KafkaTopic = DefaultKafkaTopic
	}
	return c
}

// KeyFor returns the key under which the nats-kv and kafka stores keep the
// checkpoint of site: Key if set, else DefaultKey(site, Name).
func (c Config) KeyFor(site string) (string, error) {
	c = c.WithDefaults()
	if c.Key != "" {
		return c.Key, nil
	}
	return DefaultKey(site, c.Name)
}

// DefaultKey derives a checkpoint key from a Zulip site URL and a bridge
// name: "<host>/<name>", the host lowercased with its port, e.g.
// "chat.example.com/bridge". Characters a key cannot hold are escaped as
// "_xx" (and '_' itself as "_5f"), so different sites never share a key.
func DefaultKey(site, name string) (string, error) {
	if !nameRe.MatchString(name) {
		return "", fmt.Errorf("checkpoint name %q must be 1 to 64 letters, digits, '-' or '_'", name)
	}
	raw := strings.TrimSpace(site)
	if !strings.Contains(raw, "://") {
		// The Zulip clients accept a bare host and assume https.
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("checkpoint key: site %q has no host", site)
	}
	var b strings.Builder
	for _, c := range []byte(strings.ToLower(u.Host)) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	key := b.String() + "/" + name
	if !validKey(key) {
		return "", fmt.Errorf("checkpoint key: site %q gives the invalid key %q; set BRIDGE_CHECKPOINT_KEY", site, key)
	}
	return key, nil
}

// validKey applies the JetStream key-value rules, which are stricter than
// Kafka's, so that one key works with either store.
func validKey(k string) bool {
	return keyRe.MatchString(k) && !strings.HasPrefix(k, ".") && !strings.HasSuffix(k, ".") && !strings.Contains(k, "..")
}
