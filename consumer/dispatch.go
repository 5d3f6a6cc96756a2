package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Delivery is one message handed to a Handler: the decoded event, the
// metadata of its headers and broker, and its acknowledgement.
type Delivery struct {
	Event Event
	Meta  Metadata
	// DecodeErr is a *TypeError when a typed event came as a *Generic
	// because a member had another JSON type than Zulip documents.
	DecodeErr error

	ack       func(context.Context) error
	ackOnce   sync.Once
	ackErr    error
	ackCalled atomic.Bool
}

// Ack acknowledges the message now (JetStream: a confirmed ack; Kafka: the
// offset committed, with those before it in its partition). A handler need
// not call it: returning nil acknowledges. Once it is called, an error from
// the handler no longer brings the message back. Calling it more than once
// acknowledges once.
func (d *Delivery) Ack(ctx context.Context) error {
	d.ackOnce.Do(func() {
		d.ackErr = d.ack(ctx)
		d.ackCalled.Store(true)
	})
	return d.ackErr
}

func (d *Delivery) acked() bool { return d.ackCalled.Load() }

// Handler handles one event. Returning nil acknowledges it; returning an
// error has it delivered again, after a back-off, before anything after
// it (of its key: see ConsumeJetStream, ConsumeKafka).
type Handler func(ctx context.Context, d *Delivery) error

// Options are what the two consumers share. The zero value is usable.
type Options struct {
	// WindowSize is how many dedup keys the in-memory Window keeps: a
	// message whose Zulip-Dedup-Key is among them is acknowledged without
	// being handled. 0 means DefaultWindowSize; negative turns it off.
	WindowSize int
	// Store is the durable idempotency store, asked after the window; nil
	// means none.
	Store IdempotencyStore
	// OnResync, OnState and OnInvalid get the bridge's control events; when
	// nil, the event goes to the Handler like any other (as *Resync, *State,
	// *Invalid). An error has the event delivered again, as for the Handler.
	OnResync  func(ctx context.Context, r *Resync, meta Metadata) error
	OnState   func(ctx context.Context, s *State, meta Metadata) error
	OnInvalid func(ctx context.Context, i *Invalid, meta Metadata) error
	// OnDuplicate, when set, is told of every message skipped because its
	// dedup key was seen.
	OnDuplicate func(meta Metadata)
	// Backoff is the delay before a failed message is delivered again,
	// given the number of failed attempts so far (1, 2, ...). Nil means
	// 100ms doubling up to 30s, with jitter.
	Backoff func(attempt int) time.Duration
	// Logger gets what cannot be returned: undecodable messages skipped,
	// failed acknowledgements. Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultBackoff is Options.Backoff's default: 100ms doubling to 30s, the
// upper half of each step random so that consumers do not retry in step.
func DefaultBackoff(attempt int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < attempt && d < 30*time.Second; i++ {
		d *= 2
	}
	d = min(d, 30*time.Second)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d, or until ctx is done: it reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ackTimeout bounds an acknowledgement made after the handler returned.
const ackTimeout = 10 * time.Second

// dispatcher is what both consumers do with one message, whatever the
// broker.
type dispatcher struct {
	h      Handler
	opts   Options
	window *Window
	log    *slog.Logger
}

func newDispatcher(h Handler, opts Options) (*dispatcher, error) {
	if h == nil {
		return nil, errors.New("consumer: a Handler is required")
	}
	d := &dispatcher{h: h, opts: opts, log: opts.Logger}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.opts.Backoff == nil {
		d.opts.Backoff = DefaultBackoff
	}
	switch {
	case opts.WindowSize == 0:
		d.window = NewWindow(DefaultWindowSize)
	case opts.WindowSize > 0:
		d.window = NewWindow(opts.WindowSize)
	}
	return d, nil
}

// handle runs one message through dedup, decoding and the callbacks, and
// acknowledges it with ack when it was handled, is a duplicate, or cannot be
// decoded (skipped, logged). An error means it was not handled: deliver it
// again. A failed acknowledgement is logged, not returned: the broker
// delivers the message again and the dedup window skips it.
func (d *dispatcher) handle(ctx context.Context, meta Metadata, payload []byte, ack func(context.Context) error) error {
	dl := &Delivery{Meta: meta, ack: ack}
	if err := d.process(ctx, dl, payload); err != nil {
		if !dl.acked() {
			return err
		}
		// The handler acknowledged it itself: it does not come again.
		_ = d.mark(context.WithoutCancel(ctx), meta.DedupKey)
		d.log.Warn("consumer: handler failed after acknowledging; the message does not come again", "subject", meta.Subject, "topic", meta.KafkaTopic, "dedup_key", meta.DedupKey, "error", err)
	}
	// Handled: acknowledged even when ctx ended meanwhile, or it would
	// come again to a process whose window does not hold it.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	if err := dl.Ack(actx); err != nil {
		d.log.Warn("consumer: acknowledgement failed; the message will come again", "subject", meta.Subject, "topic", meta.KafkaTopic, "dedup_key", meta.DedupKey, "error", err)
	}
	return nil
}

func (d *dispatcher) process(ctx context.Context, dl *Delivery, payload []byte) error {
	meta := dl.Meta
	key := meta.DedupKey
	if key != "" {
		seen, err := d.seen(ctx, key)
		if err != nil {
			return err
		}
		if seen {
			if d.opts.OnDuplicate != nil {
				d.opts.OnDuplicate(meta)
			}
			return nil
		}
	}
	ev, err := DecodeMessage(meta, payload)
	if ev == nil {
		// Delivering it again cannot help: skipped, loudly.
		d.log.Error("consumer: skipping a message that is not a Zulip event", "subject", meta.Subject, "topic", meta.KafkaTopic, "dedup_key", key, "error", err)
		return nil
	}
	dl.Event, dl.DecodeErr = ev, err
	if err := d.call(ctx, dl); err != nil {
		return err
	}
	return d.mark(ctx, key)
}

// mark records a handled key in the store and the window.
func (d *dispatcher) mark(ctx context.Context, key string) error {
	if key == "" {
		return nil
	}
	if d.opts.Store != nil {
		if err := d.opts.Store.Mark(ctx, key); err != nil {
			return fmt.Errorf("consumer: idempotency store: mark %s: %w", key, err)
		}
	}
	if d.window != nil {
		_ = d.window.Mark(ctx, key)
	}
	return nil
}

func (d *dispatcher) seen(ctx context.Context, key string) (bool, error) {
	if d.window != nil {
		if ok, _ := d.window.Seen(ctx, key); ok {
			return true, nil
		}
	}
	if d.opts.Store != nil {
		ok, err := d.opts.Store.Seen(ctx, key)
		if err != nil {
			return false, fmt.Errorf("consumer: idempotency store: %s: %w", key, err)
		}
		return ok, nil
	}
	return false, nil
}

func (d *dispatcher) call(ctx context.Context, dl *Delivery) error {
	switch e := dl.Event.(type) {
	case *Resync:
		if d.opts.OnResync != nil {
			return d.opts.OnResync(ctx, e, dl.Meta)
		}
	case *State:
		if d.opts.OnState != nil {
			return d.opts.OnState(ctx, e, dl.Meta)
		}
	case *Invalid:
		if d.opts.OnInvalid != nil {
			return d.opts.OnInvalid(ctx, e, dl.Meta)
		}
	}
	return d.h(ctx, dl)
}
