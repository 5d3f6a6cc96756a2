package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/segmentio/kafka-go"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// Sink publishes bridge batches to Kafka. It implements sink.Sink,
// sink.Recoverer and sink.ReadyChecker.
type Sink struct {
	cfg       Config
	log       *slog.Logger
	clock     clockwork.Clock
	transport *kafka.Transport
	// client serves the caller's requests (metadata, offsets, fetches),
	// each bounded by the caller's context; producer sends the produce
	// requests, each bounded by WriteTimeout.
	client   *kafka.Client
	producer *kafka.Client
	codec    kafka.Compression
	// roundRobin counts the keyless records balance placed; only Publish
	// uses it, and a Sink is used by one goroutine at a time.
	roundRobin uint32

	mu sync.Mutex // guards the fields below
	// floors holds, per partition of an owned topic, an offset at or after
	// which everything this sink confirms from now on lands: the end
	// offset when we first saw the partition, raised past every confirmed
	// write. Position is a copy of it. Produce requests raise it from
	// their own goroutines.
	floors map[partition]int64
	// discovered is when the owned topics were last listed; zero: never.
	discovered time.Time
	// dirty holds, per topic, where to read back from before the next
	// write: set when a write failed, because a failed write may still
	// have been stored. A partition of a dirty topic missing from the
	// inner map is read from its earliest offset.
	dirty map[string]map[int32]int64
	// inflight is closed when the produce requests of the last Publish
	// have all finished; nil when none is left. A cancelled Publish
	// leaves it set: its requests cannot be taken back.
	inflight chan struct{}
	closed   bool
}

type partition struct {
	topic string
	id    int32
}

// Option configures a Sink beyond its Config. An option that cannot apply
// its value makes New fail.
type Option func(*Sink) error

// WithLogger sets the logger of connection problems, topic creation and
// read-back progress; nothing is logged per message. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(s *Sink) error {
		if l == nil {
			return errors.New("kafka sink: WithLogger(nil): pass a logger, or no option to discard")
		}
		s.log = l.With("component", "kafka")
		return nil
	}
}

// WithClock sets the clock that paces progress logs and topic discovery;
// tests pass a clockwork.FakeClock.
func WithClock(c clockwork.Clock) Option {
	return func(s *Sink) error {
		if c == nil {
			return errors.New("kafka sink: WithClock(nil): pass a clock, or no option for the real one")
		}
		s.clock = c
		return nil
	}
}

// discoverInterval is how often Position lists the cluster's topics (from
// the transport's metadata cache, no round trip) to give new owned topics
// a floor. It only shortens read-backs: a topic missing from a position is
// read from its start.
const discoverInterval = 30 * time.Second

// New returns a sink for cfg, built like the NATS sink's New. Unlike it, it
// does not connect: kafka-go dials per request, so the first Publish, Ready
// or PublishedSince does, each bounded by its own context; ctx is not kept.
func New(ctx context.Context, cfg Config, opts ...Option) (*Sink, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err // each names its variable
	}
	transport, err := newTransport(cfg)
	if err != nil {
		return nil, err // each names its variable
	}
	brokers := make([]string, len(cfg.Brokers))
	for i, b := range cfg.Brokers {
		brokers[i] = strings.TrimSpace(b)
	}
	addr := kafka.TCP(brokers...)
	s := &Sink{
		cfg:       cfg,
		log:       slog.New(slog.DiscardHandler),
		clock:     clockwork.NewRealClock(),
		transport: transport,
		client:    &kafka.Client{Addr: addr, Transport: transport},
		// Like kafka-go's Writer: the client timeout also sets the
		// produce request's own timeout, how long the broker waits for
		// the in-sync replicas.
		producer: &kafka.Client{Addr: addr, Transport: transport, Timeout: cfg.WriteTimeout},
		codec:    compression(cfg.Compression),
		floors:   make(map[partition]int64),
		dirty:    make(map[string]map[int32]int64),
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Publish sends msgs and returns once Kafka (all in-sync replicas) has
// confirmed every one, or says which ones it did not (sink.Sink).
//
// Each partition gets its records in produce requests of at most
// BatchSize records and BatchBytes bytes, sent one after the other; the
// partitions go at once, and nothing waits for more records: Publish has
// the whole batch. A request is stored all or none, and a partition stops
// at its first failed request, so that the *sink.PublishError lists that
// request's records and every later one of the same partition, which keeps
// every key in order; the other partitions go on. After a failure, the next
// Publish first reads back the topics concerned and skips what is already
// stored, so a retry never stores a record twice.
func (s *Sink) Publish(ctx context.Context, msgs []*mapping.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := checkBatch(msgs, s.cfg); err != nil {
		return fmt.Errorf("kafka publish: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafka publish: %w", err)
	}
	if err := s.settle(ctx); err != nil {
		return fmt.Errorf("kafka publish: %w", err)
	}
	counts, err := s.ensureTopics(ctx, msgs)
	if err != nil {
		return fmt.Errorf("kafka publish: %w", withContext(ctx, err))
	}
	stored, err := s.readBackDirty(ctx, msgs)
	if err != nil {
		return fmt.Errorf("kafka publish: %w", withContext(ctx, err))
	}

	pending := make([]int, 0, len(msgs))
	for i, m := range msgs {
		if _, ok := stored[m.DedupKey]; !ok {
			pending = append(pending, i)
		}
	}
	if len(pending) < len(msgs) {
		s.log.Info("kafka: skipped messages a failed publish had stored", "skipped", len(msgs)-len(pending), "batch", len(msgs))
	}
	if len(pending) == 0 {
		return nil
	}
	// Where a failed request may have stored records: any record it
	// stored lies at or after these.
	before := s.floorsOf(msgs)
	return s.send(ctx, msgs, s.plan(msgs, pending, counts), before)
}

// withContext makes err match ctx's error when ctx is done: kafka-go turns
// a context deadline into a connection deadline, whose timeout can beat
// the context's own timer, and callers test for context.Canceled and
// context.DeadlineExceeded.
func withContext(ctx context.Context, err error) error {
	ctxErr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && ctxErr == nil && !time.Now().Before(d) {
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w: %w", ctxErr, err)
	}
	return err
}

// settle waits for the produce requests a cancelled Publish left in
// flight, so that a read-back sees whatever they stored.
func (s *Sink) settle(ctx context.Context) error {
	s.mu.Lock()
	inflight := s.inflight
	s.mu.Unlock()
	if inflight == nil {
		return nil
	}
	select {
	case <-inflight:
	case <-ctx.Done():
		return fmt.Errorf("wait for the write of a cancelled publish: %w", ctx.Err())
	}
	s.mu.Lock()
	if s.inflight == inflight {
		s.inflight = nil
	}
	s.mu.Unlock()
	return nil
}

// floorsOf copies the floors of every partition of the topics of msgs.
func (s *Sink) floorsOf(msgs []*mapping.Message) map[partition]int64 {
	topics := topicsOf(msgs)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[partition]int64)
	for p, off := range s.floors {
		if _, ok := topics[p.topic]; ok {
			out[p] = off
		}
	}
	return out
}

// markDirty records that topics may hold records of a failed write, from
// the floors taken before it on.
func (s *Sink) markDirty(topics map[string]struct{}, before map[partition]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic := range topics {
		if _, ok := s.dirty[topic]; ok {
			continue
		}
		from := make(map[int32]int64)
		for p, off := range before {
			if p.topic == topic {
				from[p.id] = off
			}
		}
		s.dirty[topic] = from
	}
}

func topicsOf(msgs []*mapping.Message) map[string]struct{} {
	topics := make(map[string]struct{})
	for _, m := range msgs {
		topics[m.Topic] = struct{}{}
	}
	return topics
}

// recordSize is an upper bound of the size of m's record in a produce
// request, checked against BatchBytes: varints counted at their widest.
func recordSize(m *mapping.Message) int64 {
	n := int64(4 + 1 + 1 + 4 + len(m.Key) + 4 + len(m.Payload) + 8 + 5)
	for _, h := range m.Headers {
		n += int64(5 + len(h.Key) + 5 + len(h.Value))
	}
	return n
}

// checkBatch rejects, before anything is sent, messages that no retry
// could ever publish.
func checkBatch(msgs []*mapping.Message, cfg Config) error {
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("message %d is nil", i)
		}
		if err := ValidateTopic(m.Topic); err != nil {
			return fmt.Errorf("message %d (%s): %w", i, m.DedupKey, err)
		}
		if !strings.HasPrefix(m.Topic, cfg.TopicPrefix) {
			return fmt.Errorf("message %d (%s): %w: %q does not start with BRIDGE_KAFKA_TOPIC_PREFIX=%q, so a restarted bridge would not read it back",
				i, m.DedupKey, ErrTopicNotOwned, m.Topic, cfg.TopicPrefix)
		}
		if n := recordSize(m); n > cfg.BatchBytes {
			return fmt.Errorf("message %d (%s): %w: about %d bytes, BRIDGE_KAFKA_BATCH_BYTES=%d", i, m.DedupKey, ErrMessageTooLarge, n, cfg.BatchBytes)
		}
	}
	return nil
}

func (s *Sink) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// Close waits for produce requests in flight, then closes the idle
// connections. When ctx ends first it returns ctx's error and the requests,
// each bounded by the write timeout, finish in the background.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	inflight := s.inflight
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		if inflight != nil {
			<-inflight
		}
		s.transport.CloseIdleConnections()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close kafka sink: %w", ctx.Err())
	}
}

// Ready reports whether the brokers answer: one live round trip, and the
// state of the transport's last metadata refresh (sink.ReadyChecker).
func (s *Sink) Ready(ctx context.Context) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if _, err := s.client.ApiVersions(ctx, &kafka.ApiVersionsRequest{}); err != nil {
		return fmt.Errorf("kafka not ready: %w", withContext(ctx, err))
	}
	md, err := s.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}})
	if err != nil {
		return fmt.Errorf("kafka not ready: %w", withContext(ctx, err))
	}
	if len(md.Brokers) == 0 {
		return errors.New("kafka not ready: metadata lists no broker")
	}
	return nil
}

var (
	_ sink.Sink         = (*Sink)(nil)
	_ sink.Recoverer    = (*Sink)(nil)
	_ sink.ReadyChecker = (*Sink)(nil)
)

// Client returns the sink's Kafka client: the same brokers, TLS and SASL,
// for components that need their own requests, such as the checkpoint
// store's compacted topic. It is valid until Close.
func (s *Sink) Client() *kafka.Client { return s.client }

// limitHeadroom is what MaxMessageBytes keeps back from BatchBytes: the
// record framing recordSize counts beyond sink.Size, and the trace headers
// a wrapper adds after the caller's check.
const limitHeadroom = 1024

// MaxMessageBytes is the largest message Publish accepts, by sink.Size
// (sink.Limiter): BRIDGE_KAFKA_BATCH_BYTES less headroom.
func (s *Sink) MaxMessageBytes() int { return int(s.cfg.BatchBytes) - limitHeadroom }
