package sinktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

const (
	// attemptTimeout bounds one Publish inside publishAll: long enough for a
	// sink to reconnect under the race detector, short enough that a sink
	// which waits for its context gets retried.
	attemptTimeout = 10 * time.Second
	// retryTimeout bounds publishAll as a whole.
	retryTimeout = 60 * time.Second
	// hangGuard is how long the suite waits for a call that should return on
	// its own (its context expired, the broker is gone) before it reports a
	// hang. It is a failure detector, not a speed requirement.
	hangGuard = 60 * time.Second
	// pollInterval paces the suite's waits on conditions; short, so that
	// a subtest acting mid-batch catches the batch in flight.
	pollInterval = time.Millisecond
	// retryPause paces publishAll's attempts, as a caller's backoff would.
	retryPause = 20 * time.Millisecond
)

// publishAll publishes batch until the sink confirms all of it, sending
// again only what each error reports as unconfirmed, as the bridge does.
func publishAll(t testing.TB, s sink.Sink, batch []*mapping.Message) {
	t.Helper()
	deadline := time.Now().Add(retryTimeout)
	pending := batch
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		err := s.Publish(ctx, pending)
		cancel()
		if err == nil {
			return
		}
		checkPublishError(t, pending, err)
		if time.Now().After(deadline) {
			t.Fatalf("batch of %d not confirmed after %d attempts in %v: %v", len(batch), attempt, retryTimeout, err)
		}
		pending = sink.Unconfirmed(pending, err)
		t.Logf("attempt %d: %d of %d message(s) to send again: %v", attempt, len(pending), len(batch), err)
		pause(retryPause)
	}
}

// publishGuarded runs one Publish and fails the test if it does not return
// within hangGuard, whatever its context says.
func publishGuarded(t testing.TB, ctx context.Context, s sink.Sink, batch []*mapping.Message) error {
	t.Helper()
	return guarded(t, ctx, "Publish", func() error { return s.Publish(ctx, batch) })
}

// closeGuarded is publishGuarded for Close.
func closeGuarded(t testing.TB, ctx context.Context, s sink.Sink) error {
	t.Helper()
	return guarded(t, ctx, "Close", func() error { return s.Close(ctx) })
}

// guarded runs call, the sink's method name taking ctx, and fails the test
// if it does not return within hangGuard.
func guarded(t testing.TB, ctx context.Context, name string, call func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		return err
	case <-time.After(hangGuard):
		t.Fatalf("%s did not return within %v (its context: %v)", name, hangGuard, ctx.Err())
		return nil
	}
}

func pause(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	<-timer.C
}

// checkPublishError checks what a failed Publish says about its batch: a
// *sink.PublishError lists ascending indexes inside the batch, at least
// one, and once a message of a conversation is listed so is every later
// message of that conversation, so that resending the list keeps order.
func checkPublishError(t testing.TB, batch []*mapping.Message, err error) {
	t.Helper()
	var pe *sink.PublishError
	if !errors.As(err, &pe) {
		return
	}
	if len(pe.Failed) == 0 {
		t.Errorf("PublishError lists no message: an error must leave something to retry: %v", err)
		return
	}
	failed := make(map[int]bool, len(pe.Failed))
	for i, idx := range pe.Failed {
		if idx < 0 || idx >= len(batch) {
			t.Fatalf("PublishError.Failed[%d] = %d, outside the batch of %d", i, idx, len(batch))
		}
		if i > 0 && idx <= pe.Failed[i-1] {
			t.Fatalf("PublishError.Failed is not strictly ascending: %v", pe.Failed)
		}
		failed[idx] = true
	}
	firstFailed := map[string]int{}
	for i, m := range batch {
		conv, ok := conversationOf(m)
		if !ok {
			continue
		}
		if first, seen := firstFailed[conv]; seen && !failed[i] {
			t.Errorf("message %d (%s) is reported confirmed but earlier message %d of the same conversation %q failed: resending the failed ones would reorder it",
				i, m.DedupKey, first, conv)
		}
		if _, seen := firstFailed[conv]; failed[i] && !seen {
			firstFailed[conv] = i
		}
	}
}

// conversationOf names the ordering scope the suite checks for m: its
// subject, topic and key. Messages without a key have no order to keep (a
// Kafka producer may spread them over partitions).
func conversationOf(m *mapping.Message) (string, bool) {
	if m.Key == nil {
		return "", false
	}
	return m.Subject + "\x00" + m.Topic + "\x00" + string(m.Key), true
}

// expectation is what the broker must hold after a subtest.
type expectation struct {
	// sent is every message the subtest published, in publishing order.
	sent []*mapping.Message
	// exactlyOnce requires every stored message to be stored once;
	// otherwise retries may have stored some twice.
	exactlyOnce bool
	// mayBeLost names dedup keys that need not be stored at all (messages
	// an at-most-once broker confirmed just before it stopped).
	mayBeLost map[string]bool
}

// checkStored compares what the broker holds with what was sent: nothing
// foreign, nothing missing, no duplicates where the broker dedups, every
// field as published, and every conversation in publishing order.
func checkStored(t testing.TB, h Harness, want expectation) {
	t.Helper()
	stored := h.Stored(t)
	index := make(map[string]int, len(want.sent))
	for i, m := range want.sent {
		index[m.DedupKey] = i
	}
	count := make(map[string]int, len(want.sent))
	lastInConv := map[string]int{}
	for _, got := range stored {
		i, ok := index[got.DedupKey]
		if !ok {
			t.Errorf("broker holds a message that was never confirmed or sent: dedup key %q, subject %q, topic %q", got.DedupKey, got.Subject, got.Topic)
			continue
		}
		count[got.DedupKey]++
		if count[got.DedupKey] > 1 {
			if want.exactlyOnce {
				t.Errorf("message %s is stored %d times, want once", got.DedupKey, count[got.DedupKey])
			}
			continue
		}
		sent := want.sent[i]
		if err := sameMessage(sent, got); err != nil {
			t.Errorf("message %s: %v", got.DedupKey, err)
		}
		if conv, ok := conversationOf(sent); ok {
			if last, seen := lastInConv[conv]; seen && last > i {
				t.Errorf("conversation %q out of order: %s (sent %d) is stored after %s (sent %d)",
					conv, sent.DedupKey, i, want.sent[last].DedupKey, last)
			}
			lastInConv[conv] = i
		}
	}
	missing := 0
	for _, m := range want.sent {
		if count[m.DedupKey] == 0 && !want.mayBeLost[m.DedupKey] {
			if missing < 10 {
				t.Errorf("message %s (subject %q, topic %q) is not stored", m.DedupKey, m.Subject, m.Topic)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d message(s) missing from the broker", missing, len(want.sent))
	}
}

// sameMessage compares the fields the broker keeps. A harness leaves
// Subject empty for a broker without subjects and Topic empty for one
// without topics; headers may gain broker headers and lose their order
// (NATS keeps headers in a map) but not a value.
func sameMessage(sent, got *mapping.Message) error {
	if got.Subject != "" && got.Subject != sent.Subject {
		return fmt.Errorf("subject %q, want %q", got.Subject, sent.Subject)
	}
	if got.Topic != "" {
		if got.Topic != sent.Topic {
			return fmt.Errorf("topic %q, want %q", got.Topic, sent.Topic)
		}
		if !bytes.Equal(got.Key, sent.Key) {
			return fmt.Errorf("key %q, want %q", got.Key, sent.Key)
		}
	}
	if got.Subject == "" && got.Topic == "" {
		return errors.New("harness reported neither subject nor topic")
	}
	for _, h := range sent.Headers {
		if want, have := headerValues(sent.Headers, h.Key), headerValues(got.Headers, h.Key); !slices.Equal(want, have) {
			return fmt.Errorf("header %s = %q, want %q", h.Key, have, want)
		}
	}
	if !bytes.Equal(got.Payload, sent.Payload) {
		return fmt.Errorf("payload differs: %d bytes, want %d, first difference at byte %d",
			len(got.Payload), len(sent.Payload), firstDiff(got.Payload, sent.Payload))
	}
	return nil
}

func headerValues(hs []mapping.Header, key string) []string {
	var vs []string
	for _, h := range hs {
		if h.Key == key {
			vs = append(vs, h.Value)
		}
	}
	return vs
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// storedAny reports whether the broker holds at least one of msgs, given
// that it held base messages before they were published.
func storedAny(t testing.TB, h Harness, base int, msgs []*mapping.Message) bool {
	if c, ok := h.(Counter); ok {
		return c.Count(t) > base
	}
	keys := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		keys[m.DedupKey] = true
	}
	for _, m := range h.Stored(t) {
		if keys[m.DedupKey] {
			return true
		}
	}
	return false
}

// count returns how many messages the broker holds.
func count(t testing.TB, h Harness) int {
	if c, ok := h.(Counter); ok {
		return c.Count(t)
	}
	return len(h.Stored(t))
}

// keysOf returns the dedup keys of msgs.
func keysOf(msgs ...[]*mapping.Message) map[string]bool {
	keys := map[string]bool{}
	for _, batch := range msgs {
		for _, m := range batch {
			keys[m.DedupKey] = true
		}
	}
	return keys
}
