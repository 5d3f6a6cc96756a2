package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	client    *kafka.Client
	writer    *kafka.Writer

	mu sync.Mutex // guards the fields below
	// floors holds, per partition of an owned topic, an offset at or after
	// which everything this sink confirms from now on lands: the end
	// offset when we first saw the partition, raised past every confirmed
	// write. Position is a copy of it. The writer's completion callback
	// raises it from its own goroutines.
	floors map[partition]int64
	// ready holds the topics ensureTopics found (or created), so that it
	// asks the metadata cache once per topic, not once per batch.
	ready map[string]bool
	// discovered is when the owned topics were last listed; zero: never.
	discovered time.Time
	// dirty holds, per topic, where to read back from before the next
	// write: set when a write failed, because a failed write may still
	// have been stored. A partition of a dirty topic missing from the
	// inner map is read from its earliest offset.
	dirty map[string]map[int32]int64
	// inflight is closed when the write that a cancelled Publish left
	// behind has finished; nil when there is none.
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
		floors:    make(map[partition]int64),
		ready:     make(map[string]bool),
		dirty:     make(map[string]map[int32]int64),
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.writer = &kafka.Writer{
		Addr:      addr,
		Transport: transport,
		// Same key, same partition: kafka-go's FNV-1a hash (Sarama's
		// partitioner). Keyless events go round robin.
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		// A retry inside the writer after an answer was lost would store
		// the records twice. Failures go back to the caller instead, and
		// the next Publish reads back what the failed one stored.
		MaxAttempts:  1,
		BatchSize:    cfg.BatchSize,
		BatchBytes:   cfg.BatchBytes,
		BatchTimeout: cfg.BatchTimeout,
		WriteTimeout: cfg.WriteTimeout,
		ReadTimeout:  cfg.WriteTimeout,
		Compression:  compression(cfg.Compression),
		Completion:   s.completed,
		// Auto creation would let the broker choose the partition count,
		// and a typo in a template would create topics silently.
		AllowAutoTopicCreation: false,
	}
	return s, nil
}

// completed runs on the writer's goroutines once per partition batch.
func (s *Sink) completed(msgs []kafka.Message, err error) {
	if err != nil || len(msgs) == 0 {
		return
	}
	last := msgs[len(msgs)-1]
	p := partition{last.Topic, int32(last.Partition)}
	s.mu.Lock()
	if next := last.Offset + 1; next > s.floors[p] {
		s.floors[p] = next
	}
	s.mu.Unlock()
}

// Publish sends msgs and returns once Kafka (all in-sync replicas) has
// confirmed every one, or says which ones it did not (sink.Sink).
//
// Messages go out in rounds of at most BatchSize records and BatchBytes
// bytes, so that each round puts at most one produce request on every
// partition: a partition's records are then stored all or none, and
// stopping at the first round that fails keeps every key in order. After a
// failure, the next Publish first reads back the partitions concerned and
// skips what is already stored, so a retry never stores a record twice.
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
	if err := s.settle(ctx); err != nil {
		return fmt.Errorf("kafka publish: %w", err)
	}
	if err := s.ensureTopics(ctx, msgs); err != nil {
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
	// Where a failed round may have stored records: any record it stored
	// lies at or after these.
	before := s.floorsOf(msgs)
	now := s.clock.Now()
	for start := 0; start < len(pending); {
		end := s.roundEnd(msgs, pending, start)
		round := records(msgs, pending[start:end], now)
		if err := s.write(ctx, round); err != nil {
			s.markDirty(round, before)
			return &sink.PublishError{Failed: failedIndexes(pending, start, end, err), Err: summarize(err)}
		}
		start = end
	}
	return nil
}

// roundEnd returns the end of the round that starts at pending[start]: as
// many messages as fit in one produce request per partition.
func (s *Sink) roundEnd(msgs []*mapping.Message, pending []int, start int) int {
	var bytes int64
	end := start
	for end < len(pending) && end-start < s.cfg.BatchSize {
		n := recordSize(msgs[pending[end]])
		if end > start && bytes+n > s.cfg.BatchBytes {
			break
		}
		bytes += n
		end++
	}
	return end
}

// failedIndexes lists the batch indexes a failed round leaves unconfirmed:
// the round's records the writer reports failed (all of a partition's, as
// the round sent one request per partition) and every later round.
func failedIndexes(pending []int, start, end int, err error) []int {
	var failed []int
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == end-start {
		for j, e := range werrs {
			if e != nil {
				failed = append(failed, pending[start+j])
			}
		}
	} else {
		failed = append(failed, pending[start:end]...)
	}
	return append(failed, pending[end:]...)
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

// summarize turns kafka.WriteErrors, one error per record, into one error
// per distinct cause, still matched by errors.Is.
func summarize(err error) error {
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) {
		return err
	}
	var causes []error
	seen := make(map[string]bool)
	for _, e := range werrs {
		if e != nil && !seen[e.Error()] {
			seen[e.Error()] = true
			causes = append(causes, e)
		}
	}
	return fmt.Errorf("kafka write failed for %d of %d records: %w", werrs.Count(), len(werrs), errors.Join(causes...))
}

// write hands one round to the writer and waits for it. If ctx ends first
// it returns at once, and the round, which the writer cannot take back,
// goes on in the background: settle waits for it before anything else
// touches the partitions.
func (s *Sink) write(ctx context.Context, round []kafka.Message) error {
	// The writer's own timeouts bound each produce request; this only
	// guards its metadata lookups, which use the context we pass.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*s.cfg.WriteTimeout+s.cfg.BatchTimeout)
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		defer cancel()
		err = s.writer.WriteMessages(wctx, round...)
	}()
	select {
	case <-done:
		if errors.Is(err, io.ErrClosedPipe) {
			return ErrClosed
		}
		return err
	case <-ctx.Done():
		s.mu.Lock()
		s.inflight = done
		s.mu.Unlock()
		return ctx.Err()
	}
}

// settle waits for the write a cancelled Publish left in flight, so that a
// read-back sees whatever it stored.
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

// markDirty records that the topics of round may hold records of a failed
// write, from the floors taken before it on. It also forgets that the
// topics exist: the failure may be their deletion.
func (s *Sink) markDirty(round []kafka.Message, before map[partition]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range round {
		delete(s.ready, r.Topic)
		if _, ok := s.dirty[r.Topic]; ok {
			continue
		}
		from := make(map[int32]int64)
		for p, off := range before {
			if p.topic == r.Topic {
				from[p.id] = off
			}
		}
		s.dirty[r.Topic] = from
	}
}

func topicsOf(msgs []*mapping.Message) map[string]struct{} {
	topics := make(map[string]struct{})
	for _, m := range msgs {
		topics[m.Topic] = struct{}{}
	}
	return topics
}

// records turns the messages at idx into Kafka records (docs/names.md).
// Header values share one buffer and headers one array: a record holds
// about ten headers, and an allocation each would double the sink's cost
// over a bare writer.
func records(msgs []*mapping.Message, idx []int, now time.Time) []kafka.Message {
	nh, nb := 0, 0
	for _, i := range idx {
		nh += len(msgs[i].Headers)
		for _, h := range msgs[i].Headers {
			nb += len(h.Value)
		}
	}
	headers := make([]kafka.Header, 0, nh)
	buf := make([]byte, 0, nb)
	out := make([]kafka.Message, len(idx))
	for j, i := range idx {
		m := msgs[i]
		first := len(headers)
		for _, h := range m.Headers {
			start := len(buf)
			buf = append(buf, h.Value...)
			headers = append(headers, kafka.Header{Key: h.Key, Value: buf[start:len(buf):len(buf)]})
		}
		out[j] = kafka.Message{
			Topic:   m.Topic,
			Key:     m.Key,
			Value:   m.Payload,
			Headers: headers[first:len(headers):len(headers)],
			Time:    now,
		}
	}
	return out
}

// recordSize is an upper bound of the size kafka-go counts for m against
// BatchBytes: varints counted at their widest.
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

// Close waits for writes in flight, then closes the writer and its
// connections. When ctx ends first it returns ctx's error and the writer
// finishes closing in the background, bounded by the write timeout.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	inflight := s.inflight
	s.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		if inflight != nil {
			<-inflight
		}
		err := s.writer.Close()
		s.transport.CloseIdleConnections()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("close kafka writer: %w", err)
		}
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
