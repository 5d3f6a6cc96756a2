package checkpoint

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/source"
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

// Config selects and configures the checkpoint store. Like every Config of
// the bridge, its zero value means the documented defaults (a file store in
// ./data), each default written on its field.
type Config struct {
	// Kind is the store: "file" (default), "nats-kv" or "kafka".
	Kind string `env:"BRIDGE_CHECKPOINT" envDefault:"file" example:"nats-kv" help:"file (in the state dir), nats-kv (needs BRIDGE_SINK=nats) or kafka (compacted topic, needs BRIDGE_SINK=kafka)"`
	// StateDir holds the file store's checkpoint.json and its lock file.
	// Default "./data". The embedded NATS server keeps its data there too.
	StateDir string `env:"BRIDGE_STATE_DIR" envDefault:"./data" example:"/var/lib/zulip-bridge" help:"checkpoint file (checkpoint.json) and the embedded NATS server's storage"`
	// Name tells apart bridges that share a bucket or topic for one Zulip
	// site, such as one bridge per sink: it is part of the derived key.
	// Letters, digits, '-' and '_'; default "bridge".
	Name string `env:"BRIDGE_CHECKPOINT_NAME" envDefault:"bridge" example:"kafka-bridge" help:"tells apart bridges of one site sharing a checkpoint bucket or topic"`
	// Key replaces the derived key "<site host>/<Name>" of the nats-kv and
	// kafka stores. Letters, digits and "-/_=.", not starting or ending
	// with '.'. Default empty: derived.
	Key string `env:"BRIDGE_CHECKPOINT_KEY" example:"chat.example.com/bridge" help:"checkpoint key in the bucket or topic; unset = <site host>/<BRIDGE_CHECKPOINT_NAME>, each character of the host other than a-z, 0-9, . and - written as _ and its hex code: ZULIP_SITE=http://localhost:9991 gives localhost_3a9991/bridge (nats kv get zulip-bridge-checkpoints localhost_3a9991/bridge)"`
	// KVBucket is the JetStream key-value bucket of the nats-kv store.
	// Default "zulip-bridge-checkpoints".
	KVBucket string `env:"BRIDGE_CHECKPOINT_KV_BUCKET" envDefault:"zulip-bridge-checkpoints" example:"zulip-bridge-checkpoints" help:"JetStream key-value bucket of the nats-kv checkpoint"`
	// KafkaTopic is the compacted topic of the kafka store. It must not be
	// one of the topics the Kafka sink writes. Default
	// "zulip-bridge-checkpoints".
	KafkaTopic string `env:"BRIDGE_CHECKPOINT_KAFKA_TOPIC" envDefault:"zulip-bridge-checkpoints" example:"zulip-bridge-checkpoints" help:"compacted topic of the kafka checkpoint"`
	// Create makes the bucket or topic when it does not exist. Nil (the
	// zero value) means the default, true; see CreateMissing.
	Create *bool `env:"BRIDGE_CHECKPOINT_CREATE" envDefault:"true" example:"false" help:"create the checkpoint bucket or topic if missing"`
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

// Validate reports every setting that cannot work, each naming its
// variable and giving a valid example. Empty fields mean their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(key, example, format string, args ...any) {
		errs = append(errs, &envconfig.Error{Key: key, Problem: fmt.Sprintf(format, args...), Example: example})
	}
	switch c.Kind {
	case KindFile, KindNATSKV, KindKafka:
	default:
		bad("BRIDGE_CHECKPOINT", KindFile, "unknown store %q: want file, nats-kv or kafka", c.Kind)
	}
	if !nameRe.MatchString(c.Name) {
		bad("BRIDGE_CHECKPOINT_NAME", "kafka-bridge", "%q must be 1 to 64 letters, digits, '-' or '_'", c.Name)
	}
	if c.Key != "" && !validKey(c.Key) {
		bad("BRIDGE_CHECKPOINT_KEY", "chat.example.com/bridge", "%q must be 1 to 255 letters, digits or \"-/_=.\", without '..' and not starting or ending with '.'", c.Key)
	}
	if !bucketRe.MatchString(c.KVBucket) {
		bad("BRIDGE_CHECKPOINT_KV_BUCKET", DefaultKVBucket, "%q must be 1 to 64 letters, digits, '-' or '_'", c.KVBucket)
	}
	if !topicRe.MatchString(c.KafkaTopic) || c.KafkaTopic == "." || c.KafkaTopic == ".." {
		bad("BRIDGE_CHECKPOINT_KAFKA_TOPIC", DefaultKafkaTopic, "%q must be 1 to 249 letters, digits, '.', '-' or '_', and not \".\" or \"..\"", c.KafkaTopic)
	}
	switch {
	case c.Replicas < 0:
		bad("BRIDGE_CHECKPOINT_REPLICAS", "3", "%d is negative: use 0 for the server's default", c.Replicas)
	case c.Kind == KindNATSKV && c.Replicas > 5:
		bad("BRIDGE_CHECKPOINT_REPLICAS", "3", "%d is more than the 5 replicas JetStream allows", c.Replicas)
	case c.Replicas > 32767:
		bad("BRIDGE_CHECKPOINT_REPLICAS", "3", "%d is more than Kafka allows", c.Replicas)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every empty field set to its default.
func (c Config) withDefaults() Config {
	c.Kind = cmp.Or(c.Kind, KindFile)
	c.StateDir = cmp.Or(c.StateDir, DefaultStateDir)
	c.Name = cmp.Or(c.Name, DefaultName)
	c.KVBucket = cmp.Or(c.KVBucket, DefaultKVBucket)
	c.KafkaTopic = cmp.Or(c.KafkaTopic, DefaultKafkaTopic)
	if c.Create == nil {
		c.Create = new(true)
	}
	return c
}

// CreateMissing reports whether a missing bucket or topic is to be made
// (Create, default true).
func (c Config) CreateMissing() bool { return *c.withDefaults().Create }

// Bucket returns the JetStream key-value bucket of the nats-kv store
// (KVBucket, default applied).
func (c Config) Bucket() string { return c.withDefaults().KVBucket }

// Topic returns the compacted topic of the kafka store (KafkaTopic, default
// applied).
func (c Config) Topic() string { return c.withDefaults().KafkaTopic }

// KeyFor returns the key under which the nats-kv and kafka stores keep the
// checkpoint of site: Key if set, else DefaultKey(site, Name).
func (c Config) KeyFor(site source.Site) (string, error) {
	c = c.withDefaults()
	if c.Key != "" {
		return c.Key, nil
	}
	return DefaultKey(site, c.Name)
}

// LegacyKeyFor returns the key that releases before one site value derived
// for site when ZULIP_SITE spelled a default port (chat.example.com_3a443/
// bridge), so that the stores can still find a checkpoint saved under it;
// "" when it is the same as KeyFor's, or Key is set.
func (c Config) LegacyKeyFor(site source.Site) string {
	c = c.withDefaults()
	if c.Key != "" || site.LegacyHost() == site.Host() || !nameRe.MatchString(c.Name) {
		return ""
	}
	key := escapeHost(site.LegacyHost()) + "/" + c.Name
	if !validKey(key) {
		return ""
	}
	return key
}

// DefaultKey derives a checkpoint key from a Zulip site and a bridge name:
// "<host>/<name>", with the site's host (lower case, no default port), e.g.
// "chat.example.com/bridge". Characters a key cannot hold are escaped as
// "_xx" (and '_' itself as "_5f"), so different sites never share a key.
func DefaultKey(site source.Site, name string) (string, error) {
	if !nameRe.MatchString(name) {
		return "", &envconfig.Error{Key: "BRIDGE_CHECKPOINT_NAME", Problem: fmt.Sprintf("%q must be 1 to 64 letters, digits, '-' or '_'", name), Example: "kafka-bridge"}
	}
	if site.IsZero() {
		return "", errors.New("checkpoint key: no Zulip site")
	}
	key := escapeHost(site.Host()) + "/" + name
	if !validKey(key) {
		return "", &envconfig.Error{Key: "BRIDGE_CHECKPOINT_KEY", Problem: fmt.Sprintf("must be set: the site %s gives the invalid key %q", site, key), Example: "chat.example.com/bridge"}
	}
	return key, nil
}

func escapeHost(host string) string {
	var b strings.Builder
	for _, c := range []byte(host) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return b.String()
}

// validKey applies the JetStream key-value rules, which are stricter than
// Kafka's, so that one key works with either store.
func validKey(k string) bool {
	return keyRe.MatchString(k) && !strings.HasPrefix(k, ".") && !strings.HasSuffix(k, ".") && !strings.Contains(k, "..")
}
