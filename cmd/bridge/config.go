package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/leader"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
	natssink "github.com/zulip-bridge/zulip-bridge/sink/nats"
	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/spool"
	"github.com/zulip-bridge/zulip-bridge/telemetry"
)

// config is the whole bridge configuration, parsed once from the
// environment; each package gets its own plain struct from it.
type config struct {
	Bridge     bridgeConfig
	Zulip      source.Config
	Mapping    mapping.Config
	Pipeline   pipeline.Config
	Checkpoint checkpoint.Config
	Spool      spool.Config
	Leader     leader.Config
	NATS       natssink.Config
	Kafka      kafkasink.Config
	Telemetry  telemetry.Config
}

// bridgeConfig is what belongs to the process rather than to a package.
type bridgeConfig struct {
	Sink             string `env:"BRIDGE_SINK" envDefault:"nats" example:"kafka" help:"nats or kafka"`
	StateDir         string `env:"BRIDGE_STATE_DIR" envDefault:"./data" example:"/var/lib/zulip-bridge" help:"checkpoint file (checkpoint.json) and the embedded NATS server's storage"`
	NATSEmbeddedAddr string `env:"BRIDGE_NATS_EMBEDDED_ADDR" envDefault:"127.0.0.1:4222" example:"0.0.0.0:4222" help:"listen address of the embedded NATS server, used only when BRIDGE_NATS_URL is empty"`
	HTTPAddr         string `env:"BRIDGE_HTTP_ADDR" envDefault:":8080" example:":9090" help:"/healthz, /readyz and /metrics; off turns them off (an empty value means the default)"`
	PProf            bool   `env:"BRIDGE_PPROF" envDefault:"false" example:"true" help:"true also serves net/http/pprof under /debug/pprof/ on BRIDGE_HTTP_ADDR, for profiling; it exposes the process's internals, so keep that address private"`
	LogLevel         string `env:"BRIDGE_LOG_LEVEL" envDefault:"info" example:"debug" help:"debug, info, warn or error"`
	LogFormat        string `env:"BRIDGE_LOG_FORMAT" envDefault:"json" example:"text" help:"json or text"`
}

const (
	sinkNATS  = "nats"
	sinkKafka = "kafka"
	// httpOff turns the HTTP endpoints off. An empty BRIDGE_HTTP_ADDR
	// cannot: the env library reads an empty value as "use the default".
	httpOff = "off"
)

// loadConfig parses and validates the environment. Every error names its
// variable and gives an example; none contains a secret.
func loadConfig(environ []string) (*config, error) {
	var c config
	if err := envconfig.Parse(&c, environ); err != nil {
		return nil, err
	}
	// ZULIP_CONFIG unset: $HOME/.zuliprc, as the official client.
	c.Zulip.DefaultConfigFile = source.HomeZuliprc(environ)
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *config) validate() error {
	// BRIDGE_SINK is read by mapping.Config too (CloudEvents headers follow
	// the sink's protocol binding), whose Validate reports a bad value.
	var errs []error
	if _, err := parseLevel(c.Bridge.LogLevel); err != nil {
		errs = append(errs, err)
	}
	switch c.Bridge.LogFormat {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("BRIDGE_LOG_FORMAT: unknown format %q: want json or text (example: BRIDGE_LOG_FORMAT=text)", c.Bridge.LogFormat))
	}
	if c.Bridge.HTTPAddr != httpOff {
		if _, _, err := net.SplitHostPort(c.Bridge.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("BRIDGE_HTTP_ADDR: %q is not host:port or off (example: BRIDGE_HTTP_ADDR=:8080)", c.Bridge.HTTPAddr))
		}
	}
	if c.Bridge.StateDir == "" {
		errs = append(errs, errors.New("BRIDGE_STATE_DIR: must not be empty (example: BRIDGE_STATE_DIR=/var/lib/zulip-bridge)"))
	}
	if err := c.Zulip.Resolve(); err != nil {
		errs = append(errs, err)
	} else if err := c.Zulip.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Mapping.Validate(), c.Pipeline.Validate(), c.Checkpoint.Validate(), c.Spool.Validate(), c.Telemetry.Validate())
	switch c.Bridge.Sink {
	case sinkNATS:
		if c.NATS.URL == "" {
			if _, _, err := net.SplitHostPort(c.Bridge.NATSEmbeddedAddr); err != nil {
				errs = append(errs, fmt.Errorf("BRIDGE_NATS_EMBEDDED_ADDR: %q is not host:port (example: BRIDGE_NATS_EMBEDDED_ADDR=127.0.0.1:4222)", c.Bridge.NATSEmbeddedAddr))
			}
		}
		errs = append(errs, c.NATS.Validate())
		if c.Checkpoint.Kind == checkpoint.KindKafka {
			errs = append(errs, errors.New("BRIDGE_CHECKPOINT: kafka needs BRIDGE_SINK=kafka (example: BRIDGE_CHECKPOINT=nats-kv)"))
		}
	case sinkKafka:
		errs = append(errs, c.Kafka.Validate())
		if c.Checkpoint.Kind == checkpoint.KindNATSKV {
			errs = append(errs, errors.New("BRIDGE_CHECKPOINT: nats-kv needs BRIDGE_SINK=nats (example: BRIDGE_CHECKPOINT=kafka)"))
		}
	}
	errs = append(errs, c.validateStandby())
	return errors.Join(errs...)
}

// validateStandby refuses the combinations a standby cannot make safe:
// state that lives in one pod cannot be taken over by another.
func (c *config) validateStandby() error {
	if err := c.Leader.Validate(); err != nil || !c.Leader.Enabled() {
		return err
	}
	election := c.Leader.Election
	var errs []error
	if c.Checkpoint.Kind == checkpoint.KindFile {
		example := "nats-kv"
		if c.Bridge.Sink == sinkKafka {
			example = "kafka"
		}
		errs = append(errs, &envconfig.Error{Key: "BRIDGE_CHECKPOINT", Example: example,
			Problem: fmt.Sprintf("file, with BRIDGE_LEADER_ELECTION=%s: a standby cannot read another pod's file; keep the checkpoint in the broker", election)})
	}
	if c.Bridge.Sink == sinkNATS && c.NATS.URL == "" {
		errs = append(errs, &envconfig.Error{Key: "BRIDGE_NATS_URL", Example: "nats://nats:4222",
			Problem: fmt.Sprintf("unset (the embedded NATS server), with BRIDGE_LEADER_ELECTION=%s: each replica would publish to a broker of its own", election)})
	}
	if election == leader.NATSKV && c.Bridge.Sink != sinkNATS {
		errs = append(errs, &envconfig.Error{Key: "BRIDGE_LEADER_ELECTION", Example: leader.Lease,
			Problem: fmt.Sprintf("nats-kv needs BRIDGE_SINK=nats, not %s", c.Bridge.Sink)})
	}
	if c.Spool.Mode == spool.ModeOn {
		errs = append(errs, &envconfig.Error{Key: "BRIDGE_SPOOL", Example: spool.ModeOff,
			Problem: fmt.Sprintf("on, with BRIDGE_LEADER_ELECTION=%s: the spool holds acknowledged events in one pod, which a standby cannot forward", election)})
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return 0, fmt.Errorf("BRIDGE_LOG_LEVEL: unknown level %q: want debug, info, warn or error (example: BRIDGE_LOG_LEVEL=debug)", s)
	}
	return l, nil
}

// vars lists every variable the bridge reads, for `bridge env` and the
// README table.
func vars() []envconfig.Var { return envconfig.Vars(&config{}) }

// spoolOn resolves BRIDGE_SPOOL for this configuration.
func (c *config) spoolOn() bool {
	if c.Leader.Enabled() {
		return false // refused when asked for: see validateStandby
	}
	return c.Spool.Enabled(c.Checkpoint.Kind == checkpoint.KindFile, c.Bridge.Sink == sinkNATS && c.NATS.URL == "")
}

// spoolDir is where the spool file is: BRIDGE_SPOOL_DIR, else the state
// directory.
func (c *config) spoolDir() string {
	if c.Spool.Dir != "" {
		return c.Spool.Dir
	}
	return c.Bridge.StateDir
}
