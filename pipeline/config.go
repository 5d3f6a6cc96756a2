package pipeline

import (
	"errors"
	"fmt"
	"time"
)

// Config is the pipeline's part of the bridge configuration.
type Config struct {
	// PublishHeartbeats publishes Zulip's heartbeat events. They are always
	// acknowledged; by default they are not published.
	PublishHeartbeats bool `env:"BRIDGE_PUBLISH_HEARTBEATS" envDefault:"false"`
	// PublishInitialState publishes the register response (the initial
	// state) as a <prefix>.bridge.state control event on every registration.
	PublishInitialState bool `env:"BRIDGE_PUBLISH_INITIAL_STATE" envDefault:"false"`
	// ShutdownTimeout bounds the graceful drain on SIGTERM/SIGINT: finishing
	// and confirming the batch in flight and writing its checkpoint.
	ShutdownTimeout time.Duration `env:"BRIDGE_SHUTDOWN_TIMEOUT" envDefault:"30s"`
	// BackfillPageSize is how many messages one GET /messages asks for when
	// backfilling after a queue loss (the server caps it at 5000).
	BackfillPageSize int `env:"BRIDGE_BACKFILL_PAGE_SIZE" envDefault:"1000"`
	// PublishBatch is the most messages handed to the sink in one Publish;
	// a larger Zulip batch is published in several, then checkpointed once.
	PublishBatch int `env:"BRIDGE_PUBLISH_BATCH" envDefault:"1000"`
	// PublishTimeout bounds one attempt to publish a chunk, or to write a
	// checkpoint: a broker that neither confirms nor fails is retried like
	// one that fails, instead of holding the loop forever.
	PublishTimeout time.Duration `env:"BRIDGE_PUBLISH_TIMEOUT" envDefault:"30s" example:"30s" help:"bound on one publish or checkpoint attempt; it is retried after"`
	// StallTimeout is how long the loop may go without progress (a poll
	// returning, a publish attempt, a retry) before /healthz reports it
	// wedged. It must exceed the long-poll timeout plus the longest backoff.
	StallTimeout time.Duration `env:"BRIDGE_STALL_TIMEOUT" envDefault:"5m"`
}

// Validate reports the first invalid field, naming its variable.
func (c Config) Validate() error {
	var errs []error
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("BRIDGE_SHUTDOWN_TIMEOUT: must be positive (example: BRIDGE_SHUTDOWN_TIMEOUT=30s)"))
	}
	if c.BackfillPageSize < 1 || c.BackfillPageSize > 5000 {
		errs = append(errs, fmt.Errorf("BRIDGE_BACKFILL_PAGE_SIZE: %d is outside 1..5000, the range Zulip serves (example: BRIDGE_BACKFILL_PAGE_SIZE=1000)", c.BackfillPageSize))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, fmt.Errorf("BRIDGE_PUBLISH_TIMEOUT: must be positive (example: BRIDGE_PUBLISH_TIMEOUT=30s)"))
	}
	if c.PublishBatch < 1 {
		errs = append(errs, fmt.Errorf("BRIDGE_PUBLISH_BATCH: %d must be at least 1 (example: BRIDGE_PUBLISH_BATCH=1000)", c.PublishBatch))
	}
	if c.StallTimeout < 2*time.Minute {
		errs = append(errs, fmt.Errorf("BRIDGE_STALL_TIMEOUT: %s is shorter than a long-poll can legitimately take (example: BRIDGE_STALL_TIMEOUT=5m)", c.StallTimeout))
	}
	return errors.Join(errs...)
}

// withDefaults fills zero fields, so a Config built in code (tests) works.
func (c Config) withDefaults() Config {
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.BackfillPageSize <= 0 {
		c.BackfillPageSize = 1000
	}
	if c.PublishBatch <= 0 {
		c.PublishBatch = 1000
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 5 * time.Minute
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 30 * time.Second
	}
	return c
}
