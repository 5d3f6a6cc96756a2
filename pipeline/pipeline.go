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
)

// Pipeline moves events from one Zulip queue to one sink. Create it with New
// and call Run once.
type Pipeline struct {
	cfg    Config
	site   source.Site
	client *source.Client
	mapper *mapping.Mapper
	sink   sink.Sink
	// rec is sink as a sink.Recoverer, nil when it is not one: asserted
	// once, in New.
	rec     sink.Recoverer
	store   checkpoint.Store
	log     *slog.Logger
	clock   clockwork.Clock
	backoff source.Backoff
	obs     Observer
	status  Status
	// maxBytes is Deps.MaxMessageBytes.
	maxBytes int

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
	// pos is a sink position taken after the last confirmed publish (or at
	// the start): after a publish whose outcome is unknown, what the broker
	// holds after it is read back so that the retry does not store
	// anything twice. Only the goroutine publishing uses it.
	pos json.RawMessage
	// brokerDown is true between a failed publish and the next success, so
	// that the change is logged once each way, not per retry.
	brokerDown bool
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
		sink: d.Sink, store: d.Store, log: d.Logger, clock: d.Clock, backoff: d.Backoff,
		obs: d.Observer, skip: map[string]struct{}{}, lastPage: map[string]struct{}{},
		maxBytes: d.MaxMessageBytes,
	}
	p.rec, _ = d.Sink.(sink.Recoverer)
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
func (p *Pipeline) Run(ctx context.Context) error {
	work, cancelWork := p.drainContext(ctx)
	defer cancelWork()
	p.status.update(func(s *Status) { s.running = true; s.lastProgress = p.clock.Now() })
	defer p.status.update(func(s *Status) { s.running = false; s.registered = false })

	state, err := p.recover(work)
	if err != nil {
		return stopped(ctx, err)
	}
	if p.rec != nil {
		if p.pos, err = p.position(work); err != nil {
			return stopped(ctx, err)
		}
	}
	q, err := p.client.Open(ctx, state)
	if err != nil {
		return stopped(ctx, fmt.Errorf("open event queue: %w", err))
	}
	p.setQueue(q.State(), p.maxMessageID)
	for ctx.Err() == nil {
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
// finish instead of throwing away work the broker may already hold.
func (p *Pipeline) drainContext(ctx context.Context) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := p.clock.AfterFunc(p.cfg.ShutdownTimeout, cancel)
		context.AfterFunc(work, func() { t.Stop() })
	})
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
	p.maxMessageID = cp.MaxMessageID
	if p.rec != nil {
		var keys map[string]struct{}
		err := p.retry(ctx, "read back published messages", func() error {
			var err error
			keys, err = p.rec.PublishedSince(ctx, cp.SinkPosition)
			return err
		})
		if err != nil {
			return source.State{}, err
		}
		for k := range keys {
			p.skip[k] = struct{}{}
		}
		p.log.Info("read back messages published after the checkpoint", "count", len(keys))
	}
	p.log.Info("resuming event queue", "queue_id", cp.QueueID, "last_event_id", cp.LastEventID, "max_message_id", cp.MaxMessageID)
	return source.State{QueueID: cp.QueueID, LastEventID: cp.LastEventID, MaxMessageID: cp.MaxMessageID}, nil
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
