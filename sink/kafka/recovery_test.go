package kafka_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

// The bridge's crash: a batch is published, partly or wholly, and the
// process dies before the checkpoint records it. The restarted bridge gets
// the batch again from Zulip; the read-back names what is already stored,
// and publishing the rest leaves every record in its topic exactly once,
// including records of a topic that did not exist at the checkpoint.
func TestCrashBeforeCheckpoint(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c)
	cfg.CreateTopics = true
	cfg.Partitions = 2
	ctx := testCtx(t)
	var g sinktest.Generator

	first := newSink(t, cfg)
	checkpointed := g.Batch(60)
	publishAll(t, first, checkpointed)
	pos, err := first.Position(ctx)
	if err != nil {
		t.Fatalf("Position: %v", err)
	}

	// The batch after the checkpoint; its second half also goes to a topic
	// that is created only now.
	batch := g.Batch(80)
	for _, m := range batch[50:] {
		if m.Topic == sinktest.Prefix+".typing" {
			m.Topic = sinktest.Prefix + ".new_type"
		}
	}
	published := batch[:65]
	publishAll(t, first, published)
	// Crash: the first sink is never used again and no checkpoint is
	// written. (Its cleanup closes it at the end of the test.)

	restarted := newSink(t, cfg)
	stored, err := restarted.PublishedSince(ctx, pos)
	if err != nil {
		t.Fatalf("PublishedSince: %v", err)
	}
	if want := keysOf(published); !maps.Equal(stored, want) {
		t.Errorf("PublishedSince found %d keys, want the %d published after the checkpoint\nmissing: %v\nextra: %v",
			len(stored), len(want), missingKeys(want, stored), missingKeys(stored, want))
	}
	publishAll(t, restarted, without(batch, stored))

	all := append(slices.Clone(checkpointed), batch...)
	var records []storedRecord
	for _, topic := range append(sinktest.Topics(), sinktest.Prefix+".new_type") {
		records = append(records, consume(t, c, kafka.DefaultDialer, topic)...)
	}
	checkExactlyOnce(t, records, all)
}

// Without the read-back, the same restart stores the batch twice: the
// crash test above would catch a read-back that found nothing.
func TestCrashWithoutReadBackDuplicates(t *testing.T) {
	c := newCluster(t)
	ctx := testCtx(t)
	cfg := testConfig(c)
	var g sinktest.Generator
	first := newSink(t, cfg)
	pos, err := first.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	batch := g.Batch(20)
	publishAll(t, first, batch)

	restarted := newSink(t, cfg)
	publishAll(t, restarted, batch)
	if n := len(consumeAll(t, c, kafka.DefaultDialer)); n != 2*len(batch) {
		t.Fatalf("broker holds %d records, want %d: the premise of the crash test is wrong", n, 2*len(batch))
	}
	stored, err := restarted.PublishedSince(ctx, pos)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(stored, keysOf(batch)) {
		t.Errorf("PublishedSince found %d keys, want %d", len(stored), len(batch))
	}
}

// A nil position (no checkpoint) reads back every owned topic from its
// start; topics outside the prefix are left alone.
func TestPublishedSinceNilReadsOwnedTopics(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "other.events"))
	cfg := testConfig(c)
	ctx := testCtx(t)
	var g sinktest.Generator
	batch := g.Batch(30)
	publishAll(t, newSink(t, cfg), batch)

	w := &kafka.Writer{Addr: kafka.TCP(c.ListenAddrs()...), Topic: "other.events", RequiredAcks: kafka.RequireAll}
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("{}"), Headers: []kafka.Header{{Key: mapping.HeaderDedupKey, Value: []byte("not ours")}}}); err != nil {
		t.Fatal(err)
	}
	w.Close()

	for _, pos := range []json.RawMessage{nil, json.RawMessage("null"), json.RawMessage(" ")} {
		got, err := newSink(t, cfg).PublishedSince(ctx, pos)
		if err != nil {
			t.Fatalf("PublishedSince(%q): %v", pos, err)
		}
		if !maps.Equal(got, keysOf(batch)) {
			t.Errorf("PublishedSince(%q) found %d keys, want the %d published; extra: %v", pos, len(got), len(batch), missingKeys(got, keysOf(batch)))
		}
	}
}

// Position costs no round trip per batch: after the first, neither
// Publish nor Position lists offsets again while the topics stay the same.
func TestPositionAsksNoOffsetsPerBatch(t *testing.T) {
	c := newCluster(t)
	ctx := testCtx(t)
	clock := clockwork.NewFakeClock()
	s := newSink(t, testConfig(c), kafkasink.WithClock(clock))
	var g sinktest.Generator
	publishAll(t, s, g.Batch(20))
	if _, err := s.Position(ctx); err != nil {
		t.Fatal(err)
	}
	listOffsets := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListOffsets}, Observe: true, Count: -1})
	defer listOffsets.Remove()
	var last json.RawMessage
	for range 10 {
		publishAll(t, s, g.Batch(20))
		pos, err := s.Position(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(pos) == string(last) {
			t.Errorf("Position did not move after a publish: %s", pos)
		}
		last = pos
	}
	if n := listOffsets.Hits(); n != 0 {
		t.Errorf("%d ListOffsets request(s) during 10 publish+Position rounds, want 0", n)
	}
}

// Every record confirmed after Position lies at or after its offsets, per
// partition, for the partitions that record was written to.
func TestPositionIsAtOrBeforeLaterRecords(t *testing.T) {
	c := newCluster(t)
	ctx := testCtx(t)
	s := newSink(t, testConfig(c))
	var g sinktest.Generator
	publishAll(t, s, g.Batch(50))
	raw, err := s.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pos struct {
		V       int                        `json:"v"`
		Offsets map[string]map[int32]int64 `json:"offsets"`
	}
	if err := json.Unmarshal(raw, &pos); err != nil {
		t.Fatalf("position %s: %v", raw, err)
	}
	for _, topic := range sinktest.Topics() {
		if len(pos.Offsets[topic]) != testPartitions {
			t.Errorf("position has %d partitions of %s, want %d: %s", len(pos.Offsets[topic]), topic, testPartitions, raw)
		}
	}
	later := g.Batch(50)
	publishAll(t, s, later)
	laterKeys := keysOf(later)
	for _, r := range consumeAll(t, c, kafka.DefaultDialer) {
		_, isLater := laterKeys[r.header(mapping.HeaderDedupKey)]
		floor := pos.Offsets[r.Topic][int32(r.Partition)]
		if isLater && r.Offset < floor {
			t.Errorf("%s/%d@%d confirmed after the position, which says %d", r.Topic, r.Partition, r.Offset, floor)
		}
		if !isLater && r.Offset >= floor {
			t.Errorf("%s/%d@%d confirmed before the position, which says %d: read-backs would be longer than needed", r.Topic, r.Partition, r.Offset, floor)
		}
	}
}

func TestPublishedSinceRejectsForeignPositions(t *testing.T) {
	c := newCluster(t)
	s := newSink(t, testConfig(c))
	for _, raw := range []string{`{"v":2,"offsets":{}}`, `{"offsets":{}}`, `[1,2]`, `{"v":1,"offsets":{"zulip.message":{"0":-5}}}`, `{"v":1,"stream":"x"}`} {
		if _, err := s.PublishedSince(testCtx(t), json.RawMessage(raw)); !errors.Is(err, kafkasink.ErrBadPosition) {
			t.Errorf("PublishedSince(%s): %v, want ErrBadPosition", raw, err)
		}
	}
}

// A Publish cancelled while its records are in flight returns at once;
// the records may still be stored, and sending them again stores them
// once.
func TestCancelledPublishIsNotStoredTwice(t *testing.T) {
	c := newCluster(t)
	s := newSink(t, testConfig(c))
	var g sinktest.Generator
	batch := g.Batch(30)

	// Every produce request is held until release: the partitions go out
	// at once, and none may be answered before the cancellation.
	release := make(chan struct{})
	held := make(chan struct{})
	var first sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		first.Do(func() { close(held) })
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Publish(ctx, batch) }()
	<-held
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Publish: %v, want context.Canceled", err)
	}
	if n := len(sink.Unconfirmed(batch, err)); n != len(batch) {
		t.Errorf("%d of %d unconfirmed, want all: the held requests were not answered", n, len(batch))
	}
	close(release)
	publishAll(t, s, sink.Unconfirmed(batch, err))
	checkExactlyOnce(t, consumeAll(t, c, kafka.DefaultDialer), batch)
}

// A long read-back logs its progress on the injected clock.
func TestReadBackLogsProgress(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c)
	var g sinktest.Generator
	batch := g.Batch(20)
	publishAll(t, newSink(t, cfg), batch)

	var logs logBuffer
	clock := clockwork.NewFakeClock()
	cfg.ReadBackProgress = time.Minute
	s := newSinkLog(t, cfg, logs.logger(), kafkasink.WithClock(clock))

	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	type result struct {
		keys map[string]struct{}
		err  error
	}
	done := make(chan result, 1)
	go func() {
		keys, err := s.PublishedSince(context.Background(), nil)
		done <- result{keys, err}
	}()
	ctx := testCtx(t)
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("read-back never started its progress ticker: %v", err)
	}
	clock.Advance(time.Minute)
	testutil.WaitFor(t, 20*time.Second, "a progress line", func() bool {
		return containsAll(logs.String(), "kafka: reading back", "partitions_done=0", "elapsed=1m0s")
	})
	close(release)
	r := <-done
	if r.err != nil {
		t.Fatalf("PublishedSince: %v", r.err)
	}
	if !maps.Equal(r.keys, keysOf(batch)) {
		t.Errorf("found %d keys, want %d", len(r.keys), len(batch))
	}
	if !strings.Contains(logs.String(), "read back what was published after the checkpoint") {
		t.Errorf("no summary line in:\n%s", logs.String())
	}
}

// A read-back ends with its context.
func TestReadBackHonoursContext(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c)
	var g sinktest.Generator
	publishAll(t, newSink(t, cfg), g.Batch(20))
	s := newSink(t, cfg)

	release := make(chan struct{})
	defer close(release)
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.PublishedSince(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PublishedSince with a stalled broker: %v, want context.DeadlineExceeded", err)
	}
}

func missingKeys(want, got map[string]struct{}) []string {
	var out []string
	for k := range want {
		if _, ok := got[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
