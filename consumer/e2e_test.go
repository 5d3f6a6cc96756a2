package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/zulip-bridge/zulip-bridge/consumer"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

// handled is one delivery a test's handler or callback saw.
type handled struct {
	key   string
	meta  consumer.Metadata
	event consumer.Event
	err   error // what the handler returned
}

// recorder is the handler and the control callbacks of an end-to-end test:
// it records every delivery, fails chosen first deliveries, and calls
// stopAt once after `after` successes.
type recorder struct {
	mu        sync.Mutex
	log       []handled
	successes map[string]int
	failed    map[string]int
	fresh     int // distinct keys seen
	// failEvery: the first delivery of every failEvery-th new key fails.
	failEvery int
	after     int
	stopAt    func(key string) error // nil error: carry on
	resyncs   []*consumer.Resync
	states    []*consumer.State
	invalids  []*consumer.Invalid
}

func newRecorder(failEvery int) *recorder {
	return &recorder{successes: map[string]int{}, failed: map[string]int{}, failEvery: failEvery}
}

func (r *recorder) record(meta consumer.Metadata, ev consumer.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := meta.DedupKey
	if r.successes[key] == 0 && r.failed[key] == 0 {
		r.fresh++
		if r.failEvery > 0 && r.fresh%r.failEvery == 0 {
			r.failed[key]++
			err := errors.New("handler fails once")
			r.log = append(r.log, handled{key: key, meta: meta, event: ev, err: err})
			return err
		}
	}
	if r.stopAt != nil && r.count() >= r.after {
		if err := r.stopAt(key); err != nil {
			r.stopAt = nil
			r.failed[key]++
			r.log = append(r.log, handled{key: key, meta: meta, event: ev, err: err})
			return err
		}
		r.stopAt = nil
	}
	r.successes[key]++
	r.log = append(r.log, handled{key: key, meta: meta, event: ev})
	return nil
}

func (r *recorder) count() int { return len(r.successes) }

func (r *recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count()
}

func (r *recorder) options() consumer.Options {
	return consumer.Options{
		Backoff: func(int) time.Duration { return time.Millisecond },
		Logger:  slog.New(slog.DiscardHandler),
		OnResync: func(_ context.Context, e *consumer.Resync, m consumer.Metadata) error {
			if err := r.record(m, e); err != nil {
				return err
			}
			r.mu.Lock()
			r.resyncs = append(r.resyncs, e)
			r.mu.Unlock()
			return nil
		},
		OnState: func(_ context.Context, e *consumer.State, m consumer.Metadata) error {
			if err := r.record(m, e); err != nil {
				return err
			}
			r.mu.Lock()
			r.states = append(r.states, e)
			r.mu.Unlock()
			return nil
		},
		OnInvalid: func(_ context.Context, e *consumer.Invalid, m consumer.Metadata) error {
			if err := r.record(m, e); err != nil {
				return err
			}
			r.mu.Lock()
			r.invalids = append(r.invalids, e)
			r.mu.Unlock()
			return nil
		},
	}
}

func (r *recorder) handler(ctx context.Context, d *consumer.Delivery) error {
	if d.DecodeErr != nil {
		return fmt.Errorf("decode: %w", d.DecodeErr)
	}
	return r.record(d.Meta, d.Event)
}

// successesInOrder are the successful deliveries in the order they were
// handled.
func (r *recorder) successesInOrder() []handled {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []handled
	for _, h := range r.log {
		if h.err == nil {
			out = append(out, h)
		}
	}
	return out
}

// check holds what the recorder saw to what the broker stores: every
// message handled successfully exactly once, typed, with its metadata;
// every failed delivery delivered again and then handled; one resync for
// the lost queue, a state per queue, the invalid event; and order within
// each group of orderKey (the broker's unit of order) as stored.
func (r *recorder) check(t *testing.T, run *mixedRun, orderKey func(published) string) {
	t.Helper()
	stored := map[string]published{}
	for _, m := range run.msgs {
		if _, dup := stored[m.dedupKey()]; dup {
			t.Errorf("the broker holds %s twice", m.dedupKey())
		}
		stored[m.dedupKey()] = m
	}
	got := r.successesInOrder()
	if len(got) != len(run.msgs) {
		t.Errorf("%d successful deliveries, the broker holds %d messages", len(got), len(run.msgs))
	}
	r.mu.Lock()
	for key, n := range r.successes {
		if n != 1 {
			t.Errorf("%s handled %d times", key, n)
		}
		if _, ok := stored[key]; !ok {
			t.Errorf("%s handled, not in the broker", key)
		}
	}
	for key := range stored {
		if r.successes[key] == 0 {
			t.Errorf("%s (%s%s) never handled", key, stored[key].subject, stored[key].topic)
		}
	}
	if len(r.failed) < 3 {
		t.Errorf("only %d deliveries failed; the test wants several redeliveries", len(r.failed))
	}
	for key := range r.failed {
		if r.successes[key] != 1 {
			t.Errorf("%s failed and was not delivered again", key)
		}
	}
	if len(r.resyncs) != 1 || r.resyncs[0].OldQueueID != run.oldQueue || r.resyncs[0].NewQueueID != run.newQueue || r.resyncs[0].Unrecoverable == "" || r.resyncs[0].MessagesBackfilled != len(run.backfilled) {
		t.Errorf("resync callbacks %+v, want one for %s -> %s", r.resyncs, run.oldQueue, run.newQueue)
	}
	if len(r.states) != 2 || r.states[0].QueueID == r.states[1].QueueID {
		t.Errorf("state callbacks %+v, want one per queue", r.states)
	}
	if len(r.invalids) != 1 || r.invalids[0].Reason == "" || len(r.invalids[0].Event) == 0 {
		t.Errorf("invalid callbacks %+v, want one with the event", r.invalids)
	}
	for _, h := range r.log {
		if _, ok := h.event.(*consumer.Invalid); ok && h.key != run.invalidKey {
			t.Errorf("bridge.invalid under dedup key %s, want the event's own, %s", h.key, run.invalidKey)
		}
	}
	r.mu.Unlock()

	// Typed, with the metadata of the headers.
	kinds := map[string]int{}
	for _, h := range got {
		m := stored[h.key]
		kinds[h.meta.EventType]++
		want := reflect.TypeFor[*consumer.Generic]()
		if typ, ok := typedAs[h.meta.EventType]; ok {
			want = typ
		}
		if h.meta.IsControl() {
			want = map[string]reflect.Type{
				"resync": reflect.TypeFor[*consumer.Resync](), "state": reflect.TypeFor[*consumer.State](), "invalid": reflect.TypeFor[*consumer.Invalid](),
			}[h.meta.EventOp]
		}
		if h.event.EventType() != h.meta.EventType || h.event.EventOp() != h.meta.EventOp {
			t.Errorf("%s: event says %s/%s, headers %s/%s", h.key, h.event.EventType(), h.event.EventOp(), h.meta.EventType, h.meta.EventOp)
		}
		if reflect.TypeOf(h.event) != want {
			t.Errorf("%s: delivered as %T, want %v", h.key, h.event, want)
		}
		if string(h.event.Raw()) != string(m.payload) {
			t.Errorf("%s: Raw differs from the stored payload", h.key)
		}
		if h.meta.Site != run.host || h.meta.QueueID == "" || h.meta.ContentType != "application/json" {
			t.Errorf("%s: metadata %+v", h.key, h.meta)
		}
		if me, ok := h.event.(*consumer.MessageEvent); ok && (me.Message.ID != h.meta.MessageID || me.Message.IsStream() && (h.meta.StreamID != me.Message.StreamID || h.meta.TopicName != me.Message.Topic())) {
			t.Errorf("%s: message %+v, metadata %+v", h.key, me.Message, h.meta)
		}
	}
	t.Logf("delivered by type: %v", kinds)
	backfilled := 0
	for _, h := range got {
		if me, ok := h.event.(*consumer.MessageEvent); ok && h.meta.Backfill {
			backfilled++
			if !slices.Contains(run.backfilled, me.Message.ID) || h.meta.EventID != -1 || me.ID != 0 {
				t.Errorf("%s: backfilled message %d (event id %d, header %d), want one of %v without event id", h.key, me.Message.ID, me.ID, h.meta.EventID, run.backfilled)
			}
		}
	}
	if backfilled != len(run.backfilled) {
		t.Errorf("%d backfilled messages delivered, want %d", backfilled, len(run.backfilled))
	}
	for typ := range typedAs {
		if kinds[typ] == 0 {
			t.Errorf("no %s event in the mixed run (kinds %v)", typ, kinds)
		}
	}

	// In order: each group's successes come as the broker stores them.
	pos := map[string]int{}
	for i, m := range run.msgs {
		pos[m.dedupKey()] = i
	}
	last := map[string]int{}
	for _, h := range got {
		g := orderKey(stored[h.key])
		if p, ok := last[g]; ok && pos[h.key] < p {
			t.Errorf("%s: %s handled after a later message of its group", g, h.key)
		}
		last[g] = pos[h.key]
	}
}

// consumeUntil runs consume in the background and returns a function that
// waits for it to return.
func consumeUntil(t *testing.T, ctx context.Context, consume func(ctx context.Context) error) (wait func()) {
	done := make(chan error, 1)
	go func() { done <- consume(ctx) }()
	return func() {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("consume: %v", err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("consumer did not return within %s", waitLimit)
		}
	}
}

// TestJetStreamEndToEnd: simulator -> bridge -> JetStream -> consumer. A
// mixed run with a lost queue is consumed by a durable consumer that is
// stopped half way and started again, with a handler that fails the first
// delivery of every 9th event (JetStream delivers it again after the
// back-off): every message is handled once, typed, in stream order, and
// the control events reach their callbacks.
func TestJetStreamEndToEnd(t *testing.T) {
	w := newBridgeWorld(t)
	b := newNATSBroker(t)
	run := w.runMixed(b.sink, b.readAll)
	validateRun(t, run, "nats")

	nc, err := nats.Connect(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder(9)
	cfg := consumer.JetStreamConfig{Durable: "e2e", AckWait: waitLimit}

	ctx1, stop1 := context.WithCancel(context.Background())
	defer stop1()
	r.after = len(run.msgs) / 2
	r.stopAt = func(string) error { stop1(); return nil }
	wait := consumeUntil(t, ctx1, func(ctx context.Context) error {
		return consumer.ConsumeJetStream(ctx, js, cfg, r.handler, r.options())
	})
	wait()
	if n := r.Count(); n < len(run.msgs)/2 || n == len(run.msgs) {
		t.Fatalf("first consumer handled %d of %d before it stopped", n, len(run.msgs))
	}

	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	wait = consumeUntil(t, ctx2, func(ctx context.Context) error {
		return consumer.ConsumeJetStream(ctx, js, cfg, r.handler, r.options())
	})
	testutil.WaitFor(t, waitLimit, "every message handled", func() bool { return r.Count() >= len(run.msgs) })
	stop2()
	wait()

	r.check(t, run, func(published) string { return "stream" })
	// The failed deliveries came again from the server.
	for _, h := range r.successesInOrder() {
		if r.failed[h.key] > 0 && h.meta.Attempt < 2 {
			t.Errorf("%s: redelivered with attempt %d, want the server's count >= 2", h.key, h.meta.Attempt)
		}
		if h.meta.Sequence == 0 || h.meta.Subject == "" {
			t.Errorf("%s: no JetStream metadata: %+v", h.key, h.meta)
		}
	}
}

// TestKafkaEndToEnd: simulator -> bridge -> Kafka (kfake) -> consumer
// group. The handler fails the first delivery of every 9th event (handed
// again after the back-off), and half way a failing handler stops the
// member: the record was not committed, so the group delivers it again to
// the member that joins next. Every record is handled once, typed, in
// partition order, and the control events reach their callbacks.
func TestKafkaEndToEnd(t *testing.T) {
	w := newBridgeWorld(t)
	k := newKafkaBroker(t)
	run := w.runMixed(k.sink, k.readAll)
	validateRun(t, run, "kafka")

	r := newRecorder(9)
	rc := kafka.ReaderConfig{
		Brokers: k.brokers(), GroupID: "e2e", GroupTopics: topics(run.msgs),
		MaxWait: 50 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond,
		JoinGroupBackoff: 50 * time.Millisecond, ReadBackoffMin: 10 * time.Millisecond, ReadBackoffMax: 50 * time.Millisecond,
	}

	ctx1, stop1 := context.WithCancel(context.Background())
	defer stop1()
	var redelivered string
	r.after = len(run.msgs) / 2
	r.stopAt = func(key string) error {
		redelivered = key
		stop1()
		return errors.New("handler fails as the member stops")
	}
	wait := consumeUntil(t, ctx1, func(ctx context.Context) error { return consumer.ConsumeKafka(ctx, rc, r.handler, r.options()) })
	wait()
	if n := r.Count(); n < len(run.msgs)/2 || n == len(run.msgs) || redelivered == "" {
		t.Fatalf("first member handled %d of %d before it stopped (failing %q)", n, len(run.msgs), redelivered)
	}

	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	wait = consumeUntil(t, ctx2, func(ctx context.Context) error { return consumer.ConsumeKafka(ctx, rc, r.handler, r.options()) })
	testutil.WaitFor(t, waitLimit, "every record handled", func() bool { return r.Count() >= len(run.msgs) })
	stop2()
	wait()

	r.check(t, run, func(m published) string { return fmt.Sprintf("%s/%d", m.topic, m.partition) })
	keys := 0
	for _, h := range r.successesInOrder() {
		if h.meta.KafkaTopic == "" || h.meta.Offset < 0 {
			t.Errorf("%s: no Kafka metadata: %+v", h.key, h.meta)
		}
		if h.meta.Key != "" {
			keys++
		}
	}
	if keys == 0 {
		t.Error("no record had a key")
	}
}
