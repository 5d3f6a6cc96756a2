package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
)

const shutdownTimeout = 30 * time.Second

// inFlight reports whether a batch holds the message the shutdown tests
// stop on.
func inFlight(msgs []*mapping.Message) bool {
	for _, m := range msgs {
		if v, _ := m.Get(mapping.HeaderTopic); v == "in flight" {
			return true
		}
	}
	return false
}

// TestGracefulStopFinishesBatch cancels Run while the broker holds a batch
// unconfirmed: Run waits, and once the broker confirms it checkpoints the
// batch and returns nil, without the shutdown timeout passing. The next
// start resumes the same queue after the batch.
func TestGracefulStopFinishesBatch(t *testing.T) {
	w := newWorld(t)
	fc := clockwork.NewFakeClock()
	entered, release := make(chan struct{}), make(chan struct{})
	var publishCtxErr error
	b := w.start(options{
		clock: fc,
		cfg:   pipeline.Config{ShutdownTimeout: shutdownTimeout},
		publish: func(ctx context.Context, msgs []*mapping.Message, next func(context.Context, []*mapping.Message) error) error {
			if inFlight(msgs) {
				close(entered)
				<-release
				publishCtxErr = ctx.Err()
			}
			return next(ctx, msgs)
		},
	})
	q := b.queueID()
	w.send(2, "before")
	w.waitAcked(q)
	w.send(1, "in flight")
	waitClosed(t, entered, "the batch to reach the broker")

	b.cancel()
	if err := fc.BlockUntilContext(w.ctx, 1); err != nil { // the shutdown timer
		t.Fatal(err)
	}
	if b.returned() {
		t.Fatal("Run returned with a batch in flight")
	}
	close(release)
	if err := b.wait(); err != nil {
		t.Fatalf("Run: %v, want nil after a graceful stop", err)
	}
	if publishCtxErr != nil {
		t.Errorf("the batch was published with a context already done: %v", publishCtxErr)
	}
	cp := readCheckpoint(t, w.stateDir)
	if last := lastDelivered(w, q); cp.QueueID != q || cp.LastEventID != last {
		t.Errorf("checkpoint names queue %s event %d, want %s event %d (the batch in flight)", cp.QueueID, cp.LastEventID, q, last)
	}

	b2 := w.start(options{})
	if got := b2.queueID(); got != q {
		t.Fatalf("restart polls queue %s, want the same queue %s", got, q)
	}
	w.send(1, "after")
	w.waitAcked(q)
	if err := b2.stop(); err != nil {
		t.Fatal(err)
	}
	if n := b2.obs.registrations.Load(); n != 0 {
		t.Errorf("restart registered %d queues, want it to resume", n)
	}
	if n := b2.obs.duplicates.Load(); n != 0 {
		t.Errorf("restart skipped %d duplicates: the checkpoint did not cover the finished batch", n)
	}
	w.checkStream(w.readStream(), expectation{queues: []string{q}})
}

// TestGracefulStopBrokerNeverConfirms cancels Run while the broker stored a
// batch but never confirms it: Run gives up when the shutdown timeout has
// passed on the pipeline's clock, returns nil, and neither checkpoints nor
// acknowledges the batch. The next start gets the batch again, finds it in
// the stream by reading back, and does not publish it twice.
func TestGracefulStopBrokerNeverConfirms(t *testing.T) {
	w := newWorld(t)
	fc := clockwork.NewFakeClock()
	entered := make(chan struct{})
	var gaveUpAt time.Time
	b := w.start(options{
		clock: fc,
		cfg:   pipeline.Config{ShutdownTimeout: shutdownTimeout},
		publish: func(ctx context.Context, msgs []*mapping.Message, next func(context.Context, []*mapping.Message) error) error {
			if !inFlight(msgs) {
				return next(ctx, msgs)
			}
			if err := next(ctx, msgs); err != nil { // stored ...
				return err
			}
			close(entered)
			<-ctx.Done() // ... but the confirmation never comes
			gaveUpAt = fc.Now()
			return ctx.Err()
		},
	})
	q := b.queueID()
	w.send(2, "before")
	w.waitAcked(q)
	ackedBefore := w.sim.Acked(q)
	cpBefore := readCheckpoint(t, w.stateDir)
	w.send(1, "in flight")
	waitClosed(t, entered, "the batch to reach the broker")

	stopAt := fc.Now()
	b.cancel()
	if err := fc.BlockUntilContext(w.ctx, 1); err != nil { // the shutdown timer
		t.Fatal(err)
	}
	if b.returned() {
		t.Fatal("Run returned before the shutdown timeout")
	}
	fc.Advance(shutdownTimeout)
	if err := b.wait(); err != nil {
		t.Fatalf("Run: %v, want nil after a graceful stop", err)
	}
	if waited := gaveUpAt.Sub(stopAt); waited < shutdownTimeout {
		t.Errorf("the batch was abandoned %s after the stop, before the shutdown timeout %s", waited, shutdownTimeout)
	}
	if cp := readCheckpoint(t, w.stateDir); cp.QueueID != cpBefore.QueueID || cp.LastEventID != cpBefore.LastEventID {
		t.Errorf("checkpoint moved to %s event %d for an unconfirmed batch, want %s event %d", cp.QueueID, cp.LastEventID, cpBefore.QueueID, cpBefore.LastEventID)
	}
	if got := w.sim.Acked(q); got != ackedBefore {
		t.Errorf("acknowledged up to %d, want %d: the batch was never confirmed", got, ackedBefore)
	}

	b2 := w.start(options{})
	if got := b2.queueID(); got != q {
		t.Fatalf("restart polls queue %s, want the same queue %s", got, q)
	}
	w.send(1, "after")
	w.waitAcked(q)
	if err := b2.stop(); err != nil {
		t.Fatal(err)
	}
	if n := b2.obs.duplicates.Load(); n != 1 {
		t.Errorf("restart skipped %d duplicates, want the 1 stored but unconfirmed message", n)
	}
	w.checkStream(w.readStream(), expectation{queues: []string{q}})
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("waited %s for %s", waitLimit, what)
	}
}
