package pipeline

import (
	"context"
	"time"

	"github.com/zulip-bridge/zulip-bridge/mapping"
)

// Observer receives the pipeline's measurements; telemetry turns them into
// metrics. Every field is optional.
type Observer struct {
	// OnBatch is called when a chunk of a polled batch (at most
	// Config.PublishBatch events of one GET /events response) or a
	// registration starts its way through the pipeline; the context it
	// returns (e.g. carrying a trace span) is used for its publishes, and
	// end is called with its outcome once the broker confirmed it.
	OnBatch func(ctx context.Context, queueID string, events int) (context.Context, func(error))
	// OnReceived is called for every event polled from Zulip.
	OnReceived func(eventType string)
	// OnSkipped is called for an event not published: "heartbeat" or
	// "duplicate" (already in the broker).
	OnSkipped func(eventType, reason string)
	// OnPublished is called after every Publish call with its outcome.
	OnPublished func(msgs []*mapping.Message, err error, took time.Duration)
	// OnRegistered is called for every queue registration; lost tells a
	// re-registration after a queue loss from a first one.
	OnRegistered func(lost bool)
	// OnBackfilled is called, for each backfilled page the broker
	// confirmed, with how many messages it published.
	OnBackfilled func(n int)
	// OnLastEventID is called with the acknowledged event id.
	OnLastEventID func(id int64)
}

func (o Observer) Batch(ctx context.Context, queueID string, events int) (context.Context, func(error)) {
	if o.OnBatch == nil {
		return ctx, func(error) {}
	}
	return o.OnBatch(ctx, queueID, events)
}

func (o Observer) Received(t string) {
	if o.OnReceived != nil {
		o.OnReceived(t)
	}
}

func (o Observer) Skipped(t, reason string) {
	if o.OnSkipped != nil {
		o.OnSkipped(t, reason)
	}
}

func (o Observer) Published(msgs []*mapping.Message, err error, took time.Duration) {
	if o.OnPublished != nil {
		o.OnPublished(msgs, err, took)
	}
}

func (o Observer) Registered(lost bool) {
	if o.OnRegistered != nil {
		o.OnRegistered(lost)
	}
}

func (o Observer) Backfilled(n int) {
	if o.OnBackfilled != nil {
		o.OnBackfilled(n)
	}
}

func (o Observer) LastEventID(id int64) {
	if o.OnLastEventID != nil {
		o.OnLastEventID(id)
	}
}
