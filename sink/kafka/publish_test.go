package kafka_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

// A kafka-go consumer sees the key, headers and payload of docs/names.md
// as published, and each conversation in one partition, in order.
func TestConsumerSeesRecordsAsPublished(t *testing.T) {
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			c := newCluster(t)
			cfg := testConfig(c)
			cfg.Compression = codec
			s := newSink(t, cfg)
			var g sinktest.Generator
			var sent []*mapping.Message
			for _, n := range []int{1, 50, 200} {
				batch := g.Batch(n)
				if err := s.Publish(testCtx(t), batch); err != nil {
					t.Fatalf("Publish(%d): %v", n, err)
				}
				sent = append(sent, batch...)
			}
			records := consumeAll(t, c, kafka.DefaultDialer)
			checkExactlyOnce(t, records, sent)

			// The partition is kafka-go's Hash of the key, so that any
			// producer using it (or Sarama's default) agrees with us.
			for _, r := range records {
				if r.Key == nil {
					continue
				}
				if want := partitionOf(r.Key); r.Partition != want {
					t.Errorf("key %q in partition %d, kafka.Hash says %d", r.Key, r.Partition, want)
				}
			}
			partitions := map[int]bool{}
			for _, r := range records {
				partitions[r.Partition] = true
			}
			if len(partitions) < 2 {
				t.Errorf("all records in partitions %v: keys did not spread", partitions)
			}
		})
	}
}

// A batch larger than BatchSize goes out in several rounds, all confirmed.
func TestPublishInRounds(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c)
	cfg.BatchSize = 7
	cfg.BatchBytes = 4096
	s := newSink(t, cfg)
	var g sinktest.Generator
	batch := g.Batch(100)
	if err := s.Publish(testCtx(t), batch); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	checkExactlyOnce(t, consumeAll(t, c, kafka.DefaultDialer), batch)
}

// A partition that rejects one of its requests fails exactly that
// request's records and the partition's later ones; the other partitions
// are stored whole. Sending the list again completes the batch in order and
// stores nothing twice.
func TestPartitionFailureListsItsRecordsAndLaterOnes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    *kerr.Error
		stored bool
	}{
		// Nothing stored.
		{"rejected", kerr.NotEnoughReplicas, false},
		// Stored, but the answer says it failed: the retry must not store
		// it again.
		{"stored but failed", kerr.NotEnoughReplicasAfterAppend, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			var g sinktest.Generator
			batch := g.Batch(120)

			topic := sinktest.Prefix + ".message"
			// The partition of the first stream conversation, and its
			// messages in batch order.
			failPartition := int32(partitionOf(batch[0].Key))
			var mine []int
			for i, m := range batch {
				if m.Topic == topic && partitionOf(m.Key) == int(failPartition) {
					mine = append(mine, i)
				}
			}
			// Three requests or more for that partition: the fault hits
			// the second.
			batchSize := len(mine) / 3
			if batchSize == 0 {
				t.Fatalf("test setup: %d messages for the failing partition, want 3 or more", len(mine))
			}
			cfg := testConfig(c)
			cfg.BatchSize = batchSize
			s := newSink(t, cfg)

			var produces int
			c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
				for _, rt := range req.(*kmsg.ProduceRequest).Topics {
					for _, rp := range rt.Partitions {
						if rt.Topic == topic && rp.Partition == failPartition {
							if produces++; produces == 2 {
								c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Partitions: []int32{failPartition}, Err: tc.err})
							}
						}
					}
				}
				return nil, nil, false
			})

			err := s.Publish(testCtx(t), batch)
			pe, ok := errorsAs[*sink.PublishError](err)
			if !ok {
				t.Fatalf("Publish: %v, want a *sink.PublishError", err)
			}
			want := mine[batchSize:]
			if !slices.Equal(pe.Failed, want) {
				t.Errorf("Failed = %v\nwant     %v", pe.Failed, want)
			}
			if !errors.Is(err, kafka.Error(tc.err.Code)) {
				t.Errorf("error %v does not wrap the broker's %v", err, tc.err)
			}
			if produces != 2 {
				t.Errorf("the failing partition got %d produce requests, want 2: it goes on after its failure", produces)
			}
			wantBefore := len(batch) - len(want)
			if tc.stored {
				wantBefore += batchSize
			}
			if n := len(consumeAll(t, c, kafka.DefaultDialer)); n != wantBefore {
				t.Errorf("before the retry the broker holds %d records, want %d", n, wantBefore)
			}
			if attempts := publishAll(t, s, sink.Unconfirmed(batch, err)); attempts != 1 {
				t.Errorf("retry took %d attempts, want 1", attempts)
			}
			checkExactlyOnce(t, consumeAll(t, c, kafka.DefaultDialer), batch)
		})
	}
}

// Messages that no retry could publish fail the batch before anything is
// sent, with a sentinel the bridge can act on.
func TestUnpublishableMessages(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c)
	cfg.BatchBytes = 64 << 10
	s := newSink(t, cfg)
	var g sinktest.Generator
	for _, tc := range []struct {
		name   string
		change func(*mapping.Message)
		want   error
	}{
		{"invalid topic", func(m *mapping.Message) { m.Topic = "zulip.bad topic" }, kafkasink.ErrInvalidTopic},
		{"topic outside the prefix", func(m *mapping.Message) { m.Topic = "other.message" }, kafkasink.ErrTopicNotOwned},
		{"too large", func(m *mapping.Message) { m.Payload = []byte(strings.Repeat("x", 64<<10)) }, kafkasink.ErrMessageTooLarge},
		{"missing topic", func(m *mapping.Message) { m.Topic = "zulip.nonexistent" }, kafkasink.ErrUnknownTopic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batch := g.Batch(5)
			tc.change(batch[3])
			err := s.Publish(testCtx(t), batch)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Publish: %v, want %v", err, tc.want)
			}
			if n := len(sink.Unconfirmed(batch, err)); n != len(batch) {
				t.Errorf("%d of %d reported unconfirmed, want all", n, len(batch))
			}
			for _, topic := range sinktest.Topics() {
				if got := consume(t, c, kafka.DefaultDialer, topic); len(got) != 0 {
					t.Errorf("%s holds %d record(s), want none", topic, len(got))
				}
			}
		})
	}
}

// With BRIDGE_KAFKA_CREATE_TOPICS=true a missing topic is created with the
// configured partition count before the first write.
func TestCreateTopics(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c)
	cfg.CreateTopics = true
	cfg.Partitions = 3
	cfg.ReplicationFactor = 1
	s := newSink(t, cfg)
	var g sinktest.Generator
	batch := g.Batch(10)
	for _, m := range batch {
		m.Topic = "zulip.created"
	}
	if err := s.Publish(testCtx(t), batch); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	conn, err := kafka.DefaultDialer.DialContext(testCtx(t), "tcp", c.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions("zulip.created")
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Errorf("created topic has %d partitions, want 3", len(parts))
	}
	checkExactlyOnce(t, consume(t, c, kafka.DefaultDialer, "zulip.created"), batch)
}

// partitionOf is where kafka-go's Hash balancer puts key among the test
// topics' partitions.
func partitionOf(key []byte) int {
	return (&kafka.Hash{}).Balance(kafka.Message{Key: key}, 0, 1, 2, 3)
}

// TestCreatedTopicLogsBrokerDefault: a topic created with the broker's
// default partition count and replication factor (-1) is logged with the
// partition count the broker gave it, and the replication factor as the
// broker's default, not as -1.
func TestCreatedTopicLogsBrokerDefault(t *testing.T) {
	c := newCluster(t, kfake.DefaultNumPartitions(5)) // the broker's default
	cfg := testConfig(c)
	cfg.CreateTopics = true
	cfg.Partitions = -1
	cfg.ReplicationFactor = -1
	var logs logBuffer
	s := newSinkLog(t, cfg, logs.logger())
	var g sinktest.Generator
	batch := g.Batch(3)
	for _, m := range batch {
		m.Topic = "zulip.defaults"
	}
	if err := s.Publish(testCtx(t), batch); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if out := logs.String(); !containsAll(out, `msg="kafka: created topic"`, `topic=zulip.defaults partitions=5 replication_factor="broker default"`) {
		t.Errorf("log:\n%s", out)
	}
}
