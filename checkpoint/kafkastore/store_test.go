package kafkastore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/checkpoint/checkpointtest"
	"github.com/zulip-bridge/zulip-bridge/source"
)

var site = mustSite("https://chat.example.com")

func mustSite(raw string) source.Site {
	s, err := source.ParseSite(raw)
	if err != nil {
		panic(err)
	}
	return s
}

// startCluster runs a kfake cluster on loopback and returns it with a
// kafka-go client; both stop when the test ends.
func startCluster(t testing.TB) (*kfake.Cluster, *kafka.Client) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	transport := &kafka.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	return cluster, &kafka.Client{Addr: kafka.TCP(cluster.ListenAddrs()...), Transport: transport}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, client *kafka.Client, cfg checkpoint.Config) *Store {
	t.Helper()
	s, err := Open(ctxFor(t), client, cfg, site)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func createTopic(t *testing.T, client *kafka.Client, topic string, partitions int, policy string) {
	t.Helper()
	resp, err := client.CreateTopics(ctxFor(t), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: policy}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		t.Fatal(err)
	}
}

func produce(t *testing.T, client *kafka.Client, topic, key string, value []byte) {
	t.Helper()
	resp, err := client.Produce(ctxFor(t), &kafka.ProduceRequest{
		Topic: topic, Partition: partition, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(kafka.Record{Key: kafka.NewBytes([]byte(key)), Value: kafka.NewBytes(value)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil {
		t.Fatal(resp.Error)
	}
}

func mustLoad(t *testing.T, s *Store, want checkpoint.Checkpoint) {
	t.Helper()
	got, found, err := s.Load(ctxFor(t))
	if err != nil || !found {
		t.Fatalf("Load: found=%v, err=%v", found, err)
	}
	if d := checkpointtest.Equal(got, want); d != "" {
		t.Fatalf("Load: %s", d)
	}
}

func TestConformance(t *testing.T) {
	_, client := startCluster(t)
	var n atomic.Int64
	checkpointtest.Run(t, func(t *testing.T) checkpointtest.Backend {
		cfg := checkpoint.Config{KafkaTopic: fmt.Sprintf("conformance-%d", n.Add(1))}
		key, err := cfg.KeyFor(site)
		if err != nil {
			t.Fatal(err)
		}
		return checkpointtest.Backend{
			Open: func(t *testing.T) checkpoint.Store {
				s, err := Open(ctxFor(t), client, cfg, site)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return s
			},
			WriteRaw: func(t *testing.T, data []byte) {
				createTopic(t, client, cfg.KafkaTopic, 1, "compact")
				produce(t, client, cfg.KafkaTopic, key, data)
			},
			Where: fmt.Sprintf("topic %s, key %s", cfg.KafkaTopic, key),
		}
	})
}

// TestSharedTopic runs two bridges on one topic, records interleaved, the
// log compacted halfway: each reads back its own latest checkpoint.
func TestSharedTopic(t *testing.T) {
	cluster, client := startCluster(t)
	a := open(t, client, checkpoint.Config{Name: "nats-bridge"})
	b := open(t, client, checkpoint.Config{Name: "kafka-bridge"})
	if a.Key() == b.Key() {
		t.Fatalf("both bridges use key %q", a.Key())
	}
	for i := range 30 {
		if err := a.Save(ctxFor(t), checkpointtest.Sample(i)); err != nil {
			t.Fatal(err)
		}
		if i == 15 {
			cluster.Compact()
		}
		if i%3 == 0 {
			if err := b.Save(ctxFor(t), checkpointtest.Sample(100+i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cluster.Compact()
	mustLoad(t, a, checkpointtest.Sample(29))
	mustLoad(t, b, checkpointtest.Sample(127))

	// Records with other keys after ours do not hide ours.
	produce(t, client, checkpoint.DefaultKafkaTopic, "someone/else", []byte("not a checkpoint"))
	mustLoad(t, a, checkpointtest.Sample(29))
}

// TestLoadManyFetches makes every fetch return a single batch, so Load has
// to walk the partition across many fetches to reach the latest record.
func TestLoadManyFetches(t *testing.T) {
	_, client := startCluster(t)
	s := open(t, client, checkpoint.Config{})
	other := open(t, client, checkpoint.Config{Name: "other"})
	for i := range 20 {
		if err := s.Save(ctxFor(t), checkpointtest.Sample(i)); err != nil {
			t.Fatal(err)
		}
		if err := other.Save(ctxFor(t), checkpointtest.Sample(50+i)); err != nil {
			t.Fatal(err)
		}
	}
	s.maxBytes = 1
	mustLoad(t, s, checkpointtest.Sample(19))
}

func TestTombstone(t *testing.T) {
	_, client := startCluster(t)
	s := open(t, client, checkpoint.Config{})
	if err := s.Save(ctxFor(t), checkpointtest.Sample(1)); err != nil {
		t.Fatal(err)
	}
	// An operator deletes the checkpoint the Kafka way, to start over.
	produce(t, client, checkpoint.DefaultKafkaTopic, s.Key(), nil)
	if _, found, err := s.Load(ctxFor(t)); err != nil || found {
		t.Fatalf("Load after a tombstone: found=%v, err=%v; want not found", found, err)
	}
	if err := s.Save(ctxFor(t), checkpointtest.Sample(2)); err != nil {
		t.Fatal(err)
	}
	mustLoad(t, s, checkpointtest.Sample(2))
}

func TestOpenTopic(t *testing.T) {
	_, client := startCluster(t)

	_, err := Open(ctxFor(t), client, checkpoint.Config{KafkaTopic: "absent", Create: new(false)}, site)
	if !errors.Is(err, kafka.UnknownTopicOrPartition) || !strings.Contains(err.Error(), "absent") || !strings.Contains(err.Error(), "BRIDGE_CHECKPOINT_CREATE") {
		t.Errorf("Open without Create = %v; want UnknownTopicOrPartition naming the topic and BRIDGE_CHECKPOINT_CREATE", err)
	}

	open(t, client, checkpoint.Config{KafkaTopic: "created"})
	meta, err := client.Metadata(ctxFor(t), &kafka.MetadataRequest{Topics: []string{"created"}})
	if err != nil || len(meta.Topics) != 1 || len(meta.Topics[0].Partitions) != 1 {
		t.Fatalf("created topic metadata = %+v, %v; want one topic with one partition", meta, err)
	}

	for _, policy := range []string{"delete", "compact,delete"} {
		topic := "policy-" + strings.ReplaceAll(policy, ",", "-")
		createTopic(t, client, topic, 1, policy)
		_, err := Open(ctxFor(t), client, checkpoint.Config{KafkaTopic: topic}, site)
		if err == nil || !strings.Contains(err.Error(), "cleanup.policy") || !strings.Contains(err.Error(), topic) {
			t.Errorf("Open on a topic with cleanup.policy=%s = %v; want an error naming the topic and the policy", policy, err)
		}
	}

	// A topic made by an operator with several partitions works: the
	// checkpoint always lives in partition 0.
	createTopic(t, client, "wide", 3, "compact")
	s := open(t, client, checkpoint.Config{KafkaTopic: "wide"})
	if err := s.Save(ctxFor(t), checkpointtest.Sample(1)); err != nil {
		t.Fatal(err)
	}
	mustLoad(t, s, checkpointtest.Sample(1))
}

func TestBrokerDown(t *testing.T) {
	cluster, client := startCluster(t)
	s := open(t, client, checkpoint.Config{})
	if err := s.Check(ctxFor(t)); err != nil {
		t.Fatalf("Check with the broker up: %v", err)
	}
	cluster.Close()

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := s.Check(ctx); err == nil || !strings.Contains(err.Error(), checkpoint.DefaultKafkaTopic) {
		t.Errorf("Check with the broker down = %v; want an error naming the topic", err)
	}
	if err := s.Save(ctx, checkpointtest.Sample(1)); err == nil {
		t.Error("Save with the broker down returned nil")
	}
	if _, _, err := s.Load(ctx); err == nil {
		t.Error("Load with the broker down returned nil error")
	}
}

func BenchmarkSave(b *testing.B) {
	_, client := startCluster(b)
	s, err := Open(b.Context(), client, checkpoint.Config{}, site)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cp := checkpointtest.Sample(1)
	b.ReportAllocs()
	for b.Loop() {
		cp.LastEventID++
		if err := s.Save(b.Context(), cp); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLegacyKey: a checkpoint that an older release saved under the key it
// derived from a site spelled with its default port is resumed, and the
// next Save goes to the key of the one site value, which wins from then on.
func TestLegacyKey(t *testing.T) {
	_, client := startCluster(t)
	legacy := open(t, client, checkpoint.Config{Key: "chat.example.com_3a443/bridge"})
	old := checkpointtest.Sample(1)
	if err := legacy.Save(ctxFor(t), old); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctxFor(t), client, checkpoint.Config{}, mustSite("https://Chat.Example.com:443/"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Key() != "chat.example.com/bridge" {
		t.Errorf("Key = %q, want chat.example.com/bridge", s.Key())
	}
	got, found, err := s.Load(ctxFor(t))
	if err != nil || !found || got.QueueID != old.QueueID || got.LastEventID != old.LastEventID {
		t.Fatalf("Load = %+v, %v, %v; want the legacy checkpoint %+v", got, found, err, old)
	}
	next := checkpointtest.Sample(2)
	if err := s.Save(ctxFor(t), next); err != nil {
		t.Fatal(err)
	}
	current := open(t, client, checkpoint.Config{Key: "chat.example.com/bridge"})
	if cp, found, err := current.Load(ctxFor(t)); err != nil || !found || cp.LastEventID != next.LastEventID {
		t.Errorf("new key holds %+v, %v, %v; want %+v", cp, found, err, next)
	}
	// A later legacy record (a rolled-back old bridge) does not hide the
	// current key's.
	if err := legacy.Save(ctxFor(t), old); err != nil {
		t.Fatal(err)
	}
	if got, found, err := s.Load(ctxFor(t)); err != nil || !found || got.LastEventID != next.LastEventID {
		t.Errorf("Load = %+v, %v, %v; want the current key's %+v", got, found, err, next)
	}
}
