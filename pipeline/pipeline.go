package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/spool"
)

// Pipeline moves events from one Zulip queue to one sink. Create it with New
// and call Run once.
type Pipeline struct {
	cfg    Config
	site   source.Site
	client *source.Client
	mapper *mapping.Mapper
	// out publishes what the loop reads: to the broker, or with a spool to
	// the spool; fwd, with a spool, publishes from it to the broker.
	out     *publisher
	fwd     *publisher
	spool   *spool.Spool
	store   checkpoint.Store
	log     *slog.Logger
	clock   clockwork.Clock
	backoff source.Backoff
	obs     Observer
	status  Status
	// maxBytes is Deps.MaxMessageBytes.
	maxBytes int
	// handover is Deps.Forwarded.
	handover json.RawMessage
	// fence is Deps.Fence, nil without leader election.
	fence Fence

	// maxMessageID is the highest message id seen or backfilled: the anchor
	// of the next backfill.
	maxMessageID int64
	// skip holds the dedup keys already in the broker that the checkpoint
	// does not cover, read back after a restart. It is bounded by what was
	// published between two checkpoints, and kept for the process's life: a
	// key in it is a duplicate whenever it shows up again.
	skip map[string]struct{}
	// lastPage holds the keys of the last backfill page, which a new queue
	// may deliver again (a message sent while it was being registered).
	lastPage map[string]struct{}
	// tail holds the keys of skip not seen again yet, and tailOpen is true
	// while the events the previous run published after its checkpoint
	// may still be coming again. Meanwhile no new sink position is taken:
	// checkpoints keep the one the read-back started from, since a
	// position taken now would be after messages whose events are still
	// to come, and a crash would then publish them twice (see readStage).
	// Only the read stage uses them.
	tail     map[string]struct{}
	tailOpen bool
	tailSeen int // keys of tail seen again so far
}

// Deps are the components a Pipeline connects. All are required but Clock,
// Backoff, Logger and Observer.
type Deps struct {
	Site   source.Site // stored in and checked against checkpoints
	Client *source.Client
	Mapper *mapping.Mapper
	Sink   sink.Sink
	Store  checkpoint.Store
	Logger *slog.Logger
	Clock  clockwork.Clock
	// Backoff paces publish, checkpoint and read-back retries while the
	// broker or the store is down (default: 100ms doubling to 30s, full jitter).
	Backoff  source.Backoff
	Observer Observer
	// MaxMessageBytes is the largest message the broker takes, by
	// sink.Size (from sink.Limiter); 0 means no limit is known. A larger
	// message is set aside as a bridge.invalid notice (see fit).
	MaxMessageBytes int
	// Spool, if not nil, is the durable local log between Zulip and Sink:
	// events are acknowledged to Zulip once they are in it, and a forwarder
	// publishes them from it to Sink (docs/delivery.md, "The spool").
	Spool *spool.Spool
	// Forwarded, with no Spool, is the broker position that a spool left
	// by an earlier run recorded after forwarding everything it held: a
	// checkpoint written with the spool on names a spool position, and
	// this is where the broker's read-back starts instead.
	Forwarded json.RawMessage
	// Fence, if not nil, is the leadership term this pipeline runs under
	// (leader.Term): every poll, publish and checkpoint write is preceded
	// by Fence.Check, every checkpoint records Fence.Number, and once the
	// term is over (Done) the work in flight is abandoned, not finished
	// (docs/standby.md).
	Fence Fence
}

// Fence is a leadership term, as leader.Term implements it.
type Fence interface {
	// Check returns nil while the term is current.
	Check() error
	// Number is the term's fencing token, larger for every later term.
	Number() uint64
	// Done is closed once the term has ended for good.
	Done() <-chan struct{}
}

// ErrFenced is wrapped by what Run returns when it stopped because its
// term (Deps.Fence) ended: another replica may be leading.
var ErrFenced = errors.New("no longer the leader")

// CheckFence returns nil while f's term is current (always with a nil f:
// no election), else an error wrapping ErrFenced and why the term ended.
// Whatever else must stop outside a term (the bridge's requests to Zulip)
// checks it the same way.
func CheckFence(f Fence) error {
	if f == nil {
		return nil
	}
	if err := f.Check(); err != nil {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return nil
}

// fenced returns an error wrapping ErrFenced once the term is over.
func (p *Pipeline) fenced() error { return CheckFence(p.fence) }

// term is the term number a checkpoint records: 0 without election.
func (p *Pipeline) term() uint64 {
	if p.fence == nil {
		return 0
	}
	return p.fence.Number()
}

// New checks deps and returns a Pipeline.
func New(cfg Config, d Deps) (*Pipeline, error) {
	switch {
	case d.Site.IsZero():
		return nil, errors.New("pipeline: site is required")
	case d.Client == nil, d.Mapper == nil, d.Sink == nil, d.Store == nil:
		return nil, errors.New("pipeline: client, mapper, sink and store are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pipeline{
		cfg: cfg.withDefaults(), site: d.Site, client: d.Client, mapper: d.Mapper,
		store: d.Store, log: d.Logger, clock: d.Clock, backoff: d.Backoff,
		obs: d.Observer, skip: map[string]struct{}{}, lastPage: map[string]struct{}{}, tail: map[string]struct{}{},
		maxBytes: d.MaxMessageBytes, spool: d.Spool, handover: d.Forwarded, fence: d.Fence,
	}
	brokerState := func(err error) { p.status.update(func(s *Status) { s.brokerErr = err }) }
	if d.Spool == nil {
		p.out = newPublisher(p, "broker", d.Sink, brokerState, true)
	} else {
		p.out = newPublisher(p, "spool", d.Spool, func(err error) { p.status.update(func(s *Status) { s.spoolErr = err }) }, false)
		p.fwd = newPublisher(p, "broker", d.Sink, brokerState, true)
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.clock == nil {
		p.clock = clockwork.NewRealClock()
	}
	if p.backoff == nil {
		p.backoff = source.ExponentialBackoff(100*time.Millisecond, 30*time.Second, nil)
	}
	return p, nil
}

// Status is the pipeline's live status, for health probes.
func (p *Pipeline) Status() *Status { return &p.status }

// Run runs the loop until ctx is done or a fatal error (bad credentials, a
// corrupt checkpoint, a checkpoint owned by someone else) stops it.
//
// Cancelling ctx is the graceful stop: the long-poll is abandoned at once,
// but a batch already received is finished, confirmed and checkpointed,
// within Config.ShutdownTimeout; then Run returns nil. The queue is kept, so
// the next Run resumes it.
func (p *Pipeline) Run(ctx context.Context) (result error) {
	parent := ctx
	work, cancelWork := p.drainContext(ctx)
	defer cancelWork()
	if p.spool != nil {
		// The forwarder runs beside the loop; once the loop has stopped it
		// forwards what is left within the stop's budget. One that fails
		// for good (a corrupt spool) stops the loop, as a stop request
		// would, and its error is Run's.
		var fail context.CancelCauseFunc
		ctx, fail = context.WithCancelCause(ctx)
		drain := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			err := p.forward(work, drain)
			if err != nil {
				fail(err)
			}
			done <- err
		}()
		defer func() {
			close(drain)
			if err := <-done; err != nil && result == nil {
				result = stopped(parent, err)
			}
		}()
	}
	p.status.update(func(s *Status) { s.running = true; s.lastProgress = p.clock.Now() })
	defer p.status.update(func(s *Status) { s.running = false; s.registered = false })

	state, err := p.recover(work)
	if err != nil {
		return stopped(ctx, err)
	}
	if p.out.rec != nil && !p.tailOpen {
		if p.out.pos, err = p.out.position(work); err != nil {
			return stopped(ctx, err)
		}
	}
	q, err := p.client.Open(ctx, state)
	if err != nil {
		return stopped(ctx, fmt.Errorf("open event queue: %w", err))
	}
	p.setQueue(q.State(), p.maxMessageID)
	for ctx.Err() == nil {
		if err := p.fenced(); err != nil {
			return err
		}
		b, err := q.Next(ctx)
		p.progress()
		if err != nil {
			return stopped(ctx, fmt.Errorf("poll events: %w", err))
		}
		if b.Registered != nil {
			bctx, end := p.obs.Batch(work, b.QueueID, 0)
			err = p.registered(bctx, q, b)
			end(err)
		} else {
			err = p.drain(ctx, work, q, b)
		}
		if err != nil {
			if ctx.Err() != nil && work.Err() != nil {
				// The stop's budget ran out (the broker or the store did
				// not answer): nothing is lost, but say so.
				st := q.State()
				p.log.Warn("stopped before everything read was confirmed and checkpointed: it is left unacknowledged and comes again at the next start",
					"queue_id", st.QueueID, "last_checkpointed_event_id", st.LastEventID, "shutdown_timeout", p.cfg.ShutdownTimeout, "error", err)
			}
			return stopped(ctx, err)
		}
	}
	return nil
}

// stopped turns the error that ended Run into its result: nothing when the
// caller asked to stop, since the in-flight batch was either finished or
// left unacknowledged for the next start.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil
	}
	return err
}

// drainContext returns the context for work on a batch already received:
// it outlives ctx by ShutdownTimeout, so that a stop request lets the batch
// finish (and the forwarder empty the spool) instead of throwing away work
// the broker may already hold.
func (p *Pipeline) drainContext(ctx context.Context) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := p.clock.AfterFunc(p.cfg.ShutdownTimeout, cancel)
		context.AfterFunc(work, func() { t.Stop() })
	})
	if p.fence != nil {
		// A term that ended leaves nothing to finish: another replica may
		// already lead, and every action would be refused anyway.
		go func() {
			select {
			case <-p.fence.Done():
				cancel()
			case <-work.Done():
			}
		}()
	}
	return work, func() { stop(); cancel() }
}

// recover loads the checkpoint and reads back what the sink holds beyond
// it, returning where the source should resume.
func (p *Pipeline) recover(ctx context.Context) (source.State, error) {
	cp, found, err := p.store.Load(ctx)
	if err != nil {
		return source.State{}, fmt.Errorf("load checkpoint: %w", err)
	}
	if !found {
		p.log.Info("no checkpoint: registering a new event queue")
		return source.State{}, nil
	}
	if err := cp.BelongsTo(p.site); err != nil {
		return source.State{}, fmt.Errorf("load checkpoint: %w", err)
	}
	if cp, err = p.claim(ctx, cp); err != nil {
		return source.State{}, err
	}
	p.maxMessageID = cp.MaxMessageID
	if cp.SinkPosition, err = p.spoolHandover(ctx, cp.SinkPosition); err != nil {
		return source.State{}, fmt.Errorf("load checkpoint: %w", err)
	}
	if p.out.rec != nil {
		keys, err := p.out.publishedSince(ctx, cp.SinkPosition)
		if err != nil {
			return source.State{}, err
		}
		for k := range keys {
			p.skip[k] = struct{}{}
			p.tail[k] = struct{}{}
		}
		// Until the tail has come again, checkpoints keep the position
		// the read-back started from.
		p.tailOpen, p.out.pos = len(keys) > 0, cp.SinkPosition
		p.log.Info("read back what the "+p.out.name+" stored after the checkpoint", "count", len(keys))
	}
	p.checkpointed(cp.SinkPosition)
	p.log.Info("resuming event queue", "queue_id", cp.QueueID, "last_event_id", cp.LastEventID, "max_message_id", cp.MaxMessageID)
	return source.State{QueueID: cp.QueueID, LastEventID: cp.LastEventID, MaxMessageID: cp.MaxMessageID}, nil
}

// claim makes the fencing write of a term: cp written back with this
// term's number, so that from now on the store refuses a checkpoint of an
// earlier term (where it can compare and set) and a paused leader that
// wakes up cannot move the queue back. A checkpoint the previous leader
// wrote after cp was loaded (it checked its term just before a pause)
// makes the write conflict: it is loaded again and claimed in its turn.
// It returns the checkpoint claimed.
func (p *Pipeline) claim(ctx context.Context, cp checkpoint.Checkpoint) (checkpoint.Checkpoint, error) {
	for attempt := 1; p.fence != nil && cp.Term != p.term(); attempt++ {
		err := p.save(ctx, cp.QueueID, mark{lastID: cp.LastEventID, maxMessageID: cp.MaxMessageID, pos: cp.SinkPosition})
		if err == nil {
			p.log.Info("checkpoint claimed for this term", "term", p.term(), "previous_term", cp.Term)
			return cp, nil
		}
		if !errors.Is(err, checkpoint.ErrConflict) || attempt == 3 {
			return cp, fmt.Errorf("claim checkpoint for term %d: %w", p.term(), err)
		}
		var found bool
		if cp, found, err = p.store.Load(ctx); err != nil {
			return cp, fmt.Errorf("claim checkpoint for term %d: load again after a conflict: %w", p.term(), err)
		} else if !found {
			return cp, fmt.Errorf("claim checkpoint for term %d: the checkpoint disappeared after a conflict", p.term())
		}
		if err := cp.BelongsTo(p.site); err != nil {
			return cp, fmt.Errorf("load checkpoint: %w", err)
		}
	}
	return cp, nil
}

// registered handles the batch of a registration: the initial state, the
// backfill of a lost queue, and the checkpoint that moves to the new queue.
func (p *Pipeline) registered(ctx context.Context, q *source.Queue, b source.Batch) error {
	p.log.Info("registered event queue", "queue_id", b.Registered.QueueID, "max_message_id", b.Registered.MaxMessageID, "zulip_feature_level", b.Registered.FeatureLevel)
	p.obs.Registered(b.Lost != nil)
	if p.cfg.PublishInitialState {
		if err := p.publishControl(ctx, "state", b.Registered.QueueID, b.Registered.Raw); err != nil {
			return err
		}
	}
	if b.Lost != nil {
		// The lost queue's events never come again.
		p.tailOpen = false
		clear(p.tail)
		if err := p.resync(ctx, b); err != nil {
			return err
		}
	}
	// Messages up to the registration's max_message_id were either before
	// the bridge's time (a first registration starts "now") or just
	// backfilled; the new queue delivers the ones after it.
	p.maxMessageID = max(p.maxMessageID, b.Registered.MaxMessageID)
	lastID := b.LastEventID()
	if err := p.checkpoint(ctx, b.QueueID, lastID); err != nil {
		return err
	}
	q.Ack(lastID)
	p.setQueue(q.State(), p.maxMessageID)
	return nil
}

func (p *Pipeline) progress() {
	now := p.clock.Now()
	p.status.update(func(s *Status) { s.lastProgress = now })
}

func (p *Pipeline) setQueue(st source.State, maxMessageID int64) {
	p.status.update(func(s *Status) {
		s.registered = st.QueueID != ""
		s.queueID = st.QueueID
		s.lastEventID = st.LastEventID
		s.maxMessageID = maxMessageID
	})
	p.obs.LastEventID(st.LastEventID)
}

// spoolHandover checks a checkpoint's sink position against the spool
// setting and returns the one to read back from. With a spool, a spool
// position beyond what the spool holds means the spool was lost. Without
// one, a spool position (the spool was on in an earlier run) is replaced
// by the broker position the spool recorded once it had forwarded
// everything.
func (p *Pipeline) spoolHandover(ctx context.Context, pos json.RawMessage) (json.RawMessage, error) {
	seq, isSpool := spool.ParsePosition(pos)
	switch {
	case p.spool != nil && isSpool:
		have, err := p.spool.Position(ctx)
		if err != nil {
			return nil, err
		}
		if last, _ := spool.ParsePosition(have); seq > last {
			return nil, fmt.Errorf("%w: the checkpoint covers spool entries up to %d, but %s holds entries up to %d only: events acknowledged to Zulip are gone; restore the spool file or remove the checkpoint (a new queue starts, the gap is backfilled and reported in a resync event)",
				errSpoolLost, seq, p.spool.Path(), last)
		}
	case p.spool == nil && isSpool:
		if p.handover == nil {
			return nil, fmt.Errorf("the checkpoint was written with the spool on (BRIDGE_SPOOL), and no spool is left to say what reached the broker: turn the spool on again (example: BRIDGE_SPOOL=on)")
		}
		return p.handover, nil
	}
	return pos, nil
}
