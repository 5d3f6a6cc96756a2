package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

// testPartitions is the partition count of the topics the tests create:
// enough that keys spread, few enough that every partition gets records.
const testPartitions = 4

// newCluster starts a one-broker kfake cluster on 127.0.0.1 with the
// suite's topics, and closes it when the test ends.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, sinktest.Topics()...)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// testConfig is a config for the cluster with test-friendly timeouts.
func testConfig(c *kfake.Cluster) kafkasink.Config {
	return kafkasink.Config{
		Brokers:      c.ListenAddrs(),
		WriteTimeout: 5 * time.Second,
		DialTimeout:  2 * time.Second,
	}
}

// newSink returns a sink for cfg that is closed when the test ends.
func newSink(t testing.TB, cfg kafkasink.Config, opts ...kafkasink.Option) *kafkasink.Sink {
	t.Helper()
	return newSinkLog(t, cfg, slog.New(slog.DiscardHandler), opts...)
}

func newSinkLog(t testing.TB, cfg kafkasink.Config, log *slog.Logger, opts ...kafkasink.Option) *kafkasink.Sink {
	t.Helper()
	s, err := kafkasink.New(context.Background(), cfg, append([]kafkasink.Option{kafkasink.WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// publishAll publishes batch, sending again what each error leaves
// unconfirmed, as the bridge does, and returns how many attempts it took.
func publishAll(t testing.TB, s sink.Sink, batch []*mapping.Message) int {
	t.Helper()
	pending := batch
	for attempt := 1; attempt <= 20; attempt++ {
		err := s.Publish(testCtx(t), pending)
		if err == nil {
			return attempt
		}
		pending = sink.Unconfirmed(pending, err)
		t.Logf("attempt %d: %d to send again: %v", attempt, len(pending), err)
	}
	t.Fatalf("batch of %d not confirmed after 20 attempts", len(batch))
	return 0
}

// storedRecord is a record as a kafka-go consumer reads it.
type storedRecord struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Headers   []kafka.Header
	Value     []byte
}

func (r storedRecord) header(key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// consume reads every record of topic with a kafka-go Reader per
// partition, partition by partition, each in offset order.
func consume(t testing.TB, c *kfake.Cluster, dialer *kafka.Dialer, topic string) []storedRecord {
	t.Helper()
	ctx := testCtx(t)
	conn, err := dialer.DialContext(ctx, "tcp", c.ListenAddrs()[0])
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("read partitions of %s: %v", topic, err)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].ID < parts[j].ID })
	var out []storedRecord
	for _, p := range parts {
		leader, err := dialer.DialLeader(ctx, "tcp", c.ListenAddrs()[0], topic, p.ID)
		if err != nil {
			t.Fatalf("dial leader of %s/%d: %v", topic, p.ID, err)
		}
		end, err := leader.ReadLastOffset()
		leader.Close()
		if err != nil {
			t.Fatalf("end offset of %s/%d: %v", topic, p.ID, err)
		}
		if end == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   c.ListenAddrs(),
			Topic:     topic,
			Partition: p.ID,
			Dialer:    dialer,
			MaxWait:   100 * time.Millisecond,
		})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("read %s/%d: %v", topic, p.ID, err)
			}
			out = append(out, storedRecord{
				Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
				Key: m.Key, Headers: m.Headers, Value: m.Value,
			})
			if m.Offset+1 >= end {
				break
			}
		}
		r.Close()
	}
	return out
}

// consumeAll reads the suite's topics.
func consumeAll(t testing.TB, c *kfake.Cluster, dialer *kafka.Dialer) []storedRecord {
	t.Helper()
	var out []storedRecord
	for _, topic := range sinktest.Topics() {
		out = append(out, consume(t, c, dialer, topic)...)
	}
	return out
}

// checkExactlyOnce checks that records hold every message of sent once,
// nothing else, with its topic, key, headers and payload, and every key's
// records in one partition in the order they were sent.
func checkExactlyOnce(t testing.TB, records []storedRecord, sent []*mapping.Message) {
	t.Helper()
	index := make(map[string]int, len(sent))
	for i, m := range sent {
		index[m.DedupKey] = i
	}
	seen := make(map[string]int)
	type scope struct{ topic, key string }
	partitionOf := make(map[scope]int)
	last := make(map[scope]int)
	for _, r := range records {
		dk := r.header(mapping.HeaderDedupKey)
		i, ok := index[dk]
		if !ok {
			t.Errorf("%s/%d@%d has dedup key %q that was not sent", r.Topic, r.Partition, r.Offset, dk)
			continue
		}
		if seen[dk]++; seen[dk] > 1 {
			t.Errorf("%s is stored %d times (again at %s/%d@%d)", dk, seen[dk], r.Topic, r.Partition, r.Offset)
			continue
		}
		if err := sameRecord(sent[i], r); err != nil {
			t.Errorf("%s: %v", dk, err)
		}
		if r.Key == nil {
			continue
		}
		sc := scope{r.Topic, string(r.Key)}
		if p, ok := partitionOf[sc]; ok && p != r.Partition {
			t.Errorf("key %q of %s in partitions %d and %d", r.Key, r.Topic, p, r.Partition)
		}
		partitionOf[sc] = r.Partition
		if prev, ok := last[sc]; ok && prev > i {
			t.Errorf("key %q out of order: %s (sent %d) stored after message sent %d", r.Key, dk, i, prev)
		}
		last[sc] = i
	}
	missing := 0
	for _, m := range sent {
		if seen[m.DedupKey] == 0 {
			missing++
			if missing <= 5 {
				t.Errorf("%s (%s) is not stored", m.DedupKey, m.Topic)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d message(s) missing", missing, len(sent))
	}
}

func sameRecord(m *mapping.Message, r storedRecord) error {
	if r.Topic != m.Topic {
		return fmt.Errorf("topic %q, want %q", r.Topic, m.Topic)
	}
	if !bytes.Equal(r.Key, m.Key) || (r.Key == nil) != (m.Key == nil) {
		return fmt.Errorf("key %q, want %q", r.Key, m.Key)
	}
	if len(r.Headers) != len(m.Headers) {
		return fmt.Errorf("%d headers, want %d", len(r.Headers), len(m.Headers))
	}
	for i, h := range m.Headers {
		if r.Headers[i].Key != h.Key || string(r.Headers[i].Value) != h.Value {
			return fmt.Errorf("header %d = %s: %q, want %s: %q", i, r.Headers[i].Key, r.Headers[i].Value, h.Key, h.Value)
		}
	}
	if !bytes.Equal(r.Value, m.Payload) {
		return fmt.Errorf("payload %q, want %q", r.Value, m.Payload)
	}
	return nil
}

func keysOf(msgs []*mapping.Message) map[string]struct{} {
	out := make(map[string]struct{}, len(msgs))
	for _, m := range msgs {
		out[m.DedupKey] = struct{}{}
	}
	return out
}

func without(msgs []*mapping.Message, skip map[string]struct{}) []*mapping.Message {
	var out []*mapping.Message
	for _, m := range msgs {
		if _, ok := skip[m.DedupKey]; !ok {
			out = append(out, m)
		}
	}
	return out
}

// logBuffer is a slog destination the tests can search while the sink
// writes to it.
type logBuffer struct{ testutil.SyncBuffer }

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func errorsAs[T error](err error) (T, bool) {
	var target T
	ok := errors.As(err, &target)
	return target, ok
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
