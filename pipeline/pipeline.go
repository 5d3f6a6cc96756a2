package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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
	cfg     Config
	site    source.Site
	client  *source.Client
	mapper  *mapping.Mapper
	sink    sink.Sink
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
	// pos is the sink position of the last checkpoint (or of the start):
	// after a publish whose outcome is unknown, what the broker holds after
	// it is read back so that the retry does not store anything twice.
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
	if rec, ok := p.sink.(sink.Recoverer); ok {
		if err := p.retry(work, "sink position", func() error {
			actx, cancel := p.attempt(work)
			defer cancel()
			var err error
			p.pos, err = rec.Position(actx)
			return err
		}); err != nil {
			return stopped(ctx, err)
		}
	}
	q, err := p.client.Open(ctx, state)
	if err != nil {
		return stopped(ctx, fmt.Errorf("open event queue: %w", err))
	}
	p.setQueue(q.State())
	for ctx.Err() == nil {
		b, err := q.Next(ctx)
		p.progress()
		if err != nil {
			return stopped(ctx, fmt.Errorf("poll events: %w", err))
		}
		bctx, end := p.obs.Batch(work, b.QueueID, len(b.Events))
		err = p.handle(bctx, q, b)
		end(err)
		if err != nil {
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
	if rec, ok := p.sink.(sink.Recoverer); ok {
		var keys map[string]struct{}
		err := p.retry(ctx, "read back published messages", func() error {
			var err error
			keys, err = rec.PublishedSince(ctx, cp.SinkPosition)
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

// handle runs one batch through map, publish, checkpoint and acknowledge.
func (p *Pipeline) handle(ctx context.Context, q *source.Queue, b source.Batch) error {
	if b.Registered != nil {
		p.log.Info("registered event queue", "queue_id", b.Registered.QueueID, "max_message_id", b.Registered.MaxMessageID, "zulip_feature_level", b.Registered.FeatureLevel)
		p.obs.Registered(b.Lost != nil)
		if p.cfg.PublishInitialState {
			if err := p.publishControl(ctx, "state", b.Registered.QueueID, b.Registered.Raw); err != nil {
				return err
			}
		}
	}
	if b.Lost != nil {
		if err := p.resync(ctx, b); err != nil {
			return err
		}
	}
	if b.Registered != nil {
		// Messages up to the registration's max_message_id were either
		// before the bridge's time (a first registration starts "now") or
		// just backfilled; the new queue delivers the ones after it.
		p.maxMessageID = max(p.maxMessageID, b.Registered.MaxMessageID)
	}

	msgs := make([]*mapping.Message, 0, len(b.Events))
	for _, ev := range b.Events {
		p.maxMessageID = max(p.maxMessageID, ev.MessageID)
		p.obs.Received(ev.Type)
		if ev.Heartbeat && !p.cfg.PublishHeartbeats {
			p.obs.Skipped(ev.Type, "heartbeat")
			continue
		}
		m, err := p.mapper.Map(ev.Raw, b.QueueID)
		if err != nil {
			// The event cannot become a valid message (e.g. a template
			// renders an invalid name for it). Acknowledging it silently
			// would lose it, refusing it would wedge the queue: it goes to
			// the invalid control subject with the reason, byte for byte.
			p.log.Warn("event cannot be mapped; publishing it as a bridge.invalid control event", "event_id", ev.ID, "type", ev.Type, "error", err)
			if m, err = p.invalid(b.QueueID, eventRef(ev), ev.Raw, err); err != nil {
				return err
			}
		}
		if p.published(m.DedupKey) {
			p.obs.Skipped(ev.Type, "duplicate")
			continue
		}
		if m, err = p.fit(m, b.QueueID, eventRef(ev)); err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if err := p.publish(ctx, msgs); err != nil {
		return err
	}
	lastID := b.LastEventID()
	if err := p.checkpoint(ctx, b.QueueID, lastID); err != nil {
		return err
	}
	q.Ack(lastID)
	p.setQueue(q.State())
	return nil
}

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
			if err := p.sleep(ctx, p.backoff(attempt)); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			pending = p.notStored(ctx, pending)
		}
	}
	return nil
}

// checkpoint durably records that everything up to lastEventID of queueID
// is in the broker, retrying while the store is unavailable.
func (p *Pipeline) checkpoint(ctx context.Context, queueID string, lastEventID int64) error {
	cp := checkpoint.Checkpoint{
		Site: p.site.String(), QueueID: queueID, LastEventID: lastEventID, MaxMessageID: p.maxMessageID,
	}
	return p.retry(ctx, "write checkpoint", func() error {
		actx, cancel := p.attempt(ctx)
		defer cancel()
		if rec, ok := p.sink.(sink.Recoverer); ok {
			pos, err := rec.Position(actx)
			if err != nil {
				return fmt.Errorf("sink position: %w", err)
			}
			cp.SinkPosition = pos
		}
		cp.UpdatedAt = p.clock.Now().UTC()
		if err := p.store.Save(actx, cp); err != nil {
			return err
		}
		p.pos = cp.SinkPosition
		return nil
	})
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
		if err := p.sleep(ctx, p.backoff(attempt)); err != nil {
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
	rec, ok := p.sink.(sink.Recoverer)
	if !ok || p.pos == nil || len(msgs) == 0 {
		return msgs
	}
	actx, cancel := p.attempt(ctx)
	defer cancel()
	stored, err := rec.PublishedSince(actx, p.pos)
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

func (p *Pipeline) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := p.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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

func (p *Pipeline) progress() {
	now := p.clock.Now()
	p.status.update(func(s *Status) { s.lastProgress = now })
}

func (p *Pipeline) setQueue(st source.State) {
	p.status.update(func(s *Status) {
		s.registered = st.QueueID != ""
		s.queueID = st.QueueID
		s.lastEventID = st.LastEventID
		s.maxMessageID = p.maxMessageID
	})
	p.obs.LastEventID(st.LastEventID)
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
		notice, _ := json.Marshal(tooLarge{Reason: "too large for the broker", Bytes: sink.Size(m), Limit: p.maxBytes, DedupKey: m.DedupKey})
		if m, err = p.mapper.Control(kind, queueID, notice); err != nil {
			return fmt.Errorf("control event %s: %w", kind, err)
		}
	}
	return p.publish(ctx, []*mapping.Message{m})
}

// published reports whether the broker already holds the message with key
// though no checkpoint says so.
func (p *Pipeline) published(key string) bool {
	_, a := p.skip[key]
	_, b := p.lastPage[key]
	return a || b
}

// invalid wraps an event (or backfilled message) that cannot be mapped into
// a <prefix>.bridge.invalid control event: the reason and the original JSON
// byte for byte, under the dedup key the event itself would have had, so
// that it is published once like any other.
func (p *Pipeline) invalid(queueID, id string, raw json.RawMessage, cause error) (*mapping.Message, error) {
	// Built by hand: json.Marshal would compact the event and escape <, >
	// and & in it, and an error from it would stop the bridge on the very
	// event it is meant to carry past.
	payload := append([]byte(`{"reason":`), jsonString(cause.Error())...)
	payload = append(payload, `,"id":`...)
	payload = append(payload, jsonString(id)...)
	payload = append(payload, `,"event":`...)
	if json.Valid(raw) {
		payload = append(payload, raw...)
	} else {
		// The source hands out parsed JSON only; should that ever fail,
		// the bytes travel as a string rather than being lost.
		payload = append(payload, jsonString(string(raw))...)
	}
	payload = append(payload, '}')
	m, err := p.mapper.ControlWithID("invalid", queueID, id, payload)
	if err != nil {
		return nil, fmt.Errorf("invalid event %s: %w", id, err)
	}
	return m, nil
}

// jsonString returns s as a JSON string.
func jsonString(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// tooLarge is the payload of the notice that stands for a message larger
// than the broker takes.
type tooLarge struct {
	Reason   string `json:"reason"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	DedupKey string `json:"dedup_key"`
	Subject  string `json:"subject,omitempty"`
	Topic    string `json:"topic,omitempty"`
	Bytes    int    `json:"bytes"`
	Limit    int    `json:"limit"`
}

// fit returns m if the broker can take it. A larger message could never be
// published: retrying it would hold every later event back until the queue
// is lost. It is set aside, loudly: a <prefix>.bridge.invalid notice takes
// its place, under its dedup key, saying what it was and how large (the
// event itself stays in Zulip, e.g. a message by its id).
func (p *Pipeline) fit(m *mapping.Message, queueID, id string) (*mapping.Message, error) {
	n := sink.Size(m)
	if p.maxBytes <= 0 || n <= p.maxBytes {
		return m, nil
	}
	typ, _ := m.Get(mapping.HeaderEventType)
	p.log.Error("message too large for the broker; publishing a bridge.invalid notice in its place",
		"dedup_key", m.DedupKey, "type", typ, "bytes", n, "limit", p.maxBytes)
	payload, err := json.Marshal(tooLarge{
		Reason: fmt.Sprintf("message of %d bytes exceeds the broker's limit of %d bytes", n, p.maxBytes),
		ID:     id, Type: typ, DedupKey: m.DedupKey, Subject: m.Subject, Topic: m.Topic, Bytes: n, Limit: p.maxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("too large message %s: %w", m.DedupKey, err)
	}
	notice, err := p.mapper.ControlWithID("invalid", queueID, id, payload)
	if err != nil {
		return nil, fmt.Errorf("too large message %s: %w", m.DedupKey, err)
	}
	return notice, nil
}

// eventRef names an event for mapping.ControlWithID, so that a control event
// standing for it has the event's own dedup key: by message id for message
// events (stable across queues), by event id for the others.
func eventRef(ev source.Event) string {
	if ev.MessageID > 0 {
		return "message/" + strconv.FormatInt(ev.MessageID, 10)
	}
	return strconv.FormatInt(ev.ID, 10)
}
