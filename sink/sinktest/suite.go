package sinktest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// unreachableTimeout is the context a Publish or Close gets while the broker
// is down: the call must give up with it, not hang.
const unreachableTimeout = 300 * time.Millisecond

// midBatchSize is large enough that a broker stop or a cancellation issued
// once the first messages are stored lands while the rest is in flight.
const midBatchSize = 5000

// Run runs the conformance suite against the sink and broker of s, one
// subtest per property and a new harness for each.
func Run(t *testing.T, s Suite) {
	if s.New == nil {
		t.Fatal("sinktest.Suite.New is nil")
	}
	c := &conformance{Suite: s}
	t.Run("PublishConfirmsAll", c.publishConfirmsAll)
	t.Run("EmptyBatch", c.emptyBatch)
	t.Run("LargeMessage", c.largeMessage)
	t.Run("CanceledContext", c.canceledContext)
	t.Run("CancelMidBatch", c.cancelMidBatch)
	t.Run("CloseFlushes", c.closeFlushes)
	t.Run("DuplicateStoredOnce", c.duplicateStoredOnce)
	t.Run("Recoverer", c.recoverer)
	t.Run("BrokerUnreachable", c.brokerUnreachable)
	t.Run("CloseWhileUnreachable", c.closeWhileUnreachable)
	t.Run("RestartMidBatch", c.restartMidBatch)
	t.Run("Ready", c.ready)
}

type conformance struct {
	Suite
}

// open returns a new sink that is closed, and must close cleanly, when the
// subtest ends.
func (c *conformance) open(t *testing.T, h Harness) sink.Sink {
	t.Helper()
	s := h.NewSink(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		if err := closeGuarded(t, ctx, s); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func (c *conformance) restarter(t *testing.T, h Harness) Restarter {
	t.Helper()
	r, ok := h.(Restarter)
	if !ok {
		t.Skip("harness cannot stop and restart its broker")
	}
	return r
}

// afterRetries is the expectation for messages that went through failed
// attempts: exactly once where the broker dedups, at least once otherwise.
func (c *conformance) afterRetries(sent ...[]*mapping.Message) expectation {
	return expectation{sent: concat(sent...), exactlyOnce: c.Dedups}
}

// publishConfirmsAll: batches confirmed with nil are stored, once each, as
// published, every conversation in order within and across batches.
func (c *conformance) publishConfirmsAll(t *testing.T) {
	h := c.New(t)
	s := c.open(t, h)
	var g Generator
	var sent []*mapping.Message
	for _, n := range []int{1, 7, 120, 40} {
		batch := g.Batch(n)
		publishOnce(t, s, batch, fmt.Sprintf("Publish(%d messages) with the broker up", n))
		sent = append(sent, batch...)
	}
	checkStored(t, h, expectation{sent: sent, exactlyOnce: true})
}

func (c *conformance) emptyBatch(t *testing.T) {
	h := c.New(t)
	s := c.open(t, h)
	for _, batch := range [][]*mapping.Message{nil, {}} {
		publishOnce(t, s, batch, fmt.Sprintf("Publish(%#v)", batch))
	}
	var g Generator
	batch := g.Batch(3)
	publishOnce(t, s, batch, "Publish after empty batches")
	checkStored(t, h, expectation{sent: batch, exactlyOnce: true})
}

// largeMessage: a payload of LargePayloadSize between small messages of
// the same conversation arrives byte for byte and in order.
func (c *conformance) largeMessage(t *testing.T) {
	h := c.New(t)
	s := c.open(t, h)
	var g Generator
	batch := g.Batch(5)
	batch = append(batch, g.Large(LargePayloadSize))
	batch = append(batch, g.Batch(5)...)
	publishOnce(t, s, batch, fmt.Sprintf("Publish with a %d-byte payload", LargePayloadSize))
	checkStored(t, h, expectation{sent: batch, exactlyOnce: true})
}

// canceledContext: a context that is already done gives an error that
// says so, never a success, and the sink stays usable.
func (c *conformance) canceledContext(t *testing.T) {
	h := c.New(t)
	s := c.open(t, h)
	var g Generator
	first := g.Batch(3)
	publishAll(t, s, first)

	batch := g.Batch(20)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := publishFails(t, ctx, s, batch, "with a canceled context")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a canceled context: %v, want an error wrapping context.Canceled", err)
	}
	c.resendAndCheck(t, h, s, batch, err, first)
}

// cancelMidBatch: cancelling while a large batch is in flight returns
// promptly; what the error leaves unconfirmed, sent again, completes the
// batch without loss or reordering.
func (c *conformance) cancelMidBatch(t *testing.T) {
	h := c.New(t)
	s := c.open(t, h)
	var g Generator
	batch := g.Batch(midBatchSize)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := interruptMidBatch(t, ctx, h, s, batch, cancel, "the cancellation")
	c.resendAndCheck(t, h, s, batch, err)
}

// closeFlushes: Close after confirmed batches returns nil and leaves them
// stored; a closed sink confirms nothing.
func (c *conformance) closeFlushes(t *testing.T) {
	h := c.New(t)
	s := h.NewSink(t)
	var g Generator
	batch := g.Batch(50)
	publishAll(t, s, batch)
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	if err := closeGuarded(t, ctx, s); err != nil {
		t.Fatalf("Close: %v", err)
	}
	late := g.Batch(3)
	err := publishGuarded(t, ctx, s, late)
	if err == nil {
		t.Fatal("Publish on a closed sink returned nil")
	}
	if n := len(sink.Unconfirmed(late, err)); n != len(late) {
		t.Errorf("Publish on a closed sink reports %d of %d message(s) unconfirmed, want all: %v", n, len(late), err)
	}
	checkStored(t, h, expectation{sent: batch, exactlyOnce: true})
}

// duplicateStoredOnce: publishing a confirmed batch again stores nothing
// new, for brokers that dedup.
func (c *conformance) duplicateStoredOnce(t *testing.T) {
	if !c.Dedups {
		t.Skip("broker does not dedup")
	}
	h := c.New(t)
	s := c.open(t, h)
	var g Generator
	batch := g.Batch(30)
	publishAll(t, s, batch)
	publishAll(t, s, batch)
	publishAll(t, s, batch[10:20])
	checkStored(t, h, expectation{sent: batch, exactlyOnce: true})
}

// recoverer: a sink that implements sink.Recoverer reports, to a new sink
// as after a restart, every message confirmed after a Position and nothing
// it did not publish.
func (c *conformance) recoverer(t *testing.T) {
	h := c.New(t)
	s := c.open(t, h)
	rec, ok := s.(sink.Recoverer)
	if !ok {
		t.Skip("sink does not implement sink.Recoverer")
	}
	ctx, cancel := context.WithTimeout(context.Background(), retryTimeout)
	defer cancel()
	start, err := rec.Position(ctx)
	if err != nil {
		t.Fatalf("Position before any publish: %v", err)
	}
	var g Generator
	before := g.Batch(40)
	publishAll(t, s, before)
	pos, err := rec.Position(ctx)
	if err != nil {
		t.Fatalf("Position: %v", err)
	}
	after := g.Batch(40)
	publishAll(t, s, after)

	restarted, ok := c.open(t, h).(sink.Recoverer)
	if !ok {
		t.Fatal("second sink from the same harness does not implement sink.Recoverer")
	}
	check := func(name string, pos []byte, must ...[]*mapping.Message) {
		t.Helper()
		got, err := restarted.PublishedSince(ctx, pos)
		if err != nil {
			t.Fatalf("PublishedSince(%s): %v", name, err)
		}
		all := keysOf(before, after)
		for k := range got {
			if !all[k] {
				t.Errorf("PublishedSince(%s) reports %q, which was never published", name, k)
			}
		}
		for k := range keysOf(must...) {
			if _, ok := got[k]; !ok {
				t.Errorf("PublishedSince(%s) misses %q, confirmed after that position", name, k)
			}
		}
	}
	check("position after the first batch", pos, after)
	check("position before any publish", start, before, after)
	check("nil", nil, before, after)
}

// brokerUnreachable: with the broker down, Publish fails within its
// context instead of hanging or claiming success; once the broker is back,
// sending what it left unconfirmed completes the batch.
func (c *conformance) brokerUnreachable(t *testing.T) {
	h := c.New(t)
	r := c.restarter(t, h)
	s := c.open(t, h)
	var g Generator
	first := g.Batch(5)
	publishAll(t, s, first)

	r.StopBroker(t)
	batch := g.Batch(20)
	ctx, cancel := context.WithTimeout(context.Background(), unreachableTimeout)
	defer cancel()
	err := publishFails(t, ctx, s, batch, "while the broker was down")
	if n := len(sink.Unconfirmed(batch, err)); n != len(batch) {
		t.Errorf("broker down: %d of %d message(s) reported unconfirmed, want all", n, len(batch))
	}
	r.StartBroker(t)
	c.resendAndCheck(t, h, s, batch, err, first)
}

// closeWhileUnreachable: Close gives up when its context is done, even
// with messages in flight to a broker that is gone.
func (c *conformance) closeWhileUnreachable(t *testing.T) {
	h := c.New(t)
	r := c.restarter(t, h)
	s := h.NewSink(t)
	var g Generator
	publishAll(t, s, g.Batch(5))
	r.StopBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), unreachableTimeout)
	defer cancel()
	if err := publishGuarded(t, ctx, s, g.Batch(20)); err == nil {
		t.Fatal("Publish returned nil while the broker was down")
	}
	closeCtx, closeCancel := context.WithTimeout(context.Background(), unreachableTimeout)
	defer closeCancel()
	err := closeGuarded(t, closeCtx, s)
	t.Logf("Close with the broker down: %v", err)
	r.StartBroker(t)
}

// restartMidBatch: the broker stops while a batch is in flight and comes
// back; the sink reports what it could not confirm, and sending that again
// leaves every message stored (exactly once where the broker dedups), in
// order, including the ones confirmed before the stop.
func (c *conformance) restartMidBatch(t *testing.T) {
	h := c.New(t)
	r := c.restarter(t, h)
	s := c.open(t, h)
	var g Generator
	before := g.Batch(20)
	publishAll(t, s, before)

	batch := g.Batch(midBatchSize)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	err := interruptMidBatch(t, ctx, h, s, batch, func() { r.StopBroker(t) }, "the broker stop")
	unconfirmed := sink.Unconfirmed(batch, err)
	r.StartBroker(t)

	want := c.afterRetries(before, batch)
	if c.AtMostOnce {
		// What core NATS accepted just before the stop may have died in
		// the server's buffers; only what is sent again must arrive.
		want.mayBeLost = keysOf(batch)
		for k := range keysOf(unconfirmed) {
			delete(want.mayBeLost, k)
		}
	} else {
		checkStored(t, h, expectation{sent: concat(before, batch), mayBeLost: keysOf(unconfirmed), exactlyOnce: c.Dedups})
	}
	publishAll(t, s, unconfirmed)
	after := g.Batch(20)
	publishAll(t, s, after)
	want.sent = append(want.sent, after...)
	checkStored(t, h, want)
}

// ready: a sink that implements sink.ReadyChecker is ready while its
// broker is up, not ready while it is down, and ready again after.
func (c *conformance) ready(t *testing.T) {
	h := c.New(t)
	s := c.open(t, h)
	rc, ok := s.(sink.ReadyChecker)
	if !ok {
		t.Skip("sink does not implement sink.ReadyChecker")
	}
	var g Generator
	publishAll(t, s, g.Batch(3))
	readyErr := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		return rc.Ready(ctx)
	}
	if err := readyErr(); err != nil {
		t.Fatalf("Ready with the broker up: %v", err)
	}
	r, ok := h.(Restarter)
	if !ok {
		return
	}
	r.StopBroker(t)
	testutil.WaitFor(t, hangGuard, "Ready to fail with the broker down", func() bool { return readyErr() != nil })
	r.StartBroker(t)
	testutil.WaitFor(t, hangGuard, "Ready to succeed with the broker back", func() bool { return readyErr() == nil })
	publishAll(t, s, g.Batch(3))
}

// publishOnce publishes batch in one call, with the broker up: it must
// confirm all of it. what names the call in the failure.
func publishOnce(t *testing.T, s sink.Sink, batch []*mapping.Message, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	if err := s.Publish(ctx, batch); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// publishFails publishes batch in one guarded call that must fail (when
// says under what), with an error that names what it left unconfirmed.
func publishFails(t *testing.T, ctx context.Context, s sink.Sink, batch []*mapping.Message, when string) error {
	t.Helper()
	err := publishGuarded(t, ctx, s, batch)
	if err == nil {
		t.Fatalf("Publish %s returned nil", when)
	}
	checkPublishError(t, batch, err)
	return err
}

// interruptMidBatch publishes batch (a large one) under ctx in the
// background, waits until its first messages are stored, calls interrupt
// and returns what Publish returned, which must come within hangGuard.
// what names the interruption in the failure and the log.
func interruptMidBatch(t *testing.T, ctx context.Context, h Harness, s sink.Sink, batch []*mapping.Message, interrupt func(), what string) error {
	t.Helper()
	base := count(t, h)
	done := make(chan error, 1)
	go func() { done <- s.Publish(ctx, batch) }()
	testutil.WaitFor(t, hangGuard, "the first messages of the batch to be stored", func() bool {
		select {
		case err := <-done:
			done <- err
			return true
		default:
			return storedAny(t, h, base, batch)
		}
	})
	interrupt()
	var err error
	select {
	case err = <-done:
	case <-time.After(hangGuard):
		t.Fatalf("Publish did not return within %v of %s", hangGuard, what)
	}
	if err == nil {
		t.Logf("the whole batch was confirmed before %s", what)
	} else {
		checkPublishError(t, batch, err)
		t.Logf("%s left %d of %d unconfirmed: %v", what, len(sink.Unconfirmed(batch, err)), len(batch), err)
	}
	return err
}

// resendAndCheck sends again what err left unconfirmed of batch, and
// checks the broker holds the earlier batches and batch, as after retries.
func (c *conformance) resendAndCheck(t *testing.T, h Harness, s sink.Sink, batch []*mapping.Message, err error, earlier ...[]*mapping.Message) {
	t.Helper()
	publishAll(t, s, sink.Unconfirmed(batch, err))
	checkStored(t, h, c.afterRetries(append(earlier, batch)...))
}

func concat(batches ...[]*mapping.Message) []*mapping.Message {
	var out []*mapping.Message
	for _, b := range batches {
		out = append(out, b...)
	}
	return out
}
