package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/internal/retry"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// This file is the broker side of the loop: publishing with retries and
// read-back, control events, and the checkpoint written after them.

// publisher publishes to one sink with retries and read-back. The
// pipeline has one toward its sink (the broker, or the spool), and with a
// spool the forwarder has a second toward the broker. Each is used by one
// goroutine at a time.
type publisher struct {
	p *Pipeline
	// name says what the sink is in log lines: "broker" or "spool".
	name string
	sink sink.Sink
	// rec is sink as a sink.Recoverer, nil when it is not one.
	rec sink.Recoverer
	// pos is a sink position taken after the last confirmed publish (or at
	// the start): after a publish whose outcome is unknown, what the sink
	// holds after it is read back so that the retry does not store
	// anything twice.
	pos json.RawMessage
	// down is true between a failed publish and the next success, so that
	// the change is logged once each way, not per retry.
	down bool
	// report tells the status the sink's state: the failure, nil once it
	// takes messages again.
	report func(error)
	// observe tells the observer of every publish: only the publisher
	// toward the broker does, so that metrics count what reached it.
	observe bool
}

func newPublisher(p *Pipeline, name string, s sink.Sink, report func(error), observe bool) *publisher {
	rec, _ := s.(sink.Recoverer)
	return &publisher{p: p, name: name, sink: s, rec: rec, report: report, observe: observe}
}

// publish hands msgs to the sink in chunks and retries what it did not
// confirm until it does, or ctx ends.
func (w *publisher) publish(ctx context.Context, msgs []*mapping.Message) error {
	for start := 0; start < len(msgs); start += w.p.cfg.PublishBatch {
		if err := w.publishChunk(ctx, msgs[start:min(start+w.p.cfg.PublishBatch, len(msgs))]); err != nil {
			return err
		}
	}
	return nil
}

// publishChunk publishes pending until the sink confirms all of it. Never
// publish again blind: after a failed attempt, what it stored is read back
// first, and while the read-back fails too (the broker still unreachable,
// or storing but not answering) the wait goes on. A resend past
// JetStream's duplicate window would store a message twice. Publishes and
// read-backs are the attempts of one backoff.
func (w *publisher) publishChunk(ctx context.Context, pending []*mapping.Message) error {
	p := w.p
	readBack := false
	err := retry.Do(ctx, retry.Policy{
		Backoff:   p.backoff,
		Clock:     p.clock,
		Permanent: func(err error) bool { _, ok := err.(giveUp); return ok },
	}, func(ctx context.Context) error {
		if readBack {
			kept, ok := w.notStored(ctx, pending)
			if !ok {
				p.progress()
				return errNotReadBack
			}
			pending, readBack = kept, false
			if len(pending) == 0 {
				return nil
			}
		}
		p.progress()
		if err := p.fenced(); err != nil {
			return giveUp{err}
		}
		began := p.clock.Now()
		actx, cancel := p.attempt(ctx)
		err := w.sink.Publish(actx, pending)
		cancel()
		if w.observe {
			p.obs.Published(pending, err, p.clock.Since(began))
		}
		if err == nil {
			w.up()
			return nil
		}
		if ctx.Err() != nil {
			return giveUp{fmt.Errorf("publish: %w", ctx.Err())}
		}
		pending = sink.Unconfirmed(pending, err)
		w.failed(err)
		readBack = true
		return err
	})
	switch err := err.(type) {
	case nil:
		return nil
	case giveUp:
		return err.err
	case *retry.StopError:
		return fmt.Errorf("publish: %w", err.Err)
	default:
		return err
	}
}

// giveUp carries an error that ends publishChunk's retries, as it is.
type giveUp struct{ err error }

func (g giveUp) Error() string { return g.err.Error() }

// errNotReadBack is a failed read-back's attempt error: only the wait
// before the next one follows.
var errNotReadBack = errors.New("read-back failed")

// position asks the sink for its position, retrying while it cannot say.
func (w *publisher) position(ctx context.Context) (json.RawMessage, error) {
	var pos json.RawMessage
	err := w.p.retry(ctx, w.name+" position", func() error {
		actx, cancel := w.p.attempt(ctx)
		defer cancel()
		var err error
		pos, err = w.rec.Position(actx)
		return err
	})
	return pos, err
}

// publishedSince reads back the keys the sink stored after pos, retrying
// while it cannot.
func (w *publisher) publishedSince(ctx context.Context, pos json.RawMessage) (map[string]struct{}, error) {
	var keys map[string]struct{}
	err := w.p.retry(ctx, "read back what the "+w.name+" stored", func() error {
		var err error
		keys, err = w.rec.PublishedSince(ctx, pos)
		return err
	})
	return keys, err
}

// notStored drops from msgs those the sink stored although the publish
// that sent them failed (a lost confirmation, a timeout): it reads back
// what was stored after the last position, the way a restart does, so
// that exactly-once does not rest on a broker's duplicate window. ok is
// false when the read-back failed: then nothing may be sent again yet.
func (w *publisher) notStored(ctx context.Context, msgs []*mapping.Message) (_ []*mapping.Message, ok bool) {
	if w.rec == nil || w.pos == nil || len(msgs) == 0 {
		return msgs, true
	}
	actx, cancel := w.p.attempt(ctx)
	defer cancel()
	stored, err := w.rec.PublishedSince(actx, w.pos)
	if err != nil {
		return msgs, false
	}
	kept := msgs[:0:0]
	for _, m := range msgs {
		if _, dup := stored[m.DedupKey]; !dup {
			kept = append(kept, m)
		}
	}
	return kept, true
}

func (w *publisher) failed(err error) {
	if !w.down {
		w.down = true
		if w.name == "spool" {
			w.p.log.Warn("spool not taking events: holding acknowledgements to Zulip and retrying", "error", err)
		} else {
			w.p.log.Warn("broker down: holding acknowledgements and retrying", "error", err)
		}
	}
	w.report(err)
}

func (w *publisher) up() {
	if w.down {
		w.down = false
		if w.name == "spool" {
			w.p.log.Info("spool taking events again")
		} else {
			w.p.log.Info("broker up: publishing resumed")
		}
	}
	w.report(nil)
}

// checkpoint durably records that everything up to lastEventID of queueID
// is in the broker, retrying while the store is unavailable. It is for the
// loop's own goroutine, between batches; a batch's events are checkpointed
// by drain's checkpoint stage.
func (p *Pipeline) checkpoint(ctx context.Context, queueID string, lastEventID int64) error {
	var pos json.RawMessage
	if p.out.rec != nil {
		var err error
		if pos, err = p.out.position(ctx); err != nil {
			return err
		}
	}
	if err := p.save(ctx, queueID, mark{lastID: lastEventID, maxMessageID: p.maxMessageID, pos: pos}); err != nil {
		return err
	}
	p.out.pos = pos
	p.checkpointed(pos)
	return nil
}

// save writes the checkpoint of m, retrying while the store is
// unavailable.
func (p *Pipeline) save(ctx context.Context, queueID string, m mark) error {
	cp := checkpoint.Checkpoint{
		Site: p.site.String(), QueueID: queueID, LastEventID: m.lastID, MaxMessageID: m.maxMessageID, SinkPosition: m.pos,
		Term: p.term(),
	}
	return p.retry(ctx, "write checkpoint", func() error {
		if err := p.fenced(); err != nil {
			return err
		}
		actx, cancel := p.attempt(ctx)
		defer cancel()
		cp.UpdatedAt = p.clock.Now().UTC()
		return p.store.Save(actx, cp)
	})
}

// retry runs op until it succeeds, ctx ends, or it fails in a way no retry
// fixes (a checkpoint owned by another bridge, a corrupt one).
func (p *Pipeline) retry(ctx context.Context, what string, op func() error) error {
	waiting := false // the stop came during a wait, not after an attempt
	err := retry.Do(ctx, retry.Policy{
		Backoff: p.backoff,
		Clock:   p.clock,
		// A stop is checked first: the operation's error, even a permanent
		// one, comes with the context's then.
		Permanent: func(err error) bool { return ctx.Err() == nil && permanent(err) },
		OnRetry: func(f retry.Failure) {
			waiting = true
			if f.Attempt == 1 {
				p.log.Warn(what+": failed, retrying", "error", f.Err)
			}
		},
		OnRecover: func(attempts int, _ time.Duration) {
			p.log.Info(what+": recovered", "attempts", attempts)
		},
	}, func(context.Context) error {
		waiting = false
		p.progress()
		return op()
	})
	if stop, ok := err.(*retry.StopError); ok {
		if waiting {
			return fmt.Errorf("%s: %w", what, stop.Err)
		}
		// Stopping: say so (callers tell a stop from a failure by the
		// context error), and keep the operation's own error.
		return fmt.Errorf("%s: %w: %w", what, stop.Err, stop.Last)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
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
	return errors.Is(err, ErrFenced) || errors.Is(err, checkpoint.ErrStaleTerm) || errors.Is(err, checkpoint.ErrConflict) || errors.Is(err, checkpoint.ErrLocked) ||
		errors.Is(err, checkpoint.ErrCorrupt) || errors.Is(err, checkpoint.ErrInvalid) ||
		errors.Is(err, checkpoint.ErrUnsupportedVersion) || errors.Is(err, checkpoint.ErrClosed)
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
	return p.out.publish(ctx, []*mapping.Message{m})
}
