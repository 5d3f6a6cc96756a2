package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStreamConfig configures ConsumeJetStream. Zero fields mean the
// defaults written on them.
type JetStreamConfig struct {
	// Stream is the stream the bridge publishes into (BRIDGE_NATS_STREAM).
	// Empty means "ZULIP".
	Stream string
	// Durable names the consumer: a restarted service (or several replicas
	// sharing the work) resumes where it stopped. Required.
	Durable string
	// FilterSubjects are the subjects to consume (docs/names.md), e.g.
	// "zulip.message.>" and "zulip.bridge.>". Empty means Prefix + ".>",
	// everything.
	FilterSubjects []string
	// Prefix is BRIDGE_SUBJECT_PREFIX. Empty means "zulip".
	Prefix string
	// DeliverPolicy for a consumer created anew; zero means every message
	// the stream holds (jetstream.DeliverAllPolicy).
	DeliverPolicy jetstream.DeliverPolicy
	// AckWait is how long the server waits for an acknowledgement before it
	// delivers the message again. Zero means 30s.
	AckWait time.Duration
	// MaxDeliver bounds deliveries of one message; zero means unlimited. A
	// message past it is dropped by the server, and the ones after it
	// follow: keep it unlimited unless losing events is acceptable.
	MaxDeliver int
	// MaxAckPending is how many messages may be unacknowledged at once.
	// Zero means 1: the server sends the next message only once the previous
	// one is acknowledged, which keeps every subject (so every key) in stream
	// order across redeliveries. A larger value is faster, but a message
	// delivered again comes after later ones of its key.
	MaxAckPending int
}

// Validate reports every field out of range at once.
func (c JetStreamConfig) Validate() error {
	var errs []error
	if c.Durable == "" {
		errs = append(errs, errors.New(`consumer: JetStreamConfig.Durable is required (example: "my-service")`))
	}
	if c.AckWait < 0 {
		errs = append(errs, fmt.Errorf("consumer: JetStreamConfig.AckWait %v is negative (example: 30s)", c.AckWait))
	}
	if c.MaxAckPending < 0 {
		errs = append(errs, fmt.Errorf("consumer: JetStreamConfig.MaxAckPending %d is negative (example: 1)", c.MaxAckPending))
	}
	if c.MaxDeliver < -1 {
		errs = append(errs, fmt.Errorf("consumer: JetStreamConfig.MaxDeliver %d: want -1 or 0 (unlimited) or a positive count", c.MaxDeliver))
	}
	for _, f := range c.FilterSubjects {
		if f == "" || strings.ContainsAny(f, " \t\r\n") {
			errs = append(errs, fmt.Errorf("consumer: JetStreamConfig.FilterSubjects: %q is not a subject (example: zulip.message.>)", f))
		}
	}
	return errors.Join(errs...)
}

// ConsumeJetStream creates (or updates) the durable pull consumer cfg
// describes and hands its messages to h one at a time until ctx is done;
// then it returns nil. A message h handled (or that was a duplicate) is
// acknowledged with a confirmed ack; one it failed is negatively
// acknowledged with opts.Backoff's delay, and the server delivers it again
// (Metadata.Attempt counts the deliveries).
func ConsumeJetStream(ctx context.Context, js jetstream.JetStream, cfg JetStreamConfig, h Handler, opts Options) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	d, err := newDispatcher(h, opts)
	if err != nil {
		return err
	}
	cfg.Stream = cmp.Or(cfg.Stream, "ZULIP")
	prefix := cmp.Or(cfg.Prefix, "zulip")
	filters := cfg.FilterSubjects
	if len(filters) == 0 {
		filters = []string{prefix + ".>"}
	}
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: cfg.DeliverPolicy,
		AckWait:       cmp.Or(cfg.AckWait, 30*time.Second),
		MaxDeliver:    cmp.Or(cfg.MaxDeliver, -1),
		MaxAckPending: cmp.Or(cfg.MaxAckPending, 1),
	}
	if len(filters) == 1 {
		cc.FilterSubject = filters[0]
	} else {
		cc.FilterSubjects = filters
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, cc)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consumer: JetStream consumer %s on stream %s: %w", cfg.Durable, cfg.Stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consumer: JetStream consumer %s: %w", cfg.Durable, err)
	}
	// On the way out, what the server already sent is handed back at once
	// (it would otherwise be held until AckWait, and with MaxAckPending 1
	// hold back everything after it).
	defer func() {
		it.Drain()
		for {
			m, err := it.Next(jetstream.NextMaxWait(time.Second))
			if err != nil {
				return
			}
			_ = m.Nak()
		}
	}()
	failures := 0 // consecutive errors from the iterator
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err == nil && ctx.Err() != nil {
			_ = msg.Nak() // received as we stop: for the next consumer, now
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return fmt.Errorf("consumer: JetStream consumer %s: %w", cfg.Durable, err)
			}
			// Missed heartbeats while the server is away: the iterator
			// reconnects by itself. Paced, in case an error comes at once.
			failures++
			d.log.Warn("consumer: JetStream consumer: waiting for messages", "durable", cfg.Durable, "error", err)
			if !sleep(ctx, d.opts.Backoff(failures)) {
				return nil
			}
			continue
		}
		failures = 0
		meta := ParseHeaders(msg.Headers())
		meta.Subject = msg.Subject()
		if md, err := msg.Metadata(); err == nil {
			meta.Sequence = md.Sequence.Stream
			meta.Attempt = int(md.NumDelivered)
		}
		ack := func(ctx context.Context) error { return msg.DoubleAck(ctx) }
		if err := d.handle(ctx, meta, msg.Data(), ack); err != nil {
			delay := d.opts.Backoff(max(meta.Attempt, 1))
			if ctx.Err() != nil {
				delay = 0 // stopping: let another consumer have it now
			}
			if nerr := msg.NakWithDelay(delay); nerr != nil {
				d.log.Warn("consumer: negative acknowledgement failed; the message comes again after AckWait", "subject", meta.Subject, "dedup_key", meta.DedupKey, "error", nerr)
			}
			d.log.Info("consumer: handler failed; the message comes again", "subject", meta.Subject, "dedup_key", meta.DedupKey, "attempt", meta.Attempt, "delay", delay, "error", err)
		}
	}
}
