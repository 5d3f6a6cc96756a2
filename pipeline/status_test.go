package pipeline_test

import (
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
)

// TestStatus: Ready fails until a queue is registered and holds after;
// Live reports a loop that made no progress for longer than the stall
// timeout on the pipeline's clock, and recovers when it moves again.
func TestStatus(t *testing.T) {
	const stall = 5 * time.Minute
	w := newWorld(t)
	g := newGate()
	g.holdRegistrations()
	fc := clockwork.NewFakeClock()
	b := w.start(options{transport: g, clock: fc, cfg: pipeline.Config{StallTimeout: stall}})
	status := b.p.Status()

	g.waitHeld(t)
	s := status.Snapshot()
	if !s.Running {
		t.Error("Snapshot().Running is false while Run runs")
	}
	if err := s.Ready(); err == nil {
		t.Error("Ready() is nil before a queue is registered")
	}
	if err := s.Live(fc.Now(), stall); err != nil {
		t.Errorf("Live() = %v right after start", err)
	}

	g.release()
	q := b.queueID()
	if err := status.Snapshot().Ready(); err != nil {
		t.Errorf("Ready() = %v with queue %s registered", err, q)
	}
	ids := w.send(1, "status")
	w.waitAcked(q)
	if err := w.simClock.BlockUntilContext(w.ctx, 1); err != nil { // long-polling, nothing to do
		t.Fatal(err)
	}
	s = status.Snapshot()
	if s.QueueID != q || s.LastEventID != lastDelivered(w, q) || s.MaxMessageID != ids[0] {
		t.Errorf("snapshot %+v, want queue %s, last event %d, max message %d", s, q, lastDelivered(w, q), ids[0])
	}
	if err := s.Live(fc.Now(), stall); err != nil {
		t.Errorf("Live() = %v while long-polling", err)
	}

	fc.Advance(stall + time.Second)
	if err := status.Snapshot().Live(fc.Now(), stall); err == nil {
		t.Error("Live() is nil after the loop made no progress for longer than the stall timeout")
	}
	w.inject(typingEvent)
	testutil.WaitFor(t, waitLimit, "Live() to recover once the poll returns", func() bool {
		return status.Snapshot().Live(fc.Now(), stall) == nil
	})

	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	s = status.Snapshot()
	if s.Running {
		t.Error("Snapshot().Running after Run returned")
	}
	if err := s.Ready(); err == nil {
		t.Error("Ready() is nil after Run returned")
	}
	if err := s.Live(fc.Now().Add(time.Hour), stall); err != nil {
		t.Errorf("Live() = %v after Run returned: a stopped loop is not wedged", err)
	}
}
