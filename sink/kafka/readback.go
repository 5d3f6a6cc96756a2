package kafka

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/zulip-bridge/zulip-bridge/mapping"
)

const (
	// scanWorkers is how many partitions a read-back fetches at once.
	scanWorkers = 4
	// fetchMaxWait bounds a fetch that finds nothing; a read-back only asks
	// below the end offset it read, where records are there to return.
	fetchMaxWait = 250 * time.Millisecond
)

// PublishedSince returns the Zulip-Dedup-Key values of the records stored
// in the owned topics after pos (sink.Recoverer).
//
// Every partition of every owned topic, and of every topic pos names, is
// read from its offset in pos, or from its earliest offset when pos does not
// name it (a topic or partition that appeared after the checkpoint; all of
// them for a nil pos), up to the end offset read when the call starts. Only
// the keys are kept. It ends with ctx, and logs its progress every
// ReadBackProgress. Afterwards the sink takes the end offsets it read as its
// floors.
func (s *Sink) PublishedSince(ctx context.Context, raw json.RawMessage) (map[string]struct{}, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	pos, err := parsePosition(raw)
	if err != nil {
		return nil, err
	}
	if err := s.settle(ctx); err != nil {
		return nil, fmt.Errorf("kafka read-back: %w", err)
	}
	parts, err := s.partitions(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("kafka read-back: %w", withContext(ctx, err))
	}
	owned := make(map[string]bool)
	for _, p := range parts {
		owned[p.topic] = true
	}
	var others []string
	for topic := range pos.Offsets {
		if !owned[topic] {
			others = append(others, topic)
		}
	}
	// A topic in the position but outside the prefix was written by this
	// bridge under another configuration: still ours to read.
	for _, topic := range others {
		ps, err := s.partitions(ctx, []string{topic})
		if errors.Is(err, ErrUnknownTopic) {
			s.log.Warn("kafka: a topic of the checkpoint no longer exists; what it held cannot be read back", "topic", topic)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kafka read-back: %w", withContext(ctx, err))
		}
		parts = append(parts, ps...)
	}

	ranges, err := s.ranges(ctx, parts, func(p partition) (int64, bool) {
		off, ok := pos.Offsets[p.topic][p.id]
		return off, ok
	})
	if err != nil {
		return nil, fmt.Errorf("kafka read-back: %w", withContext(ctx, err))
	}
	start := s.clock.Now()
	keys, records, err := s.scan(ctx, ranges, nil)
	if err != nil {
		return nil, fmt.Errorf("kafka read-back: %w", err)
	}
	s.raiseFloors(ends(ranges))
	s.mu.Lock()
	s.discovered = start
	s.mu.Unlock()
	s.log.Info("kafka: read back what was published after the checkpoint",
		"partitions", len(ranges), "records", records, "keys", len(keys), "took", s.clock.Since(start))
	return keys, nil
}

// readBackDirty reads back the topics that a failed write left dirty and
// returns which dedup keys of msgs they already hold.
func (s *Sink) readBackDirty(ctx context.Context, msgs []*mapping.Message) (map[string]struct{}, error) {
	s.mu.Lock()
	dirty := s.dirty
	s.mu.Unlock()
	if len(dirty) == 0 {
		return nil, nil
	}
	var parts []partition
	for topic := range dirty {
		ps, err := s.partitions(ctx, []string{topic})
		if err != nil {
			return nil, fmt.Errorf("read back after a failed write: %w", err)
		}
		parts = append(parts, ps...)
	}
	ranges, err := s.ranges(ctx, parts, func(p partition) (int64, bool) {
		off, ok := dirty[p.topic][p.id]
		return off, ok
	})
	if err != nil {
		return nil, fmt.Errorf("read back after a failed write: %w", err)
	}
	want := make(map[string]struct{}, len(msgs))
	for _, m := range msgs {
		want[m.DedupKey] = struct{}{}
	}
	start := s.clock.Now()
	keys, records, err := s.scan(ctx, ranges, want)
	if err != nil {
		return nil, fmt.Errorf("read back after a failed write: %w", err)
	}
	s.raiseFloors(ends(ranges))
	s.mu.Lock()
	for topic := range dirty {
		delete(s.dirty, topic)
	}
	s.mu.Unlock()
	s.log.Debug("kafka: read back after a failed write", "partitions", len(ranges), "records", records, "found", len(keys), "took", s.clock.Since(start))
	return keys, nil
}

// scanRange is one partition to read, from offset from up to (excluding) to.
type scanRange struct {
	p        partition
	from, to int64
}

func ends(ranges []scanRange) map[partition]int64 {
	out := make(map[partition]int64, len(ranges))
	for _, r := range ranges {
		out[r.p] = r.to
	}
	return out
}

// ranges turns start offsets into ranges that end at the partitions'
// current end, starting at the earliest offset where from has none, where
// retention removed the start, or where the start lies beyond the end (the
// topic was deleted and created again).
func (s *Sink) ranges(ctx context.Context, parts []partition, from func(partition) (int64, bool)) ([]scanRange, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	first, err := s.offsets(ctx, parts, kafka.FirstOffset)
	if err != nil {
		return nil, err
	}
	last, err := s.offsets(ctx, parts, kafka.LastOffset)
	if err != nil {
		return nil, err
	}
	out := make([]scanRange, 0, len(parts))
	for _, p := range parts {
		r := scanRange{p: p, from: first[p], to: last[p]}
		if off, ok := from(p); ok {
			switch {
			case off > r.to:
				s.log.Warn("kafka: recorded offset is beyond the end of the partition, reading it all",
					"topic", p.topic, "partition", p.id, "offset", off, "end", r.to)
			case off < r.from:
				s.log.Warn("kafka: records after the recorded offset were deleted by retention and cannot be read back",
					"topic", p.topic, "partition", p.id, "offset", off, "earliest", r.from)
			default:
				r.from = off
			}
		}
		if r.from < r.to {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b scanRange) int {
		return cmp.Or(cmp.Compare(a.p.topic, b.p.topic), cmp.Compare(a.p.id, b.p.id))
	})
	return out, nil
}

// scan reads the ranges, scanWorkers partitions at a time, and returns the
// dedup keys found (only those in want, unless want is nil) and how many
// records it read.
func (s *Sink) scan(parent context.Context, ranges []scanRange, want map[string]struct{}) (map[string]struct{}, int64, error) {
	keys := make(map[string]struct{})
	if len(ranges) == 0 {
		return keys, 0, nil
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)

	var (
		records, done atomic.Int64
		mu            sync.Mutex
		wg            sync.WaitGroup
	)
	found := func(key string) {
		if want != nil {
			if _, ok := want[key]; !ok {
				return
			}
		}
		mu.Lock()
		keys[key] = struct{}{}
		mu.Unlock()
	}
	work := make(chan scanRange)
	for range min(scanWorkers, len(ranges)) {
		wg.Go(func() {
			for r := range work {
				if err := s.scanPartition(ctx, r, found, &records); err != nil {
					cancel(err)
					return
				}
				done.Add(1)
			}
		})
	}

	stopProgress := s.logProgress(len(ranges), &done, &records)
	defer stopProgress()
feed:
	for _, r := range ranges {
		select {
		case work <- r:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, records.Load(), withContext(parent, err)
	}
	return keys, records.Load(), nil
}

// logProgress logs every ReadBackProgress until the returned function is
// called, so that a long read-back shows it is moving.
func (s *Sink) logProgress(partitions int, done, records *atomic.Int64) (stop func()) {
	// Taken before the ticker exists, so that a tick always finds it: a
	// clock that moves between the two (a test's fake clock, which waits
	// for the ticker) would otherwise log an elapsed time of zero.
	start := s.clock.Now()
	ticker := s.clock.NewTicker(s.cfg.ReadBackProgress)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ticker.Chan():
				s.log.Info("kafka: reading back",
					"partitions_done", done.Load(), "partitions", partitions,
					"records", records.Load(), "elapsed", s.clock.Since(start))
			case <-quit:
				return
			}
		}
	})
	return func() {
		ticker.Stop()
		close(quit)
		wg.Wait()
	}
}

// scanPartition reads one range and reports the dedup key of each record.
func (s *Sink) scanPartition(ctx context.Context, r scanRange, found func(string), records *atomic.Int64) error {
	off := r.from
	for off < r.to {
		res, err := s.client.Fetch(ctx, &kafka.FetchRequest{
			Topic:     r.p.topic,
			Partition: int(r.p.id),
			Offset:    off,
			MinBytes:  1,
			MaxBytes:  int64(s.cfg.ReadBackFetchBytes),
			MaxWait:   fetchMaxWait,
		})
		if err != nil {
			return fmt.Errorf("fetch %s/%d at offset %d: %w", r.p.topic, r.p.id, off, err)
		}
		if res.Error != nil {
			return fmt.Errorf("fetch %s/%d at offset %d: %w", r.p.topic, r.p.id, off, res.Error)
		}
		next, err := readRecords(res.Records, off, r.to, found)
		records.Add(next - off)
		if err != nil && next == off {
			return fmt.Errorf("read %s/%d at offset %d: %w", r.p.topic, r.p.id, off, err)
		}
		if next == off {
			return fmt.Errorf("read %s/%d: no record at offset %d below the end offset %d", r.p.topic, r.p.id, off, r.to)
		}
		off = next
	}
	return nil
}

// readRecords reports the dedup keys of the records in [from, to) and
// returns the offset after the last one read. A response may start before
// from and end in a truncated batch; both are skipped.
func readRecords(rr kafka.RecordReader, from, to int64, found func(string)) (int64, error) {
	next := from
	for {
		rec, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return next, nil
		}
		if err != nil {
			return next, err
		}
		off := rec.Offset
		if off >= from && off < to {
			if key, ok := dedupKey(rec.Headers); ok {
				found(key)
			}
			next = off + 1
		}
		// Keys and values borrow pooled buffers until closed.
		if rec.Key != nil {
			rec.Key.Close()
		}
		if rec.Value != nil {
			rec.Value.Close()
		}
		if off >= to-1 {
			return next, nil
		}
	}
}

func dedupKey(headers []kafka.Header) (string, bool) {
	for _, h := range headers {
		if h.Key == mapping.HeaderDedupKey {
			return string(h.Value), true
		}
	}
	return "", false
}
