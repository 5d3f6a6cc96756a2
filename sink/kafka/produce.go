package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// chain is one partition's share of a Publish: the batch indexes of each
// of its produce requests, in order, and how far it got.
type chain struct {
	p    partition
	reqs [][]int
	size int64 // bytes of the last request, by recordSize
	// Guarded by the Publish's progress lock:
	sent    int   // requests confirmed
	started bool  // reqs[sent] went out
	err     error // why reqs[sent] failed or was not sent
}

// plan assigns the pending messages to partitions (the partition counts
// come from ensureTopics) and cuts each partition's share into produce
// requests of at most BatchSize records and BatchBytes bytes. Chains come
// in the order of their partitions' first message.
func (s *Sink) plan(msgs []*mapping.Message, pending []int, counts map[string]int) []*chain {
	var chains []*chain
	byTopic := make(map[string][]*chain, len(counts))
	var (
		lastTopic string
		parts     []*chain
	)
	for _, i := range pending {
		m := msgs[i]
		if parts == nil || m.Topic != lastTopic {
			lastTopic = m.Topic
			parts = byTopic[m.Topic]
			if parts == nil {
				parts = make([]*chain, counts[m.Topic])
				byTopic[m.Topic] = parts
			}
		}
		id := s.balance(m.Key, len(parts))
		c := parts[id]
		if c == nil {
			c = &chain{p: partition{m.Topic, int32(id)}}
			parts[id] = c
			chains = append(chains, c)
		}
		n := recordSize(m)
		last := len(c.reqs) - 1
		if last < 0 || len(c.reqs[last]) >= s.cfg.BatchSize || c.size+n > s.cfg.BatchBytes {
			c.reqs = append(c.reqs, nil)
			last++
			c.size = 0
		}
		c.reqs[last] = append(c.reqs[last], i)
		c.size += n
	}
	return chains
}

// balance returns the partition of a record with key among n: the
// FNV-1a hash of the key as kafka-go's Hash balancer and Sarama's
// partitioner compute it, so that other producers agree with us; keyless
// records go round robin.
func (s *Sink) balance(key []byte, n int) int {
	if key == nil {
		s.roundRobin++
		return int((s.roundRobin - 1) % uint32(n))
	}
	h := uint32(2166136261)
	for _, c := range key {
		h ^= uint32(c)
		h *= 16777619
	}
	p := int32(h) % int32(n)
	if p < 0 {
		p = -p
	}
	return int(p)
}

// send puts every chain's requests in flight at once, each chain one
// request after the other, and waits for all of them. If ctx ends first it
// returns at once: the requests in flight, which cannot be taken back, go on
// in the background, and settle waits for them before anything else
// touches the partitions.
func (s *Sink) send(ctx context.Context, msgs []*mapping.Message, chains []*chain, before map[partition]int64) error {
	done := make(chan struct{})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.inflight = done
	s.mu.Unlock()

	now := s.clock.Now()
	var (
		progress sync.Mutex // guards the chains' progress fields
		wg       sync.WaitGroup
	)
	for _, c := range chains {
		wg.Go(func() {
			for _, idx := range c.reqs {
				progress.Lock()
				if err := ctx.Err(); err != nil {
					// Nothing of this chain goes out after Publish returned.
					c.err = err
					progress.Unlock()
					return
				}
				c.started = true
				progress.Unlock()

				err := s.produce(c.p, msgs, idx, now)

				progress.Lock()
				if err != nil {
					c.err = err
				} else {
					c.sent++
					c.started = false
				}
				progress.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()

	select {
	case <-done:
	case <-ctx.Done():
	}
	select {
	case <-done:
		s.mu.Lock()
		if s.inflight == done {
			s.inflight = nil
		}
		s.mu.Unlock()
	default:
	}

	progress.Lock()
	defer progress.Unlock()
	var (
		failed []int
		causes []failure
		dirty  = make(map[string]struct{})
	)
	for _, c := range chains {
		if c.sent == len(c.reqs) {
			continue
		}
		for _, idx := range c.reqs[c.sent:] {
			failed = append(failed, idx...)
		}
		err := c.err
		if err == nil {
			// Still in flight: ctx ended first.
			err = ctx.Err()
		}
		causes = append(causes, failure{c.p, err})
		if c.started {
			dirty[c.p.topic] = struct{}{}
		}
	}
	if len(failed) == 0 {
		return nil
	}
	slices.Sort(failed)
	s.markDirty(dirty, before)
	total := 0
	for _, c := range chains {
		for _, idx := range c.reqs {
			total += len(idx)
		}
	}
	return &sink.PublishError{Failed: failed, Err: withContext(ctx, summarize(causes, len(failed), total))}
}

// produce sends one request and, once all in-sync replicas have it, raises
// the partition's floor past its records. It never retries: a retry after
// an answer was lost would store the records twice. Failures go back to the
// caller instead, and the next Publish reads back what the failed request
// stored.
func (s *Sink) produce(p partition, msgs []*mapping.Message, idx []int, now time.Time) error {
	// The caller's context does not bound it: a request cancelled half
	// way may still be stored, and the answer says where. The producer's
	// timeout, WriteTimeout, does.
	res, err := s.producer.Produce(context.Background(), &kafka.ProduceRequest{
		Topic:        p.topic,
		Partition:    int(p.id),
		RequiredAcks: kafka.RequireAll,
		Compression:  s.codec,
		Records:      &records{msgs: msgs, idx: idx, now: now},
	})
	if err != nil {
		return err
	}
	if res.Error != nil {
		return res.Error
	}
	for i, e := range res.RecordErrors {
		return fmt.Errorf("record %d of the request: %w", i, e)
	}
	s.mu.Lock()
	if next := res.BaseOffset + int64(len(idx)); next > s.floors[p] {
		s.floors[p] = next
	}
	s.mu.Unlock()
	return nil
}

// failure is why a partition's request failed.
type failure struct {
	p   partition
	err error
}

// summarize turns the partitions' failures into one error per distinct
// cause, naming a few of the partitions it hit, still matched by
// errors.Is.
func summarize(fs []failure, failed, total int) error {
	const named = 4
	type cause struct {
		err   error
		parts []string
	}
	var causes []*cause
	byText := make(map[string]*cause)
	for _, f := range fs {
		c := byText[f.err.Error()]
		if c == nil {
			c = &cause{err: f.err}
			byText[f.err.Error()] = c
			causes = append(causes, c)
		}
		c.parts = append(c.parts, fmt.Sprintf("%s/%d", f.p.topic, f.p.id))
	}
	errs := make([]error, len(causes))
	for i, c := range causes {
		where := strings.Join(c.parts[:min(len(c.parts), named)], ", ")
		if len(c.parts) > named {
			where += fmt.Sprintf(" and %d more", len(c.parts)-named)
		}
		errs[i] = fmt.Errorf("%w (%s)", c.err, where)
	}
	return fmt.Errorf("kafka write failed for %d of %d records, %d partition(s): %w", failed, total, len(fs), errors.Join(errs...))
}

// records is the record set of one produce request, read once while the
// request is encoded: the messages at idx as records (docs/names.md).
// Every record reuses the same buffers, which kafka-go allows (a record is
// valid until the next ReadRecord), so that the records cost no allocation.
type records struct {
	msgs []*mapping.Message
	idx  []int
	now  time.Time

	next       int
	rec        kafka.Record
	key, value bytesReader
	headers    []kafka.Header
}

func (r *records) ReadRecord() (*kafka.Record, error) {
	if r.next >= len(r.idx) {
		return nil, io.EOF
	}
	m := r.msgs[r.idx[r.next]]
	r.next++
	// The header values are the strings' own bytes, not a copy: kafka-go
	// only reads them, to encode the record.
	r.headers = r.headers[:0]
	for _, h := range m.Headers {
		r.headers = append(r.headers, kafka.Header{Key: h.Key, Value: stringBytes(h.Value)})
	}
	r.rec = kafka.Record{Time: r.now, Headers: r.headers}
	if m.Key != nil {
		r.key.Reset(m.Key)
		r.rec.Key = &r.key
	}
	if m.Payload != nil {
		r.value.Reset(m.Payload)
		r.rec.Value = &r.value
	}
	return &r.rec, nil
}

type bytesReader struct{ bytes.Reader }

func (*bytesReader) Close() error { return nil }

// stringBytes returns the bytes of v without copying them; they must not
// be written to.
func stringBytes(v string) []byte {
	if v == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(v), len(v))
}
