package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/zulip-bridge/zulip-bridge/mapping"
)

// positionVersion is the version of the position encoding; PublishedSince
// refuses others rather than misread them.
const positionVersion = 1

// position is the JSON a checkpoint stores: per topic and partition, an
// offset at or before every record confirmed after it was taken.
type position struct {
	Version int                        `json:"v"`
	Offsets map[string]map[int32]int64 `json:"offsets"`
}

// Position returns the floors of every owned partition the sink knows
// (sink.Recoverer). It costs no round trip, except that every
// discoverInterval it gives new owned topics and partitions, found in the
// transport's metadata cache, a floor with one ListOffsets request.
func (s *Sink) Position(ctx context.Context) (json.RawMessage, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	due := s.discovered.IsZero() || s.clock.Since(s.discovered) >= discoverInterval
	s.mu.Unlock()
	if due {
		if err := s.discover(ctx); err != nil {
			// The floors already known are still right; a topic left out is
			// read back from its start. Worth a line, not a failed
			// checkpoint.
			s.log.Warn("kafka: cannot list owned topics for the position", "error", err)
		}
	}
	pos := position{Version: positionVersion, Offsets: make(map[string]map[int32]int64)}
	s.mu.Lock()
	for p, off := range s.floors {
		if pos.Offsets[p.topic] == nil {
			pos.Offsets[p.topic] = make(map[int32]int64)
		}
		pos.Offsets[p.topic][p.id] = off
	}
	s.mu.Unlock()
	b, err := json.Marshal(pos)
	if err != nil {
		return nil, fmt.Errorf("encode kafka position: %w", err)
	}
	return b, nil
}

func parsePosition(raw json.RawMessage) (position, error) {
	var pos position
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return pos, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pos); err != nil {
		return pos, fmt.Errorf("%w: %v", ErrBadPosition, err)
	}
	if pos.Version != positionVersion {
		return pos, fmt.Errorf("%w: version %d, this bridge reads version %d", ErrBadPosition, pos.Version, positionVersion)
	}
	for topic, parts := range pos.Offsets {
		for id, off := range parts {
			if id < 0 || off < 0 {
				return pos, fmt.Errorf("%w: %s partition %d offset %d", ErrBadPosition, topic, id, off)
			}
		}
	}
	return pos, nil
}

// discover gives every partition of every owned topic in the metadata
// cache a floor, if it has none yet.
func (s *Sink) discover(ctx context.Context) error {
	// Counted from the attempt, failed or not, so that a broker in trouble
	// costs one request and one log line per interval, not per batch.
	s.mu.Lock()
	s.discovered = s.clock.Now()
	s.mu.Unlock()
	parts, err := s.partitions(ctx, nil)
	if err != nil {
		return err
	}
	return s.giveFloors(ctx, parts)
}

// giveFloors sets the floor of each partition that has none to its end
// offset. Nothing is in flight (callers settle first), so records written
// from now on land at or after it.
func (s *Sink) giveFloors(ctx context.Context, parts []partition) error {
	s.mu.Lock()
	var missing []partition
	for _, p := range parts {
		if _, ok := s.floors[p]; !ok {
			missing = append(missing, p)
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	ends, err := s.offsets(ctx, missing, kafka.LastOffset)
	if err != nil {
		return err
	}
	s.raiseFloors(ends)
	return nil
}

func (s *Sink) raiseFloors(ends map[partition]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, off := range ends {
		if cur, ok := s.floors[p]; !ok || off > cur {
			s.floors[p] = off
		}
	}
}

// partitions lists the partitions of topics, or of every owned topic when
// topics is nil, from the transport's metadata cache. A topic missing from
// the cluster fails with ErrUnknownTopic.
func (s *Sink) partitions(ctx context.Context, topics []string) ([]partition, error) {
	md, err := s.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("kafka metadata: %w", err)
	}
	var out []partition
	for _, t := range md.Topics {
		if topics == nil && !strings.HasPrefix(t.Name, s.cfg.TopicPrefix) {
			continue
		}
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, t.Name)
			}
			return nil, fmt.Errorf("kafka metadata of %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			out = append(out, partition{t.Name, int32(p.ID)})
		}
	}
	return out, nil
}

// offsets asks for the earliest (kafka.FirstOffset) or end
// (kafka.LastOffset) offset of each partition.
func (s *Sink) offsets(ctx context.Context, parts []partition, which int64) (map[partition]int64, error) {
	req := &kafka.ListOffsetsRequest{Topics: make(map[string][]kafka.OffsetRequest)}
	for _, p := range parts {
		req.Topics[p.topic] = append(req.Topics[p.topic], kafka.OffsetRequest{Partition: int(p.id), Timestamp: which})
	}
	res, err := s.client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("kafka list offsets: %w", err)
	}
	out := make(map[partition]int64, len(parts))
	for topic, ps := range res.Topics {
		for _, po := range ps {
			if po.Error != nil {
				return nil, fmt.Errorf("kafka list offsets of %s/%d: %w", topic, po.Partition, po.Error)
			}
			off := po.LastOffset
			if which == kafka.FirstOffset {
				off = po.FirstOffset
			}
			out[partition{topic, int32(po.Partition)}] = off
		}
	}
	for _, p := range parts {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("kafka list offsets: no answer for %s/%d", p.topic, p.id)
		}
	}
	return out, nil
}

// ensureTopics returns the partition count of every topic of msgs, from
// the transport's metadata cache (no round trip once it is warm), after
// creating missing topics when the config says so. Partitions without a
// floor, new topics' and new partitions of known topics, get one.
func (s *Sink) ensureTopics(ctx context.Context, msgs []*mapping.Message) (map[string]int, error) {
	var topics []string
	for _, m := range msgs {
		if !slices.Contains(topics, m.Topic) {
			topics = append(topics, m.Topic)
		}
	}
	slices.Sort(topics)
	parts, err := s.partitions(ctx, topics)
	if errors.Is(err, ErrUnknownTopic) && s.cfg.CreateTopics {
		var missing []string
		for _, t := range topics {
			if _, err := s.partitions(ctx, []string{t}); errors.Is(err, ErrUnknownTopic) {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			if err := s.createTopics(ctx, missing); err != nil {
				return nil, err
			}
		}
		parts, err = s.partitions(ctx, topics)
	}
	if errors.Is(err, ErrUnknownTopic) {
		return nil, fmt.Errorf("%w (create it, or set BRIDGE_KAFKA_CREATE_TOPICS=true)", err)
	}
	if err != nil {
		return nil, err
	}
	if err := s.giveFloors(ctx, parts); err != nil {
		return nil, err
	}
	counts := make(map[string]int, len(topics))
	for _, p := range parts {
		counts[p.topic]++
	}
	for _, t := range topics {
		if counts[t] == 0 {
			return nil, fmt.Errorf("kafka metadata lists no partition of %s", t)
		}
	}
	return counts, nil
}

// countLabel is how a created topic's partition count or replication
// factor is logged: -1 asks the broker for its default, which is what the
// operator should read, not -1.
func (s *Sink) countLabel(n int) any {
	if n <= 0 {
		return "broker default"
	}
	return n
}

// createTopics creates whichever of topics are missing. A topic that
// appeared meanwhile is fine.
func (s *Sink) createTopics(ctx context.Context, topics []string) error {
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{
			Topic:             t,
			NumPartitions:     s.cfg.Partitions,
			ReplicationFactor: s.cfg.ReplicationFactor,
		})
	}
	res, err := s.client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create kafka topics: %w", err)
	}
	for _, t := range topics {
		switch err := res.Errors[t]; {
		case err == nil:
			s.log.Info("kafka: created topic", "topic", t, "partitions", s.createdPartitions(ctx, t), "replication_factor", s.countLabel(s.cfg.ReplicationFactor))
		case errors.Is(err, kafka.TopicAlreadyExists):
		default:
			return fmt.Errorf("create kafka topic %s: %w", t, err)
		}
	}
	return nil
}

// createdPartitions is the partition count a topic just created has, as
// the broker's metadata says (with -1 the broker chose it); what was asked
// for when the metadata cannot say.
func (s *Sink) createdPartitions(ctx context.Context, topic string) any {
	if parts, err := s.partitions(ctx, []string{topic}); err == nil && len(parts) > 0 {
		return len(parts)
	}
	return s.countLabel(s.cfg.Partitions)
}
