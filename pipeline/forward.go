package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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

// forward runs the forwarder until ctx ends (it returns nil) or the spool
// fails for good.
func (p *Pipeline) forward(ctx context.Context) error {
	w := p.fwd
	seq, pos, err := p.forwardStart(ctx)
	if err != nil {
		return stopped(ctx, err)
	}
	w.pos = pos
	skip := map[string]struct{}{}
	if w.rec != nil && pos != nil {
		keys, err := w.publishedSince(ctx, pos)
		if err != nil {
			return stopped(ctx, err)
		}
		skip = keys
		p.log.Info("spool: read back what the broker stored after the last forwarded entry", "forwarded", seq, "count", len(keys))
	}
	for {
		es, err := p.spool.Read(ctx, seq, p.cfg.PublishBatch, chunkBytes)
		if err != nil {
			return stopped(ctx, fmt.Errorf("spool: %w", err))
		}
		msgs := make([]*mapping.Message, 0, len(es))
		for _, e := range es {
			if _, dup := skip[e.Msg.DedupKey]; !dup {
				msgs = append(msgs, e.Msg)
			}
		}
		if err := w.publish(ctx, msgs); err != nil {
			return stopped(ctx, err)
		}
		if w.rec != nil && len(msgs) > 0 {
			if w.pos, err = w.position(ctx); err != nil {
				return stopped(ctx, err)
			}
		}
		last := es[len(es)-1].Seq
		if err := p.retry(ctx, "spool: record what was forwarded", func() error { return p.spool.Forward(last, w.pos) }); err != nil {
			return stopped(ctx, err)
		}
		seq = last
	}
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
