package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/zulip-bridge/zulip-bridge/internal/crashpoint"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/spool"
)

// This file is the forwarder: with a spool, the loop acknowledges to
// Zulip what is durable in the spool, and the forwarder publishes what the
// spool holds to the broker, in order, exactly once:
//
//	Zulip ──▶ read + map ──▶ spool ──▶ forward ──▶ broker
//
// It keeps its own mark in the spool (the last entry the broker confirmed
// and the broker position taken right after), written in the transaction
// that drops what is no longer needed; after a restart it reads back what
// the broker stored after that position and skips it, as the loop does
// with a checkpoint.

// forward runs the forwarder until drain is closed (the loop has stopped)
// and everything appended is forwarded, or ctx (the stop's budget) ends:
// then it returns nil, what is left waiting in the spool for the next
// start. It returns an error only when the spool fails for good.
func (p *Pipeline) forward(ctx context.Context, drain <-chan struct{}) error {
	w := p.fwd
	seq, pos, err := p.forwardStart(ctx)
	if err != nil {
		return p.forwardStopped(ctx, err)
	}
	w.pos = pos
	// skip is what the broker holds after the mark; tail, the part of it
	// not met again yet.
	skip, tail := map[string]struct{}{}, map[string]struct{}{}
	if w.rec != nil && pos != nil {
		keys, err := w.publishedSince(ctx, pos)
		if err != nil {
			return p.forwardStopped(ctx, err)
		}
		skip = keys
		tail = maps.Clone(keys)
		p.log.Info("spool: read back what the broker stored after the last forwarded entry", "forwarded", seq, "count", len(keys))
	}
	// Marks are written beside the publishing, newest first (markSlot):
	// the next chunk is on its way while the last one's mark is fsynced. A
	// mark that fails for good stops the forwarder.
	lctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	marks := newMarkSlot()
	recorded := make(chan error, 1)
	go func() {
		err := p.recordForwarded(lctx, marks)
		if err != nil {
			fail(err)
		}
		recorded <- err
	}()
	err = p.forwardLoop(lctx, drain, seq, skip, tail, marks)
	marks.close()
	if rerr := <-recorded; rerr != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = rerr
	}
	return p.forwardStopped(ctx, err)
}

// forwardLoop reads, publishes and hands each confirmed chunk's mark on,
// until drain is closed and the spool is forwarded to its end (nil), or
// ctx ends.
func (p *Pipeline) forwardLoop(ctx context.Context, drain <-chan struct{}, seq uint64, skip, tail map[string]struct{}, marks *markSlot) error {
	w := p.fwd
	// Reads wait for entries until the loop stops; then they take what is
	// left and the forwarder returns once it has caught up.
	waiting, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	go func() {
		select {
		case <-drain:
			stopWaiting()
		case <-waiting.Done():
		}
	}()
	for {
		rctx := waiting
		if waiting.Err() != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if seq >= p.spool.Last() {
				return nil
			}
			rctx = ctx
		}
		es, err := p.spool.Read(rctx, seq, p.cfg.PublishBatch, chunkBytes)
		if err != nil {
			if ctx.Err() == nil && waiting.Err() != nil {
				continue // the loop stopped: take what is left
			}
			return fmt.Errorf("spool: %w", err)
		}
		msgs := make([]*mapping.Message, 0, len(es))
		matched := false
		for _, e := range es {
			if _, dup := skip[e.Msg.DedupKey]; !dup {
				msgs = append(msgs, e.Msg)
			} else if _, ok := tail[e.Msg.DedupKey]; ok {
				delete(tail, e.Msg.DedupKey)
				matched = true
			}
		}
		if err := w.publish(ctx, msgs); err != nil {
			return err
		}
		// As the loop does (closeTail): while what the last run forwarded
		// after its mark may still come, the mark keeps its position.
		if len(tail) == 0 || (len(msgs) > 0 && !matched) {
			clear(tail)
		}
		if w.rec != nil && len(msgs) > 0 && len(tail) == 0 {
			if w.pos, err = w.position(ctx); err != nil {
				return err
			}
		}
		crashpoint.Here(crashpoint.Forwarded)
		last := es[len(es)-1].Seq
		p.log.Debug("spool: forwarded", "from", es[0].Seq, "to", last, "published", len(msgs))
		marks.put(mark{lastID: int64(last), pos: w.pos})
		seq = last
	}
}

// recordForwarded writes the newest forward mark into the spool until the
// slot is closed and empty.
func (p *Pipeline) recordForwarded(ctx context.Context, marks *markSlot) error {
	for {
		m, ok, err := marks.take(ctx)
		if !ok {
			return err
		}
		if err := p.retry(ctx, "spool: record what was forwarded", func() error { return p.spool.Forward(uint64(m.lastID), m.pos) }); err != nil {
			return err
		}
	}
}

// forwardStopped is the forwarder's result for err: nil once ctx (the
// stop's budget) has ended, saying what stays in the spool.
func (p *Pipeline) forwardStopped(ctx context.Context, err error) error {
	if ctx.Err() == nil && err != nil {
		return err
	}
	if st := p.spool.Stats(); st.Pending > 0 {
		p.log.Warn("stopped with events in the spool not yet forwarded: they are durable and forwarded at the next start",
			"pending", st.Pending, "shutdown_timeout", p.cfg.ShutdownTimeout)
	}
	return nil
}

// forwardStart returns where forwarding resumes: the spool's own mark, or,
// for a spool that never forwarded anything, a broker position recorded
// in the spool before the first entry is forwarded (so that a crash during
// that first forward reads back from it): the checkpoint's, when the
// bridge ran without a spool before, else the broker's current one.
func (p *Pipeline) forwardStart(ctx context.Context) (uint64, json.RawMessage, error) {
	seq, pos := p.spool.Forwarded()
	if pos != nil || p.fwd.rec == nil {
		return seq, pos, nil
	}
	cp, found, err := p.store.Load(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("load checkpoint: %w", err)
	}
	if _, isSpool := spool.ParsePosition(cp.SinkPosition); found && !isSpool && cp.SinkPosition != nil {
		pos = cp.SinkPosition
	} else if pos, err = p.fwd.position(ctx); err != nil {
		return 0, nil, err
	}
	if err := p.retry(ctx, "spool: record the broker position", func() error { return p.spool.Forward(seq, pos) }); err != nil {
		return 0, nil, err
	}
	return seq, pos, nil
}

// checkpointed tells the spool, if any, that a checkpoint naming pos is
// durable.
func (p *Pipeline) checkpointed(pos json.RawMessage) {
	if p.spool != nil {
		p.spool.Checkpointed(pos)
	}
}

// errSpoolLost is returned when the checkpoint names spool entries that the
// spool does not have: the spool file was lost or replaced, and with it
// events already acknowledged to Zulip.
var errSpoolLost = errors.New("spool lost")
