package pipeline_test

import (
	"testing"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

// TestBrokerDownAndBack stops the NATS server under a running bridge and
// starts it again on the same port with its data. Meanwhile nothing is
// acknowledged to Zulip, the bridge holds the one batch it has and polls
// no newer one (bounded memory), and afterwards everything arrives once.
func TestBrokerDownAndBack(t *testing.T) {
	w := newWorld(t)
	b := w.start(options{})
	q := b.queueID()
	w.send(3, "before")
	w.inject(typingEvent)
	w.waitAcked(q)
	ackedBefore := w.sim.Acked(q)

	w.nats.Stop()
	w.send(2, "outage")
	w.inject(presenceEvent)
	testutil.WaitFor(t, waitLimit, "the pipeline to see the broker down", func() bool {
		return b.p.Status().Snapshot().BrokerErr != nil
	})
	if err := b.p.Status().Snapshot().Ready(); err == nil {
		t.Error("Ready() is nil while the broker is down")
	}
	inFlight := lastDelivered(w, q)

	// Events keep coming; the bridge keeps trying (to read back what the
	// failed publish stored, before it sends the batch again), and the
	// loop makes progress meanwhile.
	w.send(2, "outage, later")
	w.inject(typingEvent)
	for range 3 {
		before := b.p.Status().Snapshot().LastProgress
		testutil.WaitFor(t, waitLimit, "the loop to keep trying", func() bool { return b.p.Status().Snapshot().LastProgress.After(before) })
	}
	if got := w.sim.Acked(q); got != ackedBefore {
		t.Errorf("acknowledged up to %d while the broker was down, want %d", got, ackedBefore)
	}
	if got := lastDelivered(w, q); got != inFlight {
		t.Errorf("the queue handed out events up to %d while the broker was down, want none after the batch in flight (%d)", got, inFlight)
	}
	if h, _ := w.sim.History(q); h.Info.LastEventID <= inFlight {
		t.Fatalf("the queue holds nothing after event %d: the test sent no newer event", inFlight)
	}

	w.nats.Start()
	w.waitAcked(q)
	testutil.WaitFor(t, waitLimit, "the pipeline to see the broker up", func() bool {
		return b.p.Status().Snapshot().BrokerErr == nil
	})
	w.send(2, "after")
	w.waitAcked(q)
	if err := b.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	control := w.checkStream(w.readStream(), expectation{queues: []string{q}})
	if len(control) != 0 {
		t.Errorf("control events %v, want none", control)
	}
}

// lastDelivered is the id of the last event the queue handed out.
func lastDelivered(w *world, queueID string) int64 {
	d := w.sim.Delivered(queueID)
	if len(d) == 0 {
		return -1
	}
	return d[len(d)-1].ID
}
