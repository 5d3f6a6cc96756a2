package nats

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

// TestServerRestartDuringBatch stops the server once the first messages of
// a large batch are stored: Publish must fail and name the unconfirmed
// messages; after the server is back (same port, same store), sending those
// again succeeds and the stream holds every message exactly once, each
// subject in order.
func TestServerRestartDuringBatch(t *testing.T) {
	ts := startServer(t)
	cfg := testConfig(ts, true)
	s := newSink(t, cfg)
	nc := ts.connect(t)
	var g sinktest.Generator
	batch := g.Batch(10000)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Publish(ctx, batch) }()
	testutil.WaitFor(t, 30*time.Second, "the first 100 messages to be stored", func() bool { return streamCount(t, nc, cfg.Stream) >= 100 })
	ts.stop()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Publish did not return after the server stopped")
	}
	var pe *sink.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("Publish during a restart = %v, want a *sink.PublishError", err)
	}
	if !errors.Is(err, nats.ErrDisconnected) && !errors.Is(err, ErrNotConnected) {
		t.Errorf("Publish during a restart = %v, want it to say the connection dropped", err)
	}
	unconfirmed := sink.Unconfirmed(batch, err)
	t.Logf("server stopped with %d of %d messages unconfirmed", len(unconfirmed), len(batch))

	ts.start()
	stored := streamKeys(t, nc, cfg.Stream)
	failed := map[string]bool{}
	for _, m := range unconfirmed {
		failed[m.DedupKey] = true
	}
	for _, m := range batch {
		if !failed[m.DedupKey] && stored[m.DedupKey] == 0 {
			t.Fatalf("%s was confirmed before the stop but is not in the stream", m.DedupKey)
		}
	}

	retryUntilConfirmed(t, s, unconfirmed)
	checkExactlyOnceInOrder(t, nc, cfg.Stream, batch)
}

// TestDuplicatePublishStoredOnce: a second sink, as after a bridge restart,
// publishing messages the first already stored adds nothing to the stream.
func TestDuplicatePublishStoredOnce(t *testing.T) {
	ts := startServer(t)
	cfg := testConfig(ts, true)
	var g sinktest.Generator
	batch := g.Batch(50)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first := newSink(t, cfg)
	if err := first.Publish(ctx, batch); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := first.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	second := newSink(t, cfg)
	if err := second.Publish(ctx, batch[10:]); err != nil {
		t.Fatalf("Publish again: %v", err)
	}
	more := g.Batch(5)
	if err := second.Publish(ctx, append(batch[:3:3], more...)); err != nil {
		t.Fatalf("Publish old and new: %v", err)
	}
	checkExactlyOnceInOrder(t, ts.connect(t), cfg.Stream, append(batch, more...))
}

func retryUntilConfirmed(t *testing.T, s sink.Sink, msgs []*mapping.Message) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for attempt := 1; len(msgs) > 0; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.Publish(ctx, msgs)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %d attempts: %v", attempt, err)
		}
		msgs = sink.Unconfirmed(msgs, err)
		tick(20 * time.Millisecond)
	}
}

func streamCount(t testing.TB, nc *nats.Conn, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return st.CachedInfo().State.Msgs
}

// streamKeys counts the stream's messages by Nats-Msg-Id.
func streamKeys(t testing.TB, nc *nats.Conn, name string) map[string]int {
	t.Helper()
	msgs, err := readStream(nc, name)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	keys := map[string]int{}
	for _, m := range msgs {
		keys[m.DedupKey]++
	}
	return keys
}

// checkExactlyOnceInOrder requires the stream to hold exactly want, each
// message once, and every subject in the order of want.
func checkExactlyOnceInOrder(t *testing.T, nc *nats.Conn, name string, want []*mapping.Message) {
	t.Helper()
	msgs, err := readStream(nc, name)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	index := map[string]int{}
	for i, m := range want {
		index[m.DedupKey] = i
	}
	seen := map[string]bool{}
	last := map[string]int{}
	for _, m := range msgs {
		i, ok := index[m.DedupKey]
		if !ok {
			t.Fatalf("stream holds unexpected %s", m.DedupKey)
		}
		if seen[m.DedupKey] {
			t.Fatalf("stream holds %s twice", m.DedupKey)
		}
		seen[m.DedupKey] = true
		if prev, ok := last[m.Subject]; ok && prev > i {
			t.Fatalf("subject %s out of order: %s after %s", m.Subject, m.DedupKey, want[prev].DedupKey)
		}
		last[m.Subject] = i
	}
	if len(msgs) != len(want) {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), len(want))
	}
}
