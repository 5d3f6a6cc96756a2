package mapping

import (
	"errors"
	"fmt"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// CloudEvents modes (BRIDGE_CLOUDEVENTS).
const (
	CloudEventsOff        = "off"
	CloudEventsBinary     = "binary"
	CloudEventsStructured = "structured"
)

// Sinks whose CloudEvents protocol binding the headers follow (BRIDGE_SINK).
const (
	SinkNATS  = "nats"
	SinkKafka = "kafka"
)

// Config is the mapping's configuration. The zero value is the default:
// prefix "zulip", the default names of docs/names.md, no CloudEvents.
type Config struct {
	// SubjectPrefix is the first token (or tokens) of every subject and
	// topic. Default "zulip". Letters, digits, '_' and '-', with '.'
	// between tokens, so that it is valid for NATS and Kafka alike.
	SubjectPrefix string `env:"BRIDGE_SUBJECT_PREFIX" envDefault:"zulip" example:"acme.zulip" help:"first token of every NATS subject and Kafka topic"`
	// SubjectTemplate overrides the NATS subject; empty means
	// DefaultSubjectTemplate. Syntax in the package README.
	SubjectTemplate string `env:"BRIDGE_SUBJECT_TEMPLATE" example:"{prefix}.{type}.{op}.{scope}.{topic}" help:"NATS subject template; unset = {prefix}.{type}.{op}.{scope} (templates)"`
	// TopicTemplate overrides the Kafka topic; empty means
	// DefaultTopicTemplate.
	TopicTemplate string `env:"BRIDGE_TOPIC_TEMPLATE" example:"{prefix}.{type}.{op}" help:"Kafka topic template; unset = {prefix}.{type}"`
	// CloudEvents is "off" (default), "binary" (attributes in headers,
	// payload unchanged) or "structured" (payload wrapped in a CloudEvents
	// JSON envelope).
	CloudEvents string `env:"BRIDGE_CLOUDEVENTS" envDefault:"off" example:"binary" help:"off, binary or structured (CloudEvents)"`
	// Sink is the broker the messages go to, "nats" (default) or "kafka".
	// It only matters with CloudEvents on: the two protocol bindings name
	// the attribute headers differently (ce-id for NATS, ce_id for Kafka),
	// so Message.Headers is built for the one sink that will publish it.
	Sink string `env:"BRIDGE_SINK" envDefault:"nats" example:"kafka" help:"nats or kafka"`
}

// withDefaults fills in the documented defaults of empty fields.
func (c Config) withDefaults() Config {
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "zulip"
	}
	if c.CloudEvents == "" {
		c.CloudEvents = CloudEventsOff
	}
	if c.Sink == "" {
		c.Sink = SinkNATS
	}
	return c
}

// Validate reports every problem of the configuration, each naming its
// variable and giving a valid example.
func (c Config) Validate() error {
	_, _, err := c.compile()
	return err
}

// compile validates the configuration and parses its templates.
func (c Config) compile() (subject, topic *template, err error) {
	c = c.withDefaults()
	var errs []error
	if err := checkPrefix(c.SubjectPrefix); err != nil {
		errs = append(errs, configError("BRIDGE_SUBJECT_PREFIX", fmt.Sprintf("%q: %v", c.SubjectPrefix, err), "acme.zulip"))
	}
	subjectSrc := c.SubjectTemplate
	if subjectSrc == "" {
		subjectSrc = DefaultSubjectTemplate
	}
	subject, err = parseTemplate(subjectSrc, natsName)
	if err != nil {
		errs = append(errs, configError("BRIDGE_SUBJECT_TEMPLATE", fmt.Sprintf("%q: %v", c.SubjectTemplate, err), exampleSubjectTemplate))
	}
	topicSrc := c.TopicTemplate
	if topicSrc == "" {
		topicSrc = DefaultTopicTemplate
	}
	topic, err = parseTemplate(topicSrc, kafkaName)
	if err != nil {
		errs = append(errs, configError("BRIDGE_TOPIC_TEMPLATE", fmt.Sprintf("%q: %v", c.TopicTemplate, err), exampleTopicTemplate))
	}
	switch c.CloudEvents {
	case CloudEventsOff, CloudEventsBinary, CloudEventsStructured:
	default:
		errs = append(errs, configError("BRIDGE_CLOUDEVENTS", fmt.Sprintf("unknown mode %q: want off, binary or structured", c.CloudEvents), CloudEventsBinary))
	}
	switch c.Sink {
	case SinkNATS, SinkKafka:
	default:
		errs = append(errs, configError("BRIDGE_SINK", fmt.Sprintf("unknown sink %q: want nats or kafka", c.Sink), SinkNATS))
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return subject, topic, nil
}

// configError is a configuration error in the one format of the bridge:
// VAR: problem (example: VAR=value).
func configError(key, problem, example string) error {
	return &envconfig.Error{Key: key, Problem: problem, Example: example}
}

// checkPrefix accepts dot-separated tokens of letters, digits, '_' and
// '-': the characters both brokers accept and no NATS wildcard.
func checkPrefix(p string) error {
	if len(p) > 100 {
		return fmt.Errorf("%d characters, the limit is 100", len(p))
	}
	tokenLen := 0
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '.':
			if tokenLen == 0 {
				return errors.New("empty token")
			}
			tokenLen = 0
		case isTokenByte(c):
			tokenLen++
		default:
			return fmt.Errorf("character %q is not allowed: use letters, digits, '_', '-' and '.' between tokens", c)
		}
	}
	if tokenLen == 0 {
		return errors.New("empty token")
	}
	return nil
}

// isTokenByte reports whether c may appear in an event type, an op, a
// prefix token or a control kind.
func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
