package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

// hangGuard bounds a Publish that these tests expect to return: a sink
// that waited for BatchTimeout (a minute here) or sent the partitions one
// after the other would run into it and fail, however fast the machine.
const hangGuard = 20 * time.Second

func guardCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// perPartition counts the batch's messages per topic and partition; the
// keyless ones, which go round robin, per topic only (as "topic/*").
func perPartition(batch []*mapping.Message) map[string]int {
	out := make(map[string]int)
	for _, m := range batch {
		if m.Key == nil {
			out[m.Topic+"/*"]++
			continue
		}
		out[fmt.Sprintf("%s/%d", m.Topic, partitionOf(m.Key))]++
	}
	return out
}

// produced records, per topic and partition, the record count of each
// produce request the cluster gets.
type produced struct {
	mu       sync.Mutex
	requests map[string][]int
}

func observeProduce(t *testing.T, c *kfake.Cluster) *produced {
	t.Helper()
	p := &produced{requests: make(map[string][]int)}
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, rt := range req.(*kmsg.ProduceRequest).Topics {
			for _, rp := range rt.Partitions {
				var rb kmsg.RecordBatch
				if err := rb.ReadFrom(rp.Records); err != nil {
					t.Errorf("produce request for %s/%d: record batch: %v", rt.Topic, rp.Partition, err)
				}
				key := fmt.Sprintf("%s/%d", rt.Topic, rp.Partition)
				p.requests[key] = append(p.requests[key], int(rb.NumRecords))
			}
		}
		return nil, nil, false
	})
	return p
}

// A batch spread over many partitions goes out as one produce request per
// partition holding all of its records, with no wait for BatchTimeout: the
// sink has the whole batch, there is nothing more to wait for.
func TestPublishSendsEachPartitionInOneRequest(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c)
	cfg.BatchTimeout = time.Minute
	s := newSink(t, cfg)
	var g sinktest.Generator
	publishAll(t, s, g.Batch(5)) // connections and metadata warm

	p := observeProduce(t, c)
	batch := g.Batch(300)
	want := perPartition(batch)
	if len(want) < 4 {
		t.Fatalf("test setup: the batch spreads over %d partitions, want several", len(want))
	}
	if err := s.Publish(guardCtx(t), batch); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	got := make(map[string]int)
	for _, key := range slices.Sorted(maps.Keys(p.requests)) {
		reqs := p.requests[key]
		if len(reqs) != 1 {
			t.Errorf("%s: %d produce requests (of %v records), want one", key, len(reqs), reqs)
		}
		for _, n := range reqs {
			got[key] += n
		}
	}
	// Keyless records: all of the topic's, in one request per partition.
	for key := range want {
		topic, ok := strings.CutSuffix(key, "/*")
		if !ok {
			continue
		}
		for p := range testPartitions {
			k := fmt.Sprintf("%s/%d", topic, p)
			got[key] += got[k]
			delete(got, k)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("records per partition:\n%v\nwant\n%v", got, want)
	}
}

// Every partition's request is in flight at once: the broker answers none
// until it has them all. A sink that sent one partition after the other
// would wait for an answer that never comes, and fail on its context.
func TestPublishPutsEveryPartitionInFlightAtOnce(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c)
	cfg.BatchTimeout = time.Minute
	// Several requests per partition: the first of each goes out at once,
	// the others follow their partition's first.
	cfg.BatchSize = 10
	s := newSink(t, cfg)
	var g sinktest.Generator
	warm := g.Batch(5)
	publishAll(t, s, warm)

	batch := g.Batch(300)
	expected := make(map[string]bool)
	for key, n := range perPartition(batch) {
		topic, keyless := strings.CutSuffix(key, "/*")
		if !keyless {
			expected[key] = true
			continue
		}
		if n < testPartitions {
			t.Fatalf("test setup: %d keyless messages of %s do not reach every partition", n, topic)
		}
		for p := range testPartitions {
			expected[fmt.Sprintf("%s/%d", topic, p)] = true
		}
	}
	partitions := len(expected)
	var (
		mu      sync.Mutex
		arrived = make(map[string]bool)
		all     = make(chan struct{})
		giveUp  = make(chan struct{})
	)
	t.Cleanup(func() { close(giveUp) })
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		mu.Lock()
		for _, rt := range req.(*kmsg.ProduceRequest).Topics {
			for _, rp := range rt.Partitions {
				arrived[fmt.Sprintf("%s/%d", rt.Topic, rp.Partition)] = true
			}
		}
		if len(arrived) == partitions {
			select {
			case <-all:
			default:
				close(all)
			}
		}
		mu.Unlock()
		c.SleepControl(func() {
			select {
			case <-all:
			case <-giveUp:
			}
		})
		return nil, nil, false
	})
	if err := s.Publish(guardCtx(t), batch); err != nil {
		mu.Lock()
		t.Fatalf("Publish: %v\n(requests of %d of %d partitions arrived together)", err, len(arrived), partitions)
	}
	checkExactlyOnce(t, consumeAll(t, c, kafka.DefaultDialer), append(warm, batch...))
}

// A Publish cancelled while one partition's request is held reports just
// that partition's records unconfirmed: the others were confirmed. Sending
// them again, once the held request was stored after all, stores nothing
// twice.
func TestCancelledPublishReportsOnlyUnconfirmedPartitions(t *testing.T) {
	c := newCluster(t)
	s := newSink(t, testConfig(c))
	var g sinktest.Generator
	batch := g.Batch(200)

	topic := sinktest.Prefix + ".message"
	heldPartition := int32(partitionOf(batch[0].Key))
	var held []int
	for i, m := range batch {
		if m.Topic == topic && partitionOf(m.Key) == int(heldPartition) {
			held = append(held, i)
		}
	}
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		for _, rt := range req.(*kmsg.ProduceRequest).Topics {
			for _, rp := range rt.Partitions {
				if rt.Topic == topic && rp.Partition == heldPartition {
					c.SleepControl(func() { <-release })
				}
			}
		}
		return nil, nil, false
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Publish(ctx, batch) }()
	others := len(batch) - len(held)
	// Confirmed, not only stored: a request the broker stored whose answer
	// has not reached the sink yet is rightly reported unconfirmed.
	testutil.WaitFor(t, hangGuard, "every other partition to be confirmed", func() bool {
		return kafkasink.FloorSum(s) == int64(others)
	})
	if n := storedCount(t, c.ListenAddrs()...); n != others {
		t.Fatalf("%d records stored, want %d (all but the held partition's)", n, others)
	}
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(hangGuard):
		t.Fatalf("Publish did not return within %v of its context being cancelled", hangGuard)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Publish: %v, want context.Canceled", err)
	}
	pe, ok := errorsAs[*sink.PublishError](err)
	if !ok {
		t.Fatalf("cancelled Publish: %v, want a *sink.PublishError", err)
	}
	if !slices.Equal(pe.Failed, held) {
		t.Errorf("Failed = %v\nwant     %v (the held partition's)", pe.Failed, held)
	}
	// The held request is stored after all; the retry waits for it, reads
	// it back and skips it.
	releaseAll()
	if attempts := publishAll(t, s, sink.Unconfirmed(batch, err)); attempts != 1 {
		t.Errorf("retry took %d attempts, want 1", attempts)
	}
	checkExactlyOnce(t, consumeAll(t, c, kafka.DefaultDialer), batch)
}

// storedCount sums the end offsets of the suite's partitions on the
// brokers at addrs: the sink never deletes, so that is how many records
// they hold.
func storedCount(t testing.TB, addrs ...string) int {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 5 * time.Second}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, topic := range sinktest.Topics() {
		for p := range testPartitions {
			req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
		}
	}
	res, err := client.ListOffsets(testCtx(t), req)
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	n := 0
	for topic, parts := range res.Topics {
		for _, p := range parts {
			if p.Error != nil {
				t.Fatalf("list offsets of %s/%d: %v", topic, p.Partition, p.Error)
			}
			n += int(p.LastOffset)
		}
	}
	return n
}
