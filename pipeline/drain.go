package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/source"
)

// This file runs the events of one GET /events response through three
// stages that overlap, so that the bridge reads, publishes and
// checkpoints at once instead of in turn:
//
//	read + map ──chunks──▶ publish ──marks──▶ checkpoint + acknowledge
//
// The response is read in chunks of at most Config.PublishBatch events
// (and chunkBytes of JSON) while the previous chunk is being published;
// the publish stage hands each confirmed chunk's mark (its last event id,
// the highest message id up to it, and the sink position taken right
// after it was confirmed) to the checkpoint stage, which writes the newest
// mark it has and then acknowledges up to it. So:
//
//   - memory is bounded by the chunks in flight (one being read, one
//     waiting, one being published), not by the size of the response;
//   - a checkpoint never names an event whose message is not confirmed,
//     and its sink position is taken before any later message was sent, so
//     a read-back from it sees everything published after it;
//   - the next GET acknowledges exactly what the last checkpoint holds: the
//     batch ends only once its last mark is durable;
//   - a crash anywhere resumes after the last durable chunk, and the
//     read-back skips what was published after it.

// chunkBytes bounds the JSON of one chunk, so that chunks of large events
// stay small.
const chunkBytes = 4 << 20

// chunk is a part of a batch on its way from the read stage to the publish
// stage.
type chunk struct {
	ctx  context.Context // the observer's context for the chunk (trace)
	end  func(error)     // tells the observer the chunk's outcome
	msgs []*mapping.Message
	mark mark
	// confirmed, if not nil, is called once the broker confirmed msgs.
	confirmed func()
	// tailOpen, when true, keeps the publish stage from taking a new sink
	// position after the chunk (Pipeline.tail).
	tailOpen bool
}

// mark is what a checkpoint records: everything up to lastID is in the
// broker, stored after pos.
type mark struct {
	lastID       int64
	maxMessageID int64
	pos          json.RawMessage
}

// drain runs the events batch b through the stages and returns once every
// event it read is published and checkpointed, or a stage failed. ctx is
// the loop's: cancelling it stops reading (the events not read come again
// after a restart), while work, which outlives it by ShutdownTimeout,
// bounds finishing what was read.
func (p *Pipeline) drain(ctx, work context.Context, q *source.Queue, b source.Batch) error {
	return p.stages(work, b.QueueID, b.Close,
		func(sctx context.Context, out chan<- chunk) error { return p.readStage(ctx, sctx, b, out) },
		func(m mark) {
			q.Ack(m.lastID)
			p.setQueue(q.State(), m.maxMessageID)
		})
}

// stages runs the chunks that produce sends (it must close out) through
// the publish and checkpoint stages, checkpointing against queueID and
// calling durable (if not nil) after each checkpoint written. When a stage
// fails, the others stop: abandon (if not nil) is called to interrupt
// produce's reading. It returns the first failure, or nil once every
// chunk produced is published and checkpointed.
func (p *Pipeline) stages(ctx context.Context, queueID string, abandon func(),
	produce func(sctx context.Context, out chan<- chunk) error, durable func(mark)) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if abandon != nil {
		defer context.AfterFunc(sctx, abandon)()
	}
	chunks := make(chan chunk, 1)
	marks := newMarkSlot()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer marks.close()
		if err := p.publishStage(sctx, chunks, marks); err != nil {
			cancel(err)
		}
	})
	wg.Go(func() {
		if err := p.checkpointStage(sctx, queueID, marks, durable); err != nil {
			cancel(err)
		}
	})
	if err := produce(sctx, chunks); err != nil {
		cancel(err)
	}
	wg.Wait()
	if sctx.Err() != nil {
		return context.Cause(sctx)
	}
	return nil
}

// readStage reads b chunk by chunk, maps each event and hands the chunks to
// the publish stage, until the response ends, breaks off (the queue asks
// again for the rest, after a backoff), ctx ends, or sctx does (a later
// stage failed: it reports why).
func (p *Pipeline) readStage(ctx, sctx context.Context, b source.Batch, out chan<- chunk) error {
	defer close(out)
	for {
		evs, err := b.Read(p.cfg.PublishBatch, chunkBytes)
		p.progress()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			if ctx.Err() == nil && sctx.Err() == nil {
				p.log.Debug("events response ended early; asking again for the rest", "queue_id", b.QueueID, "error", err)
			}
			return nil
		}
		c := chunk{msgs: make([]*mapping.Message, 0, len(evs))}
		c.ctx, c.end = p.obs.Batch(sctx, b.QueueID, len(evs))
		seen := p.tailSeen
		for _, ev := range evs {
			m, err := p.eventMessage(b.QueueID, ev)
			if err != nil {
				c.end(err)
				return err
			}
			if m != nil {
				c.msgs = append(c.msgs, m)
			}
		}
		c.tailOpen = p.closeTail(len(c.msgs) > 0, p.tailSeen > seen)
		c.mark = mark{lastID: evs[len(evs)-1].ID, maxMessageID: p.maxMessageID}
		select {
		case out <- c:
		case <-sctx.Done():
			c.end(context.Cause(sctx))
			return nil
		}
	}
}

// closeTail decides, after a chunk, whether the previous run's tail may
// still come (and returns it): the events it published after its
// checkpoint come again first, in order, so the tail has passed once every
// key read back was seen again, or once a chunk published new messages
// and met none of them. (Keys read back from before the checkpoint, which
// a Kafka read-back may include, are never seen again; the second rule
// ends the tail anyway.)
func (p *Pipeline) closeTail(published, matched bool) bool {
	if p.tailOpen && (len(p.tail) == 0 || (published && !matched)) {
		p.tailOpen = false
		clear(p.tail)
	}
	return p.tailOpen
}

// eventMessage returns what is published for ev: nil for a heartbeat (by
// default) or a duplicate.
func (p *Pipeline) eventMessage(queueID string, ev source.Event) (*mapping.Message, error) {
	p.maxMessageID = max(p.maxMessageID, ev.MessageID)
	p.obs.Received(ev.Type)
	if ev.Heartbeat && !p.cfg.PublishHeartbeats {
		p.obs.Skipped(ev.Type, "heartbeat")
		return nil, nil
	}
	var (
		m   *mapping.Message
		err error
	)
	if ev.Oversized {
		m, err = p.oversized(queueID, ev)
		if err != nil {
			return nil, err
		}
	} else if m, err = p.mapper.MapEvent(ev, queueID); err != nil {
		p.log.Warn("event cannot be mapped; publishing it as a bridge.invalid control event", "event_id", ev.ID, "type", ev.Type, "error", err)
	}
	m, dup, err := p.prepare(m, err, queueID, eventRef(ev), ev.Raw)
	switch {
	case err != nil:
		return nil, err
	case dup:
		p.obs.Skipped(ev.Type, "duplicate")
		return nil, nil
	}
	return m, nil
}

// publishStage publishes chunk after chunk and hands each confirmed one's
// mark on. It alone uses the sink while a batch drains.
func (p *Pipeline) publishStage(ctx context.Context, in <-chan chunk, marks *markSlot) error {
	var failed error
	for c := range in {
		if failed != nil {
			c.end(failed)
			continue // let the read stage finish
		}
		err := p.out.publish(c.ctx, c.msgs)
		if err == nil && p.out.rec != nil && !c.tailOpen && (len(c.msgs) > 0 || p.out.pos == nil) {
			// Taken before the next chunk is sent: whatever is stored
			// after this checkpoint is stored after this position.
			p.out.pos, err = p.out.position(ctx)
		}
		c.end(err)
		if err != nil {
			failed = err
			continue
		}
		if c.confirmed != nil {
			c.confirmed()
		}
		c.mark.pos = p.out.pos
		marks.put(c.mark)
	}
	return failed
}

// checkpointStage writes the newest mark and calls durable with it, until
// the publish stage is done and every mark is written.
func (p *Pipeline) checkpointStage(ctx context.Context, queueID string, marks *markSlot, durable func(mark)) error {
	for {
		m, ok, err := marks.take(ctx)
		if !ok {
			return err
		}
		if err := p.save(ctx, queueID, m); err != nil {
			return err
		}
		p.checkpointed(m.pos)
		if durable != nil {
			durable(m)
		}
	}
}

// markSlot passes marks from the publish stage to the checkpoint stage,
// keeping only the newest: a checkpoint covers everything before it, so
// when the store is slower than the broker, checkpoints coalesce instead of
// queueing.
type markSlot struct {
	mu     sync.Mutex
	m      *mark
	closed bool
	wake   chan struct{}
}

func newMarkSlot() *markSlot { return &markSlot{wake: make(chan struct{}, 1)} }

func (s *markSlot) put(m mark) {
	s.mu.Lock()
	s.m = &m
	s.mu.Unlock()
	s.signal()
}

// close says no more marks come.
func (s *markSlot) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.signal()
}

func (s *markSlot) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take waits for a mark; ok is false once the slot is closed and empty
// (err nil), or when ctx ends first (err says why).
func (s *markSlot) take(ctx context.Context) (_ mark, ok bool, err error) {
	for {
		s.mu.Lock()
		m, closed := s.m, s.closed
		s.m = nil
		s.mu.Unlock()
		switch {
		case m != nil:
			return *m, true, nil
		case closed:
			return mark{}, false, nil
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return mark{}, false, context.Cause(ctx)
		}
	}
}
