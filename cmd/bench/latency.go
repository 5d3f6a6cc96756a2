package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
)

const (
	// rawPrefix names the raw path's stream subjects and topic, beside the
	// bridge's on the same broker.
	rawPrefix = "benchraw"
	// receiveTimeout bounds the wait for the last messages of a latency
	// measurement once the traffic stopped.
	receiveTimeout = 30 * time.Second
)

// stamps matches what a consumer receives with when it was injected or
// published, by key, whichever of the two happens first.
type stamps struct {
	mu       sync.Mutex
	sent     map[string]time.Time
	early    map[string]time.Time // received before its injection time was recorded
	lat      []time.Duration
	received int
	measure  bool
}

func newStamps() *stamps {
	return &stamps{sent: map[string]time.Time{}, early: map[string]time.Time{}}
}

// sentAt records key's injection; measured says whether its latency
// counts (traffic of the warm-up does not).
func (s *stamps) sentAt(key string, at time.Time, measured bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if got, ok := s.early[key]; ok {
		delete(s.early, key)
		if measured {
			s.lat = append(s.lat, max(0, got.Sub(at)))
		}
		return
	}
	if measured {
		s.sent[key] = at
	}
}

// got records that a consumer received key at at.
func (s *stamps) got(key string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received++
	if t, ok := s.sent[key]; ok {
		delete(s.sent, key)
		s.lat = append(s.lat, at.Sub(t))
		return
	}
	s.early[key] = at
}

func (s *stamps) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

func (s *stamps) latencies() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.lat...)
}

// eventKey identifies a message of the bridge by what the simulator's
// Generator reports: message events by message id, the others by their
// event id in the bridge's queue.
func eventKey(typ, messageID, eventID string) string {
	if typ == "message" {
		return "m:" + messageID
	}
	return "e:" + eventID
}

// pace calls f at rate per second for d, on schedule: a late call is not
// made up for with a pause, the next ones follow at once. warm is the
// first part of d whose calls are not measured.
func pace(ctx context.Context, rate float64, d, warm time.Duration, f func(i int, measured bool) error) error {
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; ; i++ {
		due := time.Duration(i) * interval
		if due >= d {
			return nil
		}
		if wait := time.Until(start.Add(due)); wait > 0 {
			if err := sleepCtx(ctx, wait); err != nil {
				return err
			}
		}
		if err := f(i, due >= warm); err != nil {
			return err
		}
	}
}

// warmUp is the part of a latency measurement that is not counted:
// connections, topic metadata and the first allocations.
func (b *bench) warmUp() time.Duration {
	return min(time.Second, b.cfg.duration/10)
}

// waitCount waits until count() reaches want.
func waitCount(ctx context.Context, what string, want int, count func() (int, error)) error {
	deadline := time.Now().Add(receiveTimeout)
	for {
		n, err := count()
		if err != nil {
			return err
		}
		if n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: received %d of %d messages within %s", what, n, want, receiveTimeout)
		}
		if err := sleepCtx(ctx, pollEvery); err != nil {
			return err
		}
	}
}

// latency measures, for one sink, what the bridge adds between the
// injection of an event into Zulip and its arrival at a consumer, at -rate
// for -duration, against the broker's own publish-to-consumer path on the
// same broker and clock with messages of the same sizes.
func (b *bench) latency(ctx context.Context, sink string) (*latencyResult, error) {
	sim, err := newSimulator()
	if err != nil {
		return nil, err
	}
	defer sim.Close()
	dir, err := tempDir(b.dir, "latency-"+sink+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	br, err := startBroker(sink, filepath.Join(dir, "broker"))
	if err != nil {
		return nil, err
	}
	defer br.close()
	tr, err := newTraffic(sim, b.cfg.mix, b.cfg.seed, false)
	if err != nil {
		return nil, err
	}
	if err := br.prepare(ctx, tr.types()); err != nil {
		return nil, err
	}
	var c consumer
	switch br := br.(type) {
	case *natsBroker:
		c = &natsConsumer{b: br}
	case *kafkaBroker:
		c = &kafkaConsumer{b: br, topics: bridgeTopics(tr.types())}
	}
	spec, err := b.newSpec(sim, filepath.Join(dir, "state"), br, spoolOff)
	if err != nil {
		return nil, err
	}
	p, err := spec.start(b.profilePath(sink + "-latency"))
	if err != nil {
		return nil, err
	}
	defer p.kill()
	queueID, err := p.waitReady(ctx, sim, nil, readyTimeout)
	if err != nil {
		return nil, err
	}
	bridged := newStamps()
	stop, err := c.consume(ctx, prefix, bridged, func(h header) string {
		return eventKey(h("Zulip-Event-Type"), h("Zulip-Message-Id"), h("Zulip-Event-Id"))
	})
	if err != nil {
		return nil, err
	}
	err = pace(ctx, b.cfg.rate, b.cfg.duration, b.warmUp(), func(_ int, measured bool) error {
		g, err := tr.step()
		at := time.Now()
		if err != nil {
			return err
		}
		switch id, ok := g.Queues[queueID]; {
		case g.Kind == "message":
			// Only messages the bot can see reach its queue; the others
			// are never received and never matched.
			bridged.sentAt(eventKey("message", strconv.FormatInt(g.MessageID, 10), ""), at, measured)
		case ok:
			bridged.sentAt(eventKey(g.Kind, "", strconv.FormatInt(id, 10)), at, measured)
		}
		return nil
	})
	if err != nil {
		stop()
		return nil, err
	}
	// Events injected at the end may not be delivered yet: wait until the
	// queue is acknowledged through its last event, then for every event
	// it delivered.
	err = waitCount(ctx, sink+" bridge acknowledgement", 1, func() (int, error) {
		if h, _ := sim.History(queueID); h.Acked >= h.Info.LastEventID {
			return 1, nil
		}
		return 0, nil
	})
	delivered := 0
	for _, ev := range sim.Delivered(queueID) {
		if ev.Type != "heartbeat" {
			delivered++
		}
	}
	if err == nil {
		err = waitCount(ctx, sink+" bridge", delivered, func() (int, error) { return bridged.count(), nil })
	}
	stop()
	if err != nil {
		return nil, err
	}
	mem, err := p.memory()
	if err != nil {
		return nil, err
	}
	if err := p.stop(stopTimeout); err != nil {
		return nil, err
	}
	stored, err := br.readBack(ctx)
	if err != nil {
		return nil, err
	}
	if stored.len() != delivered {
		return nil, fmt.Errorf("%s: the broker holds %d messages, the queue delivered %d events", sink, stored.len(), delivered)
	}

	raw, err := b.rawLatency(ctx, c, stored)
	if err != nil {
		return nil, err
	}
	res := &latencyResult{
		Events: len(bridged.latencies()), RawEvents: len(raw),
		Bridge: percentiles(bridged.latencies()), Raw: percentiles(raw),
		RSSMiB: mem.RSSMiB, PeakRSSMiB: mem.PeakMiB,
	}
	if res.Events == 0 || res.RawEvents == 0 {
		return nil, fmt.Errorf("%s: no latency measured (bridge %d, raw %d messages); raise -duration", sink, res.Events, res.RawEvents)
	}
	res.Added = percentileSet{P50: res.Bridge.P50 - res.Raw.P50, P99: res.Bridge.P99 - res.Raw.P99, P999: res.Bridge.P999 - res.Raw.P999}
	b.logf("latency %s: bridge p50 %.2f p99 %.2f p999 %.2f ms; raw p50 %.2f p99 %.2f p999 %.2f ms; RSS %.1f MiB",
		sink, res.Bridge.P50, res.Bridge.P99, res.Bridge.P999, res.Raw.P50, res.Raw.P99, res.Raw.P999, res.RSSMiB)
	return res, nil
}

// rawLatency publishes the bridge's messages again, at the same rate and
// for the same time, with the plain client under rawPrefix, and returns
// publish-to-receipt latencies.
func (b *bench) rawLatency(ctx context.Context, c consumer, stored backlog) ([]time.Duration, error) {
	pub, err := c.rawPublisher(ctx, stored)
	if err != nil {
		return nil, err
	}
	defer pub.close()
	st := newStamps()
	stop, err := c.consume(ctx, rawPrefix, st, func(h header) string { return h(rawSeqHeader) })
	if err != nil {
		return nil, err
	}
	sent := 0
	err = pace(ctx, b.cfg.rate, b.cfg.duration, b.warmUp(), func(i int, measured bool) error {
		st.sentAt(strconv.Itoa(i), time.Now(), measured)
		sent++
		return pub.publish(ctx, i)
	})
	if err == nil {
		err = pub.flush(ctx)
	}
	if err == nil {
		err = waitCount(ctx, "raw", sent, func() (int, error) { return st.count(), nil })
	}
	stop()
	if err != nil {
		return nil, err
	}
	return st.latencies(), nil
}

// rawSeqHeader carries the raw path's sequence number, in place of the
// bridge's dedup key (NATS: Nats-Msg-Id, Kafka: Zulip-Dedup-Key) so that
// the message keeps its size within a few bytes.
const rawSeqHeader = "Bench-Seq"

// header looks up a header value of a received message.
type header func(key string) string

// consumer receives a broker's messages as a downstream service would,
// and publishes the raw path's.
type consumer interface {
	// consume delivers every message under the subject or topic prefix
	// to st, keyed by key, until stop is called.
	consume(ctx context.Context, prefix string, st *stamps, key func(header) string) (stop func(), err error)
	rawPublisher(ctx context.Context, stored backlog) (rawPublisher, error)
}

type rawPublisher interface {
	// publish sends the i-th message (cycling through the backlog).
	publish(ctx context.Context, i int) error
	// flush waits for every publish to be confirmed.
	flush(ctx context.Context) error
	close()
}

// natsConsumer reads with an ordered consumer of the stream: what a
// downstream service sees once JetStream stored the message.
type natsConsumer struct {
	b *natsBroker
}

func (c *natsConsumer) consume(ctx context.Context, pfx string, st *stamps, key func(header) string) (func(), error) {
	stream := streamName
	if pfx == rawPrefix {
		stream = strings.ToUpper(rawPrefix)
	}
	cons, err := c.b.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		at := time.Now()
		h := m.Headers()
		st.got(key(h.Get), at)
	})
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	return cc.Stop, nil
}

// rawPublisher creates a stream like the bridge's for rawPrefix subjects
// and publishes with JetStream async publish.
func (c *natsConsumer) rawPublisher(ctx context.Context, stored backlog) (rawPublisher, error) {
	cfg, err := c.b.streamConfig(ctx)
	if err != nil {
		return nil, err
	}
	cfg.Name, cfg.Subjects = strings.ToUpper(rawPrefix), []string{rawPrefix + ".>"}
	if _, err := c.b.js.CreateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("raw: create stream %s: %w", cfg.Name, err)
	}
	var msgs []*nats.Msg
	for _, m := range stored.(natsBacklog) {
		h := nats.Header{}
		for k, v := range m.Header {
			if k != jetstream.MsgIDHeader {
				h[k] = v
			}
		}
		msgs = append(msgs, &nats.Msg{Subject: rawPrefix + strings.TrimPrefix(m.Subject, prefix), Header: h, Data: m.Data})
	}
	if len(msgs) == 0 {
		return nil, errors.New("raw: no messages to publish")
	}
	return &natsRaw{js: c.b.js, msgs: msgs}, nil
}

type natsRaw struct {
	js   jetstream.JetStream
	msgs []*nats.Msg
	futs []jetstream.PubAckFuture
}

func (r *natsRaw) publish(_ context.Context, i int) error {
	m := r.msgs[i%len(r.msgs)]
	h := nats.Header{}
	for k, v := range m.Header {
		h[k] = v
	}
	seq := strconv.Itoa(i)
	h.Set(rawSeqHeader, seq)
	h.Set(jetstream.MsgIDHeader, "raw-"+seq)
	f, err := r.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: h, Data: m.Data}, jetstream.WithStallWait(time.Minute))
	if err != nil {
		return fmt.Errorf("raw: publish: %w", err)
	}
	r.futs = append(r.futs, f)
	return nil
}

func (r *natsRaw) flush(ctx context.Context) error {
	select {
	case <-r.js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, f := range r.futs {
		select {
		case err := <-f.Err():
			if err != nil {
				return fmt.Errorf("raw: publish: %w", err)
			}
		default:
		}
	}
	return nil
}

func (r *natsRaw) close() {}

// kafkaConsumer reads every partition of the bridge's topics with a
// kafka-go Reader each. The topics exist before the bridge starts (one per
// event type of the traffic), so that no reader joins late.
type kafkaConsumer struct {
	b      *kafkaBroker
	topics map[string]int
}

func (c *kafkaConsumer) consume(ctx context.Context, pfx string, st *stamps, key func(header) string) (func(), error) {
	topics := c.topics
	if pfx == rawPrefix {
		topics = map[string]int{rawPrefix: kafkaPartitions}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		for p := 0; p < topics[t]; p++ {
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: c.b.c.ListenAddrs(), Topic: t, Partition: p,
				MinBytes: 1, MaxBytes: 1 << 20, MaxWait: time.Second,
				// The Reader's own default is the end of the partition.
				StartOffset: kafka.FirstOffset,
			})
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer r.Close()
				for {
					m, err := r.ReadMessage(ctx)
					if err != nil {
						return
					}
					at := time.Now()
					st.got(key(func(k string) string {
						for _, h := range m.Headers {
							if h.Key == k {
								return string(h.Value)
							}
						}
						return ""
					}), at)
				}
			}()
		}
	}
	return func() { cancel(); wg.Wait() }, nil
}

// rawPublisher writes to a rawPrefix topic with as many partitions as the
// bridge's, with a kafka-go Writer that sends each record at once
// (BatchSize 1): the plain client at its lowest latency.
func (c *kafkaConsumer) rawPublisher(ctx context.Context, stored backlog) (rawPublisher, error) {
	if err := c.b.createTopics(ctx, map[string]int{rawPrefix: kafkaPartitions}); err != nil {
		return nil, err
	}
	kb := stored.(*kafkaBacklog)
	if len(kb.msgs) == 0 {
		return nil, errors.New("raw: no records to write")
	}
	return &kafkaRaw{w: newRawWriter(c.b.c.ListenAddrs(), 1, time.Millisecond), msgs: kb.msgs}, nil
}

type kafkaRaw struct {
	w    *kafka.Writer
	msgs []kafka.Message
}

func (r *kafkaRaw) publish(ctx context.Context, i int) error {
	m := r.msgs[i%len(r.msgs)]
	seq := strconv.Itoa(i)
	headers := make([]kafka.Header, 0, len(m.Headers))
	for _, h := range m.Headers {
		if h.Key != "Zulip-Dedup-Key" {
			headers = append(headers, h)
		}
	}
	headers = append(headers, kafka.Header{Key: rawSeqHeader, Value: []byte(seq)})
	if err := r.w.WriteMessages(ctx, kafka.Message{Topic: rawPrefix, Key: m.Key, Value: m.Value, Headers: headers}); err != nil {
		return fmt.Errorf("raw: write: %w", err)
	}
	return nil
}

func (r *kafkaRaw) flush(context.Context) error { return nil }

func (r *kafkaRaw) close() { closeWriter(r.w) }
