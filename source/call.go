package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/zulip-bridge/zulip-bridge/internal/retry"
)

// EventHandler handles one event. Returning an error means "not done": the
// event is not acknowledged and comes again (after a backoff delay).
type EventHandler func(ctx context.Context, ev Event) error

// MessageHandler handles one message; errors as for EventHandler.
type MessageHandler func(ctx context.Context, msg Message) error

// CallOption configures CallOnEachEvent and CallOnEachMessage.
type CallOption func(*callConfig)

type callConfig struct {
	state        State
	onRegistered func(context.Context, *Registration) error
	onLost       func(context.Context, QueueLost, *Registration) error
	heartbeats   bool
}

// FromState resumes a saved queue instead of registering a new one.
func FromState(st State) CallOption { return func(c *callConfig) { c.state = st } }

// OnRegistered is called after every registration (the first one and each
// replacement of a lost queue, before OnQueueLost), before any event of the
// new queue: the registration's Raw is the initial state. An error (its
// own, or OnQueueLost's) makes both run again after a backoff delay.
func OnRegistered(f func(ctx context.Context, reg *Registration) error) CallOption {
	return func(c *callConfig) { c.onRegistered = f }
}

// OnQueueLost is called when a lost queue was replaced, before any event of
// the new queue, e.g. to backfill with GetMessages. An error is retried
// after a backoff delay. Without it, losses are only logged.
func OnQueueLost(f func(ctx context.Context, lost QueueLost, reg *Registration) error) CallOption {
	return func(c *callConfig) { c.onLost = f }
}

// WithHeartbeats passes heartbeat events to the handler too; by default
// they are acknowledged without it.
func WithHeartbeats() CallOption { return func(c *callConfig) { c.heartbeats = true } }

// CallOnEachEvent registers a queue (or resumes one, FromState) and calls
// handler for every event, in order, acknowledging each event only after
// its handler returned nil. It is the Go counterpart of the Python
// bindings' call_on_each_event, with the guarantee that a handler error
// leaves the event unacknowledged. It returns ctx's error when ctx ends, or
// a fatal error (e.g. one matching ErrUnauthorized).
func (c *Client) CallOnEachEvent(ctx context.Context, handler EventHandler, opts ...CallOption) error {
	var cfg callConfig
	for _, o := range opts {
		o(&cfg)
	}
	q, err := c.Open(ctx, cfg.state)
	if err != nil {
		return err
	}
	// A batch is retried, from Next on, until its handlers all returned
	// nil; Next's own errors are fatal (it retries what is worth retrying).
	var fatal error
	p := retry.Policy{
		Backoff:   c.backoff,
		Clock:     c.clock,
		Permanent: func(error) bool { return fatal != nil },
		OnRetry: func(f retry.Failure) {
			c.log.Warn("zulip event handler failed, the event comes again", "attempt", f.Attempt, "retry_in", f.Wait, "error", f.Err)
		},
	}
	for {
		err := retry.Do(ctx, p, func(ctx context.Context) error {
			b, err := q.Next(ctx)
			if err != nil {
				fatal = err
				return err
			}
			return c.handleBatch(ctx, q, b, handler, &cfg)
		})
		switch {
		case fatal != nil:
			return fatal
		case err != nil:
			return ctx.Err() // the only other way Do ends
		}
	}
}

// handleBatch runs the handler over b, acknowledging event by event, and
// stops at the first failure: that event and the rest come again.
func (c *Client) handleBatch(ctx context.Context, q *Queue, b Batch, handler EventHandler, cfg *callConfig) error {
	if b.Registered != nil {
		if cfg.onRegistered != nil {
			if err := cfg.onRegistered(ctx, b.Registered); err != nil {
				return fmt.Errorf("registration handler: %w", err)
			}
		}
		if b.Lost != nil {
			if cfg.onLost != nil {
				if err := cfg.onLost(ctx, *b.Lost, b.Registered); err != nil {
					return fmt.Errorf("queue lost handler: %w", err)
				}
			} else {
				c.log.Warn("zulip event queue was lost: events in between are missing",
					"old_queue_id", b.Lost.OldQueueID, "new_queue_id", b.Lost.NewQueueID, "max_message_id", b.Lost.MaxMessageID)
			}
		}
		q.Ack(b.LastEventID())
		return nil
	}
	for {
		evs, err := b.Read(callChunk, callChunkBytes)
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			// The response broke off: the next Next asks again for what
			// it did not deliver, after a backoff.
			return nil
		}
		for _, ev := range evs {
			if !ev.Heartbeat || cfg.heartbeats {
				if err := handler(ctx, ev); err != nil {
					return fmt.Errorf("event %d (%s): %w", ev.ID, ev.Type, err)
				}
			}
			q.Ack(ev.ID)
		}
	}
}

// What CallOnEachEvent reads of a response at a time.
const (
	callChunk      = 100
	callChunkBytes = 1 << 20
)

// CallOnEachMessage is CallOnEachEvent for message events only, like the
// Python bindings' call_on_each_message: the handler gets each message with
// the bot's flags on it. The configured event types must include message.
func (c *Client) CallOnEachMessage(ctx context.Context, handler MessageHandler, opts ...CallOption) error {
	if c.types != nil && !slices.Contains(c.types, "message") {
		return errors.New("CallOnEachMessage: the client's Config.EventTypes do not include message: add it")
	}
	return c.CallOnEachEvent(ctx, func(ctx context.Context, ev Event) error {
		if ev.Type != "message" {
			return nil
		}
		if ev.Oversized {
			c.log.Error("message event larger than Config.MaxResponseBytes: not passed to the handler; fetch it with GetMessages",
				"event_id", ev.ID, "message_id", ev.MessageID, "bytes", ev.Size, "limit", c.maxBody)
			return nil
		}
		msg, err := messageOf(ev)
		if err != nil {
			return err
		}
		return handler(ctx, msg)
	}, opts...)
}
