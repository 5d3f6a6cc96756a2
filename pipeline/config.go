package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// Config is the pipeline's part of the bridge configuration. Like every
// Config of the bridge, its zero value means the documented defaults, each
// written on its field.
type Config struct {
	// PublishHeartbeats publishes Zulip's heartbeat events. They are always
	// acknowledged; by default they are not published.
	PublishHeartbeats bool `env:"BRIDGE_PUBLISH_HEARTBEATS" envDefault:"false" example:"true" help:"publish Zulip's heartbeat events (they are acknowledged either way)"`
	// PublishInitialState publishes the register response (the initial
	// state) as a <prefix>.bridge.state control event on every registration.
	PublishInitialState bool `env:"BRIDGE_PUBLISH_INITIAL_STATE" envDefault:"false" example:"true" help:"publish the register response as <prefix>.bridge.state on every registration"`
	// ShutdownTimeout bounds the graceful drain on SIGTERM/SIGINT: finishing
	// and confirming the batch in flight and writing its checkpoint. Zero
	// means 30s.
	ShutdownTimeout time.Duration `env:"BRIDGE_SHUTDOWN_TIMEOUT" envDefault:"30s" example:"30s" help:"bound on the graceful drain after SIGTERM/SIGINT"`
	// BackfillPageSize is how many messages one GET /messages asks for when
	// backfilling after a queue loss (the server caps it at 5000). Zero
	// means 1000.
	BackfillPageSize int `env:"BRIDGE_BACKFILL_PAGE_SIZE" envDefault:"1000" example:"1000" help:"messages per GET /messages page when backfilling, 1-5000"`
	// PublishBatch is the most events in one chunk of a GET /events
	// response: each chunk is handed to the sink in one Publish and
	// checkpointed once confirmed, while the next one is read. Zero means
	// 1000.
	PublishBatch int `env:"BRIDGE_PUBLISH_BATCH" envDefault:"1000" example:"1000" help:"most events per chunk of a Zulip response: each chunk is published in one call and checkpointed once confirmed, while the next is read"`
	// PublishTimeout bounds one attempt to publish a chunk, or to write a
	// checkpoint: a broker that neither confirms nor fails is retried like
	// one that fails, instead of holding the loop forever. Zero means 30s.
	PublishTimeout time.Duration `env:"BRIDGE_PUBLISH_TIMEOUT" envDefault:"30s" example:"30s" help:"bound on one publish or checkpoint attempt; a broker that neither confirms nor fails is retried after it (what it stored meanwhile is read back, not published twice)"`
	// StallTimeout is how long the loop may go without progress (a poll
	// returning, a publish attempt, a retry) before /healthz reports it
	// wedged. It must exceed the long-poll timeout plus the longest backoff.
	// Zero means 5m.
	StallTimeout time.Duration `env:"BRIDGE_STALL_TIMEOUT" envDefault:"5m" example:"5m" help:"/healthz fails after this long without progress of the poll loop; at least 2m"`
}

// Validate reports every invalid field, each naming its variable and giving
// a valid example. Zero fields mean their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(key, example, format string, args ...any) {
		errs = append(errs, &envconfig.Error{Key: key, Problem: fmt.Sprintf(format, args...), Example: example})
	}
	if c.ShutdownTimeout < 0 {
		bad("BRIDGE_SHUTDOWN_TIMEOUT", "30s", "%v is negative", c.ShutdownTimeout)
	}
	if c.BackfillPageSize < 1 || c.BackfillPageSize > 5000 {
		bad("BRIDGE_BACKFILL_PAGE_SIZE", "1000", "%d is outside 1..5000, the range Zulip serves", c.BackfillPageSize)
	}
	if c.PublishTimeout < 0 {
		bad("BRIDGE_PUBLISH_TIMEOUT", "30s", "%v is negative", c.PublishTimeout)
	}
	if c.PublishBatch < 1 {
		bad("BRIDGE_PUBLISH_BATCH", "1000", "%d must be at least 1", c.PublishBatch)
	}
	if c.StallTimeout < 2*time.Minute {
		bad("BRIDGE_STALL_TIMEOUT", "5m", "%s is shorter than a long-poll can legitimately take", c.StallTimeout)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, 30*time.Second)
	c.BackfillPageSize = cmp.Or(c.BackfillPageSize, 1000)
	c.PublishBatch = cmp.Or(c.PublishBatch, 1000)
	c.StallTimeout = cmp.Or(c.StallTimeout, 5*time.Minute)
	c.PublishTimeout = cmp.Or(c.PublishTimeout, 30*time.Second)
	return c
}
