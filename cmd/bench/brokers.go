package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/zulip-bridge/zulip-bridge/mapping"
)

const (
	// streamName and prefix are the bridge's defaults
	// (BRIDGE_NATS_STREAM, BRIDGE_SUBJECT_PREFIX), which the bench leaves
	// unset.
	streamName = "ZULIP"
	prefix     = "zulip"

	// rawWindow is the raw JetStream client's async publishes in flight,
	// the bridge's default BRIDGE_NATS_MAX_PENDING.
	rawWindow = 4096
	// kafkaPartitions is the broker default for topics the bridge
	// creates, as in a small production cluster (and the e2e tests).
	kafkaPartitions = 3
	// rawKafkaChunk is how many records the raw kafka-go Writer gets per
	// WriteMessages call: enough for full batches (BatchSize 1000) on
	// every partition at once, without handing it a million at a time.
	rawKafkaChunk = 10000
)

// broker is one broker of a kind the bridge publishes to, in process.
type broker interface {
	// env points the bridge at the broker.
	env() []string
	// prepare makes the broker look as after a bridge published events
	// of these types: Kafka gets the topics the bridge would have created
	// (so that no drain pays for creating them); NATS needs nothing, the
	// bridge creates its stream when it starts.
	prepare(ctx context.Context, types []string) error
	// count is how many messages the bridge's stream or topics hold.
	count(ctx context.Context) (int64, error)
	// readBack returns every message the bridge stored.
	readBack(ctx context.Context) (backlog, error)
	// raw publishes b with the plain client into a fresh broker of the
	// same kind and configuration (created under dir), and returns how
	// long it took until the broker confirmed all of it.
	raw(ctx context.Context, b backlog, dir string) (time.Duration, error)
	// rawForwarder starts a fresh broker of the same kind and
	// configuration for b's messages (under dir) and returns the raw
	// client on it, publishing chunk by chunk (spoolraw.go).
	rawForwarder(ctx context.Context, b backlog, dir string) (rawForwarder, error)
	close()
}

// backlog is what a broker holds, as read back.
type backlog interface {
	len() int
	payloadBytes() int64
	// withHeader counts the messages that have header key set to value.
	withHeader(key, value string) int
	// messages is the backlog as the bridge's messages, for a spool.
	messages() []*mapping.Message
}

// startBroker starts a broker of the given kind with its storage under
// dir.
func startBroker(kind, dir string) (broker, error) {
	switch kind {
	case "nats":
		return startNATS(dir)
	case "kafka":
		return startKafka()
	}
	return nil, fmt.Errorf("unknown sink %q (want nats or kafka)", kind)
}

// natsBroker is an embedded nats-server with JetStream on file storage.
type natsBroker struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startNATS(dir string) (*natsBroker, error) {
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  dir,
		NoSigs:    true,
		NoLog:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats-server: not ready for connections within 10s")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("connect to nats-server: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(rawWindow))
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &natsBroker{srv: srv, nc: nc, js: js}, nil
}

func (n *natsBroker) env() []string {
	return []string{"BRIDGE_SINK=nats", "BRIDGE_NATS_URL=" + n.srv.ClientURL()}
}

func (n *natsBroker) prepare(context.Context, []string) error { return nil }

func (n *natsBroker) count(ctx context.Context) (int64, error) {
	return streamMsgs(ctx, n.js, streamName)
}

func streamMsgs(ctx context.Context, js jetstream.JetStream, name string) (int64, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", name, err)
	}
	return int64(s.CachedInfo().State.Msgs), nil
}

func (n *natsBroker) streamConfig(ctx context.Context) (jetstream.StreamConfig, error) {
	s, err := n.js.Stream(ctx, streamName)
	if err != nil {
		return jetstream.StreamConfig{}, fmt.Errorf("stream %s: %w", streamName, err)
	}
	return s.CachedInfo().Config, nil
}

// natsBacklog is what a stream holds, in stream order.
type natsBacklog []*nats.Msg

func (b natsBacklog) len() int { return len(b) }

func (b natsBacklog) payloadBytes() int64 {
	var n int64
	for _, m := range b {
		n += int64(len(m.Data))
	}
	return n
}

func (b natsBacklog) withHeader(key, value string) int {
	n := 0
	for _, m := range b {
		if m.Header.Get(key) == value {
			n++
		}
	}
	return n
}

func (n *natsBroker) readBack(ctx context.Context) (backlog, error) {
	total, err := n.count(ctx)
	if err != nil {
		return nil, err
	}
	return readStream(ctx, n.js, streamName, int(total))
}

// readStream reads the first total messages of a stream with an ordered
// consumer, as a downstream service would.
func readStream(ctx context.Context, js jetstream.JetStream, stream string, total int) (natsBacklog, error) {
	out := make(natsBacklog, 0, total)
	if total == 0 {
		return out, nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	defer it.Stop()
	for len(out) < total {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("read stream %s after %d of %d messages: %w", stream, len(out), total, err)
		}
		out = append(out, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	}
	return out, nil
}

// raw publishes the backlog into a second nats-server with the bridge's
// stream configuration, with nats.go's JetStream async publish and a
// window of rawWindow, headers (Nats-Msg-Id included) as the bridge sent
// them.
func (n *natsBroker) raw(ctx context.Context, b backlog, dir string) (time.Duration, error) {
	msgs := b.(natsBacklog)
	cfg, err := n.streamConfig(ctx)
	if err != nil {
		return 0, err
	}
	fresh, err := startNATS(dir)
	if err != nil {
		return 0, err
	}
	defer fresh.close()
	if _, err := fresh.js.CreateStream(ctx, cfg); err != nil {
		return 0, fmt.Errorf("raw: create stream %s: %w", cfg.Name, err)
	}
	var failed atomic.Int64
	js, err := jetstream.New(fresh.nc,
		jetstream.WithPublishAsyncMaxPending(rawWindow),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	if err != nil {
		return 0, fmt.Errorf("raw: jetstream: %w", err)
	}
	began := time.Now()
	for _, m := range msgs {
		// A full window waits for acknowledgements, however slow a
		// loaded machine makes them, instead of failing after the
		// library's default 200ms.
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}, jetstream.WithStallWait(time.Minute)); err != nil {
			return 0, fmt.Errorf("raw: publish: %w", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, fmt.Errorf("raw: wait for acknowledgements: %w", ctx.Err())
	}
	took := time.Since(began)
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("raw: %d of %d publishes failed", f, len(msgs))
	}
	if got, err := streamMsgs(ctx, js, cfg.Name); err != nil || got != int64(len(msgs)) {
		return 0, fmt.Errorf("raw: stream holds %d of %d messages (%v)", got, len(msgs), err)
	}
	return took, nil
}

func (n *natsBroker) close() {
	n.nc.Close()
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// kafkaBroker is a kfake cluster with one broker.
type kafkaBroker struct {
	c      *kfake.Cluster
	client *kafka.Client
	// known and knownAt cache the topics for count, which runs every
	// pollEvery: kfake serves every request in one loop, the bridge's
	// produce requests included.
	known   map[string]int
	knownAt time.Time
}

func startKafka() (*kafkaBroker, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(kafkaPartitions))
	if err != nil {
		return nil, fmt.Errorf("kfake: %w", err)
	}
	// A transport of its own: kafka-go's default one would keep idle
	// connections to every cluster the bench ever started.
	t := &kafka.Transport{Dial: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	return &kafkaBroker{c: c, client: &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Timeout: 30 * time.Second, Transport: t}}, nil
}

func (k *kafkaBroker) env() []string {
	return []string{"BRIDGE_SINK=kafka", "BRIDGE_KAFKA_BROKERS=" + strings.Join(k.c.ListenAddrs(), ","), "BRIDGE_KAFKA_CREATE_TOPICS=true"}
}

func (k *kafkaBroker) prepare(ctx context.Context, types []string) error {
	return k.createTopics(ctx, bridgeTopics(types))
}

// bridgeTopics names the bridge's topics for events of these types
// (BRIDGE_TOPIC_TEMPLATE's default, <prefix>.<type>), with the broker's
// default partitions.
func bridgeTopics(types []string) map[string]int {
	out := map[string]int{}
	for _, t := range types {
		out[prefix+"."+t] = kafkaPartitions
	}
	return out
}

// topics lists the partitions of the bridge's topics.
func (k *kafkaBroker) topics(ctx context.Context) (map[string]int, error) {
	md, err := k.client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return nil, fmt.Errorf("kafka metadata: %w", err)
	}
	out := map[string]int{}
	for _, t := range md.Topics {
		if t.Error == nil && strings.HasPrefix(t.Name, prefix+".") {
			out[t.Name] = len(t.Partitions)
		}
	}
	return out, nil
}

// endOffsets returns every partition's end offset, by topic.
func (k *kafkaBroker) endOffsets(ctx context.Context, topics map[string]int) (map[string][]int64, error) {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for t, parts := range topics {
		for p := range parts {
			req.Topics[t] = append(req.Topics[t], kafka.LastOffsetOf(p))
		}
	}
	if len(req.Topics) == 0 {
		return nil, nil
	}
	resp, err := k.client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("kafka list offsets: %w", err)
	}
	out := map[string][]int64{}
	for t, parts := range resp.Topics {
		ends := make([]int64, topics[t])
		for _, p := range parts {
			if p.Error != nil {
				return nil, fmt.Errorf("kafka list offsets %s/%d: %w", t, p.Partition, p.Error)
			}
			ends[p.Partition] = p.LastOffset
		}
		out[t] = ends
	}
	return out, nil
}

func (k *kafkaBroker) count(ctx context.Context) (int64, error) {
	if time.Since(k.knownAt) >= 100*time.Millisecond {
		topics, err := k.topics(ctx)
		if err != nil {
			return 0, err
		}
		k.known, k.knownAt = topics, time.Now()
	}
	ends, err := k.endOffsets(ctx, k.known)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, parts := range ends {
		for _, end := range parts {
			n += end
		}
	}
	return n, nil
}

// kafkaBacklog is what the topics hold, topic by topic, each partition in
// offset order.
type kafkaBacklog struct {
	msgs       []kafka.Message
	partitions map[string]int
}

func (b *kafkaBacklog) len() int { return len(b.msgs) }

func (b *kafkaBacklog) payloadBytes() int64 {
	var n int64
	for _, m := range b.msgs {
		n += int64(len(m.Value))
	}
	return n
}

func (b *kafkaBacklog) withHeader(key, value string) int {
	n := 0
	for _, m := range b.msgs {
		for _, h := range m.Headers {
			if h.Key == key && string(h.Value) == value {
				n++
				break
			}
		}
	}
	return n
}

func (k *kafkaBroker) readBack(ctx context.Context) (backlog, error) {
	topics, err := k.topics(ctx)
	if err != nil {
		return nil, err
	}
	ends, err := k.endOffsets(ctx, topics)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	sort.Strings(names)
	b := &kafkaBacklog{partitions: topics}
	for _, t := range names {
		for p, end := range ends[t] {
			if err := k.readPartition(ctx, t, p, end, b); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

func (k *kafkaBroker) readPartition(ctx context.Context, topic string, partition int, end int64, b *kafkaBacklog) error {
	if end == 0 {
		return nil
	}
	conn, err := kafka.DialLeader(ctx, "tcp", k.c.ListenAddrs()[0], topic, partition)
	if err != nil {
		return fmt.Errorf("read %s/%d: %w", topic, partition, err)
	}
	defer conn.Close()
	if _, err := conn.Seek(0, kafka.SeekAbsolute); err != nil {
		return fmt.Errorf("read %s/%d: %w", topic, partition, err)
	}
	for next := int64(0); next < end; {
		if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
			return err
		}
		batch := conn.ReadBatch(1, 16<<20)
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			if len(m.Key) == 0 {
				m.Key = nil // the Hash balancer spreads keyless records, as the bridge's writer does
			}
			m.Partition, m.Offset, m.Time = 0, 0, time.Time{}
			b.msgs = append(b.msgs, m)
			next++
		}
		if err := batch.Close(); err != nil {
			return fmt.Errorf("read %s/%d at %d of %d: %w", topic, partition, next, end, err)
		}
	}
	return nil
}

// raw writes the backlog into a second kfake cluster with the same topics
// and partitions, with a plain kafka-go Writer: acknowledgement from all
// in-sync replicas, batches of 1000, a short batch timeout, keys hashed to
// partitions, synchronous WriteMessages of rawKafkaChunk records at a time.
func (k *kafkaBroker) raw(ctx context.Context, b backlog, _ string) (time.Duration, error) {
	kb := b.(*kafkaBacklog)
	fresh, err := startKafka()
	if err != nil {
		return 0, err
	}
	defer fresh.close()
	if err := fresh.createTopics(ctx, kb.partitions); err != nil {
		return 0, err
	}
	w := newRawWriter(fresh.c.ListenAddrs(), 1000, time.Millisecond)
	defer closeWriter(w)
	began := time.Now()
	for start := 0; start < len(kb.msgs); start += rawKafkaChunk {
		if err := w.WriteMessages(ctx, kb.msgs[start:min(start+rawKafkaChunk, len(kb.msgs))]...); err != nil {
			return 0, fmt.Errorf("raw: write: %w", err)
		}
	}
	took := time.Since(began)
	if got, err := fresh.count(ctx); err != nil || got != int64(len(kb.msgs)) {
		return 0, fmt.Errorf("raw: topics hold %d of %d records (%v)", got, len(kb.msgs), err)
	}
	return took, nil
}

func newRawWriter(addrs []string, batchSize int, batchTimeout time.Duration) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(addrs...),
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		MaxAttempts:  1,
		BatchSize:    batchSize,
		BatchBytes:   1 << 20,
		BatchTimeout: batchTimeout,
		Transport:    &kafka.Transport{Dial: (&net.Dialer{Timeout: 5 * time.Second}).DialContext},
	}
}

func closeWriter(w *kafka.Writer) {
	_ = w.Close()
	w.Transport.(*kafka.Transport).CloseIdleConnections()
}

func (k *kafkaBroker) createTopics(ctx context.Context, topics map[string]int) error {
	req := &kafka.CreateTopicsRequest{}
	for t, parts := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: parts, ReplicationFactor: 1})
	}
	if len(req.Topics) == 0 {
		return nil
	}
	resp, err := k.client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for t, err := range resp.Errors {
		if err != nil {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	return nil
}

func (k *kafkaBroker) close() {
	k.client.Transport.(*kafka.Transport).CloseIdleConnections()
	k.c.Close()
}

// tempDir makes a directory under the bench's scratch directory.
func tempDir(parent, pattern string) (string, error) {
	d, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return "", fmt.Errorf("scratch directory: %w", err)
	}
	return d, nil
}
