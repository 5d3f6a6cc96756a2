package kafkastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/source"
)

// partition is where every checkpoint record goes, whatever the topic's
// partition count: a key never moves, so Load has one partition to read.
const partition = 0

const (
	// fetchMaxBytes bounds one fetch; a compacted checkpoint topic is a
	// few records per bridge, so Load usually needs a single fetch.
	fetchMaxBytes = 4 << 20
	// fetchMaxWait is how long the broker may hold an empty fetch, which
	// happens only when compaction removed the records at the end.
	fetchMaxWait = 250 * time.Millisecond
	// readyTimeout bounds Open's wait for a new topic's leader when ctx
	// has no deadline of its own.
	readyTimeout = 30 * time.Second
)

// Store is a checkpoint.Store in a compacted Kafka topic.
type Store struct {
	client *kafka.Client
	topic  string
	key    []byte
	// legacyKey is where an older release kept this site's checkpoint
	// (checkpoint.Config.LegacyKeyFor); nil when it is key itself.
	legacyKey []byte
	maxBytes  int // per fetch; tests lower it to force many fetches
	closed    atomic.Bool
}

var _ checkpoint.Store = (*Store)(nil)

// Open prepares the store on cfg.Topic() through client, which carries
// the brokers, TLS and SASL (build it from the Kafka sink's settings; its
// Transport stays the caller's). A missing topic is created when
// cfg.CreateMissing: one partition, cleanup.policy=compact, cfg.Replicas
// replicas. A topic whose cleanup.policy is not exactly "compact" is
// refused, since retention would eventually delete the checkpoint and the
// bridge would start over unnoticed. The key is cfg.KeyFor(site).
func Open(ctx context.Context, client *kafka.Client, cfg checkpoint.Config, site source.Site) (*Store, error) {
	key, err := cfg.KeyFor(site)
	if err != nil {
		return nil, err
	}
	s := &Store{client: client, topic: cfg.Topic(), key: []byte(key), maxBytes: fetchMaxBytes}
	if legacy := cfg.LegacyKeyFor(site); legacy != "" {
		s.legacyKey = []byte(legacy)
	}
	if err := s.prepareTopic(ctx, cfg); err != nil {
		return nil, fmt.Errorf("checkpoint topic %s: %w", s.topic, err)
	}
	return s, nil
}

// Key returns the record key the checkpoint is stored under.
func (s *Store) Key() string { return string(s.key) }

func (s *Store) where() string { return fmt.Sprintf("topic %s, key %s", s.topic, s.key) }

func (s *Store) prepareTopic(ctx context.Context, cfg checkpoint.Config) error {
	exists, err := s.topicExists(ctx)
	if err != nil {
		return err
	}
	if !exists {
		if !cfg.CreateMissing() {
			return fmt.Errorf("%w; create it with cleanup.policy=compact or set BRIDGE_CHECKPOINT_CREATE=true", kafka.UnknownTopicOrPartition)
		}
		if err := s.createTopic(ctx, cfg.Replicas); err != nil {
			return err
		}
	}
	if err := s.checkCompacted(ctx); err != nil {
		return err
	}
	return s.waitForLeader(ctx)
}

func (s *Store) topicExists(ctx context.Context) (bool, error) {
	meta, err := s.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.topic}})
	if err != nil {
		return false, fmt.Errorf("metadata: %w", err)
	}
	for _, t := range meta.Topics {
		if t.Name != s.topic {
			continue
		}
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			return false, nil
		}
		if t.Error != nil {
			return false, fmt.Errorf("metadata: %w", t.Error)
		}
		return true, nil
	}
	return false, nil
}

func (s *Store) createTopic(ctx context.Context, replicas int) error {
	rf := replicas
	if rf == 0 {
		rf = -1 // the broker's default.replication.factor
	}
	resp, err := s.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{
			Topic:             s.topic,
			NumPartitions:     1,
			ReplicationFactor: rf,
			ConfigEntries:     []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
		}},
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if err := resp.Errors[s.topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create: %w", err)
	}
	return nil
}

func (s *Store) checkCompacted(ctx context.Context) error {
	resp, err := s.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic,
			ResourceName: s.topic,
			ConfigNames:  []string{"cleanup.policy"},
		}},
	})
	if err != nil {
		return fmt.Errorf("describe configs: %w", err)
	}
	for _, r := range resp.Resources {
		if r.ResourceName != s.topic {
			continue
		}
		if r.Error != nil {
			return fmt.Errorf("describe configs: %w", r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "cleanup.policy" {
				if strings.TrimSpace(e.ConfigValue) != "compact" {
					return fmt.Errorf("cleanup.policy is %q; it must be \"compact\" alone, or retention deletes the checkpoint", e.ConfigValue)
				}
				return nil
			}
		}
	}
	return errors.New("describe configs: the broker did not report cleanup.policy")
}

// waitForLeader returns once partition 0 has a leader: a topic just
// created needs a moment, and Load right after Open must not fail for it.
func (s *Store) waitForLeader(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	delay := 50 * time.Millisecond
	for {
		err := s.leaderKnown(ctx)
		if err == nil {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for partition %d's leader: %w (last: %w)", partition, ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

func (s *Store) leaderKnown(ctx context.Context) error {
	meta, err := s.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.topic}})
	if err != nil {
		return err
	}
	for _, t := range meta.Topics {
		if t.Name != s.topic {
			continue
		}
		if t.Error != nil {
			return t.Error
		}
		for _, p := range t.Partitions {
			if p.ID == partition {
				if p.Error != nil {
					return p.Error
				}
				if p.Leader.Host == "" {
					return kafka.LeaderNotAvailable
				}
				return nil
			}
		}
	}
	return kafka.UnknownTopicOrPartition
}

// offsets returns partition 0's first offset and high watermark.
func (s *Store) offsets(ctx context.Context) (first, end int64, err error) {
	resp, err := s.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{s.topic: {kafka.FirstOffsetOf(partition), kafka.LastOffsetOf(partition)}},
	})
	if err != nil {
		return 0, 0, err
	}
	for _, p := range resp.Topics[s.topic] {
		if p.Partition == partition {
			if p.Error != nil {
				return 0, 0, p.Error
			}
			return p.FirstOffset, p.LastOffset, nil
		}
	}
	return 0, 0, fmt.Errorf("no offsets for partition %d", partition)
}

// Load implements checkpoint.Store: it reads partition 0 up to the high
// watermark it finds first and decodes the key's latest record. A
// tombstone (null value) as the latest record means not found.
func (s *Store) Load(ctx context.Context) (checkpoint.Checkpoint, bool, error) {
	if s.closed.Load() {
		return checkpoint.Checkpoint{}, false, checkpoint.ErrClosed
	}
	first, end, err := s.offsets(ctx)
	if err != nil {
		return checkpoint.Checkpoint{}, false, fmt.Errorf("load checkpoint (%s): list offsets: %w", s.where(), err)
	}
	// The latest record of the key, and of the legacy key for a store
	// that has never saved under the key itself.
	latest := [2]record{{off: -1}, {off: -1}}
	for off := first; off < end; {
		next, found, err := s.scan(ctx, off, end)
		if err != nil {
			return checkpoint.Checkpoint{}, false, fmt.Errorf("load checkpoint (%s): read partition %d at offset %d: %w", s.where(), partition, off, err)
		}
		for i, r := range found {
			if r.off >= 0 {
				latest[i] = r
			}
		}
		if next == off {
			// Nothing at or after off below the high watermark: compaction
			// removed the last records (expired tombstones).
			break
		}
		off = next
	}
	r, where := latest[0], s.where()
	if r.off < 0 {
		r, where = latest[1], fmt.Sprintf("topic %s, legacy key %s", s.topic, s.legacyKey)
	}
	if r.off < 0 || r.value == nil {
		return checkpoint.Checkpoint{}, false, nil
	}
	cp, err := checkpoint.Decode(r.value)
	if err != nil {
		return checkpoint.Checkpoint{}, false, fmt.Errorf("load checkpoint (%s, partition %d offset %d): %w", where, partition, r.off, err)
	}
	return cp, true, nil
}

// record is the value of a key at an offset; off -1 for none.
type record struct {
	value []byte
	off   int64
}

// scan fetches once from off and returns the offset to fetch next and the
// latest records among those in [off, end) of the key and of the legacy
// key, in that order.
func (s *Store) scan(ctx context.Context, off, end int64) (next int64, found [2]record, err error) {
	found = [2]record{{off: -1}, {off: -1}}
	resp, err := s.client.Fetch(ctx, &kafka.FetchRequest{
		Topic:     s.topic,
		Partition: partition,
		Offset:    off,
		MinBytes:  1,
		MaxBytes:  int64(s.maxBytes),
		MaxWait:   fetchMaxWait,
	})
	if err != nil {
		return off, found, err
	}
	if resp.Error != nil {
		return off, found, resp.Error
	}
	next = off
	for {
		rec, err := resp.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return next, found, nil
		}
		if err != nil {
			return off, found, err
		}
		// A fetch returns whole batches, which may start before off.
		if rec.Offset < off {
			continue
		}
		if rec.Offset >= end {
			return next, found, nil
		}
		next = rec.Offset + 1
		key, err := kafka.ReadAll(rec.Key)
		if err != nil {
			return off, found, err
		}
		i := 0
		switch {
		case bytes.Equal(key, s.key):
		case s.legacyKey != nil && bytes.Equal(key, s.legacyKey):
			i = 1
		default:
			continue
		}
		value, err := kafka.ReadAll(rec.Value)
		if err != nil {
			return off, found, err
		}
		found[i] = record{value: value, off: rec.Offset}
	}
}

// Save implements checkpoint.Store: one record to partition 0, acks=all.
// A Save that fails after the broker stored the record leaves that record
// as the latest, which is the checkpoint the caller tried to write.
func (s *Store) Save(ctx context.Context, cp checkpoint.Checkpoint) error {
	if s.closed.Load() {
		return checkpoint.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := checkpoint.Encode(cp)
	if err != nil {
		return fmt.Errorf("save checkpoint (%s): %w", s.where(), err)
	}
	resp, err := s.client.Produce(ctx, &kafka.ProduceRequest{
		Topic:        s.topic,
		Partition:    partition,
		RequiredAcks: kafka.RequireAll,
		// No Time: kafka-go stamps the record with the wall clock, which
		// is what retention and compaction lag measure against.
		Records: kafka.NewRecordReader(kafka.Record{
			Key:   kafka.NewBytes(s.key),
			Value: kafka.NewBytes(data),
		}),
	})
	if err != nil {
		return fmt.Errorf("save checkpoint (%s): %w", s.where(), err)
	}
	if resp.Error != nil {
		return fmt.Errorf("save checkpoint (%s): %w", s.where(), resp.Error)
	}
	return nil
}

// Check implements checkpoint.Store: partition 0's leader answers a list
// offsets request.
func (s *Store) Check(ctx context.Context) error {
	if s.closed.Load() {
		return checkpoint.ErrClosed
	}
	if _, _, err := s.offsets(ctx); err != nil {
		return fmt.Errorf("checkpoint topic %s: %w", s.topic, err)
	}
	return nil
}

// Close implements checkpoint.Store. The client's transport stays open.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}
