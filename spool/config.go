package spool

import (
	"errors"
	"fmt"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// Values of Config.Mode (BRIDGE_SPOOL).
const (
	ModeOn  = "on"
	ModeOff = "off"
)

// MinMaxBytes is the smallest Config.MaxBytes: a few chunks of a Zulip
// response (the pipeline's chunks are at most 4 MiB).
const MinMaxBytes int64 = 16 << 20

// Config is the spool's part of the bridge configuration. Like every
// Config of the bridge, its zero value means the documented defaults.
type Config struct {
	// Mode is "on", "off", or empty for the default: on where the state
	// directory is trusted to be durable and the broker is not already
	// local, i.e. with the file checkpoint and an external NATS server or
	// Kafka; off with the nats-kv and kafka checkpoints (the stateless mode
	// a standby needs) and with the embedded NATS server (its stream is in
	// the state directory already). See Enabled.
	Mode string `env:"BRIDGE_SPOOL" example:"on" help:"on or off: acknowledge events to Zulip once durable in a local spool (spool.db) and forward them to the broker from there, so that a broker outage longer than a Zulip queue's lifespan loses nothing; unset = on with BRIDGE_CHECKPOINT=file and an external broker, off otherwise"`
	// Dir holds the spool file, spool.db. Empty means the state directory
	// (BRIDGE_STATE_DIR).
	Dir string `env:"BRIDGE_SPOOL_DIR" example:"/var/lib/zulip-bridge" help:"directory of the spool file (spool.db); unset = BRIDGE_STATE_DIR"`
	// MaxBytes bounds the spool. When it is full the bridge stops
	// acknowledging Zulip, whose queue then holds the rest (for as long as
	// the queue lives). Zero means 1 GiB; at least MinMaxBytes.
	MaxBytes int64 `env:"BRIDGE_SPOOL_MAX_BYTES" envDefault:"1073741824" example:"10737418240" help:"size limit of the spool in bytes, at least 16777216; when full, nothing more is acknowledged to Zulip until the broker takes events"`
}

// Validate reports every invalid field, each naming its variable and giving
// a valid example.
func (c Config) Validate() error {
	var errs []error
	switch c.Mode {
	case "", ModeOn, ModeOff:
	default:
		errs = append(errs, &envconfig.Error{Key: "BRIDGE_SPOOL", Problem: fmt.Sprintf("unknown value %q: want on or off, or unset for the default", c.Mode), Example: "on"})
	}
	if c.MaxBytes != 0 && c.MaxBytes < MinMaxBytes {
		errs = append(errs, &envconfig.Error{Key: "BRIDGE_SPOOL_MAX_BYTES", Problem: fmt.Sprintf("%d is below the minimum of %d", c.MaxBytes, MinMaxBytes), Example: "1073741824"})
	}
	return errors.Join(errs...)
}

// Enabled resolves Mode: whether the bridge runs with a spool, given
// whether its checkpoint is the file store and whether its broker is the
// embedded NATS server.
func (c Config) Enabled(fileCheckpoint, embeddedBroker bool) bool {
	switch c.Mode {
	case ModeOn:
		return true
	case ModeOff:
		return false
	}
	return fileCheckpoint && !embeddedBroker
}
