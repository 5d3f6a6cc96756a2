package kafka

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// SASL mechanisms accepted in BRIDGE_KAFKA_SASL_MECHANISM.
const (
	MechanismPlain       = "plain"
	MechanismSCRAMSHA256 = "scram-sha-256"
	MechanismSCRAMSHA512 = "scram-sha-512"
)

// Compression codecs accepted in BRIDGE_KAFKA_COMPRESSION.
const (
	CompressionNone   = "none"
	CompressionGzip   = "gzip"
	CompressionSnappy = "snappy"
	CompressionLz4    = "lz4"
	CompressionZstd   = "zstd"
)

// Config is the Kafka sink's configuration. Like every Config of the
// bridge, its zero value means the documented defaults, each written on its
// field (as the envDefault tag); only Brokers must be given.
type Config struct {
	// Brokers are the seed brokers, host:port each. Required.
	Brokers []string `env:"BRIDGE_KAFKA_BROKERS" envSeparator:"," example:"kafka-0:9092,kafka-1:9092" help:"comma list of seed brokers, host:port; required with BRIDGE_SINK=kafka"`
	// TopicPrefix says which topics this bridge owns: every topic whose
	// name starts with it (docs/delivery.md: one bridge writes a given set of
	// topics). After a crash the bridge reads back the owned topics, so it
	// must cover what the topic template renders; Publish refuses a topic
	// outside it (ErrTopicNotOwned). Empty means DefaultTopicPrefix, which
	// fits the default template; the wiring may derive it from
	// BRIDGE_SUBJECT_PREFIX instead.
	TopicPrefix string `env:"BRIDGE_KAFKA_TOPIC_PREFIX" example:"zulip." help:"prefix of every topic this bridge owns and no other bridge writes; unset = <BRIDGE_SUBJECT_PREFIX>."`
	// ClientID names the bridge in broker logs and quotas.
	ClientID string `env:"BRIDGE_KAFKA_CLIENT_ID" envDefault:"zulip-bridge" example:"zulip-bridge" help:"client id sent to the brokers"`

	// SASLMechanism is empty for no SASL, or one of plain, scram-sha-256,
	// scram-sha-512.
	SASLMechanism string `env:"BRIDGE_KAFKA_SASL_MECHANISM" example:"scram-sha-512" help:"plain, scram-sha-256 or scram-sha-512; unset = no SASL"`
	Username      string `env:"BRIDGE_KAFKA_USERNAME" example:"bridge" help:"SASL user name"`
	Password      string `env:"BRIDGE_KAFKA_PASSWORD" secret:"true" help:"SASL password (secret)"`
	// PasswordFile holds the content of the file named by
	// BRIDGE_KAFKA_PASSWORD_FILE (a Kubernetes secret mount); one trailing
	// newline is ignored. Set either it or Password.
	PasswordFile string `env:"BRIDGE_KAFKA_PASSWORD_FILE,file" secret:"true" example:"/var/run/secrets/kafka/password" help:"file holding the SASL password"`

	// TLS turns TLS on. Setting TLSCA or TLSCert turns it on as well.
	TLS bool `env:"BRIDGE_KAFKA_TLS" envDefault:"false" example:"true" help:"connect with TLS (also on when BRIDGE_KAFKA_TLS_CA or BRIDGE_KAFKA_TLS_CERT is set)"`
	// TLSCA is a PEM file of CAs to trust instead of the system pool.
	TLSCA string `env:"BRIDGE_KAFKA_TLS_CA" example:"/etc/kafka/ca.pem" help:"PEM CA certificates to trust instead of the system pool"`
	// TLSCert and TLSKey are the PEM client certificate and key, for
	// brokers that authenticate clients by certificate. Set both or neither.
	TLSCert string `env:"BRIDGE_KAFKA_TLS_CERT" example:"/etc/kafka/client.pem" help:"PEM client certificate (with BRIDGE_KAFKA_TLS_KEY)"`
	TLSKey  string `env:"BRIDGE_KAFKA_TLS_KEY" example:"/etc/kafka/client-key.pem" help:"PEM client key"`
	// TLSServerName overrides the name checked in the broker certificates;
	// empty means the host of each broker address.
	TLSServerName string `env:"BRIDGE_KAFKA_TLS_SERVER_NAME" example:"kafka.internal" help:"name to verify in broker certificates; unset = each broker's host"`
	// TLSInsecure skips verification of the broker certificates. For tests
	// only: it lets anyone on the path read and alter the stream.
	TLSInsecure bool `env:"BRIDGE_KAFKA_TLS_INSECURE" envDefault:"false" example:"false" help:"do not verify broker certificates (tests only)"`

	// Compression is the codec for record batches.
	Compression string `env:"BRIDGE_KAFKA_COMPRESSION" envDefault:"none" example:"lz4" help:"none, gzip, snappy, lz4 or zstd"`
	// BatchSize is the most records sent to one partition in one produce
	// request. A partition's share of a bridge batch larger than this (or
	// than BatchBytes) goes in several requests, one after the other; the
	// partitions go at once.
	BatchSize int `env:"BRIDGE_KAFKA_BATCH_SIZE" envDefault:"1000" example:"1000" help:"most records per produce request and partition"`
	// BatchBytes is the most bytes of one produce request per partition;
	// it is also the largest record accepted. Keep it at or below the
	// brokers' message.max.bytes (1048588 by default).
	BatchBytes int64 `env:"BRIDGE_KAFKA_BATCH_BYTES" envDefault:"1048576" example:"1048576" help:"most bytes per produce request and partition"`
	// BatchTimeout is accepted for compatibility and not used: the sink
	// gets a whole batch from the bridge and sends it at once, so there
	// are no more records to wait for.
	BatchTimeout time.Duration `env:"BRIDGE_KAFKA_BATCH_TIMEOUT" envDefault:"5ms" example:"5ms" help:"not used (each batch is sent at once); accepted for compatibility"`
	// WriteTimeout bounds one produce request, including the wait for all
	// in-sync replicas.
	WriteTimeout time.Duration `env:"BRIDGE_KAFKA_WRITE_TIMEOUT" envDefault:"10s" example:"10s" help:"bound on one produce request"`
	// DialTimeout bounds connecting to a broker, TLS and SASL included.
	DialTimeout time.Duration `env:"BRIDGE_KAFKA_DIAL_TIMEOUT" envDefault:"5s" example:"5s" help:"bound on connecting to a broker, TLS and SASL included"`

	// CreateTopics makes the sink create a missing topic, with Partitions
	// and ReplicationFactor, before its first write. When false a missing
	// topic fails the publish with ErrUnknownTopic; the brokers' automatic
	// topic creation is never used, because it would pick the partition
	// count for us.
	CreateTopics bool `env:"BRIDGE_KAFKA_CREATE_TOPICS" envDefault:"false" example:"true" help:"create missing topics; when false a missing topic fails the publish (broker auto-creation is never used)"`
	// Partitions and ReplicationFactor for created topics; -1 (or 0) means
	// the brokers' default (num.partitions, default.replication.factor).
	Partitions        int `env:"BRIDGE_KAFKA_PARTITIONS" envDefault:"-1" example:"6" help:"partitions of created topics; -1 = broker default"`
	ReplicationFactor int `env:"BRIDGE_KAFKA_REPLICATION_FACTOR" envDefault:"-1" example:"3" help:"replication factor of created topics; -1 = broker default"`

	// ReadBackFetchBytes is the most bytes asked for in one fetch while
	// reading back, which bounds the read-back's memory per partition
	// (a single larger record is still returned whole).
	ReadBackFetchBytes int `env:"BRIDGE_KAFKA_READBACK_FETCH_BYTES" envDefault:"1048576" example:"1048576" help:"most bytes per fetch while reading back after a crash"`
	// ReadBackProgress is how often a long read-back logs its progress.
	ReadBackProgress time.Duration `env:"BRIDGE_KAFKA_READBACK_PROGRESS" envDefault:"10s" example:"10s" help:"log interval of a long read-back"`
}

// Defaults of the fields New fills in when they are zero; they match the
// envDefault tags.
const (
	DefaultClientID           = "zulip-bridge"
	DefaultTopicPrefix        = "zulip."
	DefaultBatchSize          = 1000
	DefaultBatchBytes         = 1 << 20
	DefaultBatchTimeout       = 5 * time.Millisecond
	DefaultWriteTimeout       = 10 * time.Second
	DefaultDialTimeout        = 5 * time.Second
	DefaultReadBackFetchBytes = 1 << 20
	DefaultReadBackProgress   = 10 * time.Second
)

// withDefaults returns c with every zero field that has a default set to it.
func (c Config) withDefaults() Config {
	c.Partitions = cmp.Or(c.Partitions, -1)
	c.ReplicationFactor = cmp.Or(c.ReplicationFactor, -1)
	c.ClientID = cmp.Or(c.ClientID, DefaultClientID)
	c.TopicPrefix = cmp.Or(c.TopicPrefix, DefaultTopicPrefix)
	c.Compression = cmp.Or(c.Compression, CompressionNone)
	c.BatchSize = cmp.Or(c.BatchSize, DefaultBatchSize)
	c.BatchBytes = cmp.Or(c.BatchBytes, DefaultBatchBytes)
	c.BatchTimeout = cmp.Or(c.BatchTimeout, DefaultBatchTimeout)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.DialTimeout = cmp.Or(c.DialTimeout, DefaultDialTimeout)
	c.ReadBackFetchBytes = cmp.Or(c.ReadBackFetchBytes, DefaultReadBackFetchBytes)
	c.ReadBackProgress = cmp.Or(c.ReadBackProgress, DefaultReadBackProgress)
	return c
}

// Validate reports every problem with c at once, each naming its variable,
// what is wrong and a valid example. Zero values that have a default are
// accepted.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, problem, example string) {
		errs = append(errs, &envconfig.Error{Key: key, Problem: problem, Example: example})
	}

	if len(c.Brokers) == 0 {
		bad("BRIDGE_KAFKA_BROKERS", "is required when BRIDGE_SINK=kafka", "kafka-0:9092,kafka-1:9092")
	}
	for _, b := range c.Brokers {
		if err := checkBroker(b); err != nil {
			bad("BRIDGE_KAFKA_BROKERS", fmt.Sprintf("%q is not a broker address: %v", b, err), "kafka-0:9092,kafka-1:9092")
		}
	}

	if c.TopicPrefix != "" {
		if problem := topicProblem(c.TopicPrefix); problem != "" {
			bad("BRIDGE_KAFKA_TOPIC_PREFIX", "not the start of a valid topic name: "+problem, DefaultTopicPrefix)
		}
	}

	password := c.Password != "" || c.PasswordFile != ""
	switch strings.ToLower(c.SASLMechanism) {
	case "":
		if c.Username != "" || password {
			bad("BRIDGE_KAFKA_SASL_MECHANISM", "is required when a Kafka user name or password is set", MechanismSCRAMSHA512)
		}
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		if c.Username == "" {
			bad("BRIDGE_KAFKA_USERNAME", "is required with BRIDGE_KAFKA_SASL_MECHANISM="+c.SASLMechanism, "bridge")
		}
		if !password {
			bad("BRIDGE_KAFKA_PASSWORD", "is required with BRIDGE_KAFKA_SASL_MECHANISM="+c.SASLMechanism, "BRIDGE_KAFKA_PASSWORD_FILE=/var/run/secrets/kafka/password")
		}
	default:
		bad("BRIDGE_KAFKA_SASL_MECHANISM", fmt.Sprintf("unknown mechanism %q, want plain, scram-sha-256 or scram-sha-512", c.SASLMechanism), MechanismSCRAMSHA512)
	}
	if c.Password != "" && c.PasswordFile != "" {
		bad("BRIDGE_KAFKA_PASSWORD_FILE", "is set together with BRIDGE_KAFKA_PASSWORD; set only one", "/var/run/secrets/kafka/password")
	}

	switch {
	case c.TLSCert == "" && c.TLSKey != "":
		bad("BRIDGE_KAFKA_TLS_CERT", "is required with BRIDGE_KAFKA_TLS_KEY", "/etc/kafka/client.pem")
	case c.TLSCert != "" && c.TLSKey == "":
		bad("BRIDGE_KAFKA_TLS_KEY", "is required with BRIDGE_KAFKA_TLS_CERT", "/etc/kafka/client-key.pem")
	case c.tlsEnabled():
		// Like every Config of the bridge, Validate reads the files it
		// names, so that a missing one is a configuration error.
		if _, err := tlsConfig(c); err != nil {
			errs = append(errs, err)
		}
	}

	switch strings.ToLower(c.Compression) {
	case "", CompressionNone, CompressionGzip, CompressionSnappy, CompressionLz4, CompressionZstd:
	default:
		bad("BRIDGE_KAFKA_COMPRESSION", fmt.Sprintf("unknown codec %q, want none, gzip, snappy, lz4 or zstd", c.Compression), CompressionLz4)
	}

	if c.BatchSize < 0 {
		bad("BRIDGE_KAFKA_BATCH_SIZE", fmt.Sprintf("%d is negative", c.BatchSize), "1000")
	}
	if c.BatchBytes < 0 || c.BatchBytes > maxInt32 {
		bad("BRIDGE_KAFKA_BATCH_BYTES", fmt.Sprintf("%d is not between 1 and %d", c.BatchBytes, maxInt32), "1048576")
	}
	if c.ReadBackFetchBytes < 0 || int64(c.ReadBackFetchBytes) > maxInt32 {
		bad("BRIDGE_KAFKA_READBACK_FETCH_BYTES", fmt.Sprintf("%d is not between 1 and %d", c.ReadBackFetchBytes, maxInt32), "1048576")
	}
	durations := []struct {
		key, example string
		d            time.Duration
	}{
		{"BRIDGE_KAFKA_BATCH_TIMEOUT", "5ms", c.BatchTimeout},
		{"BRIDGE_KAFKA_WRITE_TIMEOUT", "10s", c.WriteTimeout},
		{"BRIDGE_KAFKA_DIAL_TIMEOUT", "5s", c.DialTimeout},
		{"BRIDGE_KAFKA_READBACK_PROGRESS", "10s", c.ReadBackProgress},
	}
	for _, d := range durations {
		if d.d < 0 {
			bad(d.key, fmt.Sprintf("%v is negative", d.d), d.example)
		}
	}
	if c.WriteTimeout > 0 && c.WriteTimeout < time.Millisecond {
		bad("BRIDGE_KAFKA_WRITE_TIMEOUT", fmt.Sprintf("%v is shorter than the 1ms the protocol can express", c.WriteTimeout), "10s")
	}

	if c.CreateTopics {
		if c.Partitions < -1 || c.Partitions > maxInt32 {
			bad("BRIDGE_KAFKA_PARTITIONS", fmt.Sprintf("%d is not a partition count (-1 for the broker default, or 1 and more)", c.Partitions), "6")
		}
		if c.ReplicationFactor < -1 || c.ReplicationFactor > 32767 {
			bad("BRIDGE_KAFKA_REPLICATION_FACTOR", fmt.Sprintf("%d is not a replication factor (-1 for the broker default, or 1 to 32767)", c.ReplicationFactor), "3")
		}
	}
	return errors.Join(errs...)
}

const maxInt32 = 1<<31 - 1

func checkBroker(addr string) error {
	host, port, err := net.SplitHostPort(strings.TrimSpace(addr))
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "" {
		return errors.New("empty host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not between 1 and 65535", port)
	}
	return nil
}

// password returns the SASL password from whichever variable holds it.
func (c Config) password() string {
	if c.Password != "" {
		return c.Password
	}
	// Editors and `echo > file` leave a newline that is not part of the
	// secret.
	p := strings.TrimSuffix(c.PasswordFile, "\n")
	return strings.TrimSuffix(p, "\r")
}

func (c Config) tlsEnabled() bool {
	return c.TLS || c.TLSCA != "" || c.TLSCert != ""
}

// LogValue lets a Config be logged without its secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("brokers", c.Brokers),
		slog.String("topic_prefix", c.TopicPrefix),
		slog.String("sasl_mechanism", c.SASLMechanism),
		slog.String("username", c.Username),
		slog.Bool("password_set", c.Password != "" || c.PasswordFile != ""),
		slog.Bool("tls", c.tlsEnabled()),
		slog.String("compression", c.Compression),
		slog.Int("batch_size", c.BatchSize),
		slog.Int64("batch_bytes", c.BatchBytes),
		slog.Bool("create_topics", c.CreateTopics),
	)
}
