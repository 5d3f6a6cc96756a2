package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/internal/retry"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// This file is the broker side of the loop: publishing with retries and
// read-back, control events, and the checkpoint written after them.

// publish hands msgs to the sink in chunks and retries what the broker did
// not confirm until it does, or ctx ends.
func (p *Pipeline) publish(ctx context.Context, msgs []*mapping.Message) error {
	for start := 0; start < len(msgs); start += p.cfg.PublishBatch {
		pending := msgs[start:min(start+p.cfg.PublishBatch, len(msgs))]
		for attempt := 1; len(pending) > 0; attempt++ {
			p.progress()
			began := p.clock.Now()
			actx, cancel := p.attempt(ctx)
			err := p.sink.Publish(actx, pending)
			cancel()
			p.obs.Published(pending, err, p.clock.Since(began))
			if err == nil {
				p.brokerUp()
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("publish: %w", ctx.Err())
			}
			pending = sink.Unconfirmed(pending, err)
			p.brokerFailed(err)
			if err := retry.Sleep(ctx, p.clock, p.backoff(attempt)); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			pending = p.notStored(ctx, pending)
		}
	}
	return nil
}

// checkpoint durably records that everything up to lastEventID of queueID
// is in the broker, retrying while the store is unavailable. It is for the
// loop's own goroutine, between batches; a batch's events are checkpointed
// by drain's checkpoint stage.
func (p *Pipeline) checkpoint(ctx context.Context, queueID string, lastEventID int64) error {
	var pos json.RawMessage
	if p.rec != nil {
		var err error
		if pos, err = p.position(ctx); err != nil {
			return err
		}
	}
	if err := p.save(ctx, queueID, mark{lastID: lastEventID, maxMessageID: p.maxMessageID, pos: pos}); err != nil {
		return err
	}
	p.pos = pos
	return nil
}

// save writes the checkpoint of m, retrying while the store is
// unavailable.
func (p *Pipeline) save(ctx context.Context, queueID string, m mark) error {
	cp := checkpoint.Checkpoint{
		Site: p.site.String(), QueueID: queueID, LastEventID: m.lastID, MaxMessageID: m.maxMessageID, SinkPosition: m.pos,
	}
	return p.retry(ctx, "write checkpoint", func() error {
		actx, cancel := p.attempt(ctx)
		defer cancel()
		cp.UpdatedAt = p.clock.Now().UTC()
		return p.store.Save(actx, cp)
	})
}

// position asks the sink for its position, retrying while it cannot say.
func (p *Pipeline) position(ctx context.Context) (json.RawMessage, error) {
	var pos json.RawMessage
	err := p.retry(ctx, "sink position", func() error {
		actx, cancel := p.attempt(ctx)
		defer cancel()
		var err error
		pos, err = p.rec.Position(actx)
		return err
	})
	return pos, err
}

// retry runs op until it succeeds, ctx ends, or it fails in a way no retry
// fixes (a checkpoint owned by another bridge, a corrupt one).
func (p *Pipeline) retry(ctx context.Context, what string, op func() error) error {
	for attempt := 1; ; attempt++ {
		p.progress()
		err := op()
		if err == nil {
			if attempt > 1 {
				p.log.Info(what+": recovered", "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			// Stopping: say so (callers tell a stop from a failure by the
			// context error), and keep the operation's own error.
			return fmt.Errorf("%s: %w: %w", what, ctx.Err(), err)
		}
		if permanent(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if attempt == 1 {
			p.log.Warn(what+": failed, retrying", "error", err)
		}
		if err := retry.Sleep(ctx, p.clock, p.backoff(attempt)); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}

// notStored drops from msgs those the broker stored although the publish
// that sent them failed (a lost confirmation, a timeout): it reads back
// what was stored after the last checkpoint's position, the way a restart
// does, so that exactly-once does not rest on a broker's duplicate window.
// If the read-back fails (the broker is still down), msgs are kept: the
// next attempt fails too, and the read-back is tried again before the one
// after.
func (p *Pipeline) notStored(ctx context.Context, msgs []*mapping.Message) []*mapping.Message {
	if p.rec == nil || p.pos == nil || len(msgs) == 0 {
		return msgs
	}
	actx, cancel := p.attempt(ctx)
	defer cancel()
	stored, err := p.rec.PublishedSince(actx, p.pos)
	if err != nil {
		return msgs
	}
	kept := msgs[:0:0]
	for _, m := range msgs {
		if _, dup := stored[m.DedupKey]; !dup {
			kept = append(kept, m)
		}
	}
	return kept
}

// attempt bounds one broker or store operation by PublishTimeout: an
// operation that neither succeeds nor fails is abandoned and retried.
// Retrying is safe: JetStream drops a message whose Nats-Msg-Id it has,
// and the Kafka sink reads back what an abandoned write stored before it
// publishes again. It is a safety net against a broker that stops
// answering, so it runs on the wall clock, not the injected one that paces
// backoff and shutdown.
func (p *Pipeline) attempt(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.cfg.PublishTimeout)
}

func permanent(err error) bool {
	return errors.Is(err, checkpoint.ErrConflict) || errors.Is(err, checkpoint.ErrLocked) ||
		errors.Is(err, checkpoint.ErrCorrupt) || errors.Is(err, checkpoint.ErrInvalid) ||
		errors.Is(err, checkpoint.ErrUnsupportedVersion) || errors.Is(err, checkpoint.ErrClosed)
}

func (p *Pipeline) brokerFailed(err error) {
	if !p.brokerDown {
		p.brokerDown = true
		p.log.Warn("broker down: holding acknowledgements and retrying", "error", err)
	}
	p.status.update(func(s *Status) { s.brokerErr = err })
}

func (p *Pipeline) brokerUp() {
	if p.brokerDown {
		p.brokerDown = false
		p.log.Info("broker up: publishing resumed")
	}
	p.status.update(func(s *Status) { s.brokerErr = nil })
}

// publishControl publishes one <prefix>.bridge.<kind> control event.
func (p *Pipeline) publishControl(ctx context.Context, kind, queueID string, payload json.RawMessage) error {
	m, err := p.mapper.Control(kind, queueID, payload)
	if err != nil {
		return fmt.Errorf("control event %s: %w", kind, err)
	}
	if p.published(m.DedupKey) {
		return nil
	}
	if p.maxBytes > 0 && sink.Size(m) > p.maxBytes {
		// A register response (bridge.state) of a large realm can exceed
		// the broker's limit: publish that fact under the same name.
		p.log.Error("control event too large for the broker; publishing a notice in its place", "kind", kind, "bytes", sink.Size(m), "limit", p.maxBytes)
		m, err = tooLarge{Reason: "too large for the broker", Bytes: sink.Size(m), Limit: p.maxBytes, DedupKey: m.DedupKey}.
			notice(func(payload []byte) (*mapping.Message, error) { return p.mapper.Control(kind, queueID, payload) })
		if err != nil {
			return fmt.Errorf("control event %s: %w", kind, err)
		}
	}
	return p.publish(ctx, []*mapping.Message{m})
}
