package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
	"github.com/zulip-bridge/zulip-bridge/spool"
)

// forwarded waits until the bridge's spool has forwarded everything.
func (b *bridge) forwarded() {
	b.t.Helper()
	testutil.WaitFor(b.t, waitLimit, "the spool forwarded everything", func() bool { return b.spool.Stats().Pending == 0 })
}

// TestSpoolMixedTraffic runs the generator's mix through a spool, across a
// restart: each event once, in order per subject, with its headers.
func TestSpoolMixedTraffic(t *testing.T) {
	w := newWorld(t)
	gen, err := zuliptest.NewGenerator(w.sim, zuliptest.GeneratorConfig{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var q string
	for round := range 2 {
		b := w.start(options{spool: true})
		if q = b.queueID(); round == 1 && q == "" {
			t.Fatal("no queue")
		}
		for range 1500 {
			if _, err := gen.Step(); err != nil {
				t.Fatal(err)
			}
		}
		w.waitAcked(q)
		b.forwarded()
		if err := b.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	if control := w.checkStream(w.readStream(), expectation{queues: []string{q}}); len(control) != 0 {
		t.Errorf("control events %v, want none", control)
	}
}

// TestSpoolLongOutage keeps the broker down for over an hour of the
// simulator's time, ten times a queue's lifespan, while events of every
// kind keep coming: the bridge acknowledges them from the spool, so the
// queue lives, and once the broker is back every event arrives once, with
// no resync.
func TestSpoolLongOutage(t *testing.T) {
	w := newWorld(t)
	b := w.start(options{spool: true})
	q := b.queueID()
	w.send(3, "before")
	w.waitAcked(q)
	b.forwarded()

	w.nats.Stop()
	gen, err := zuliptest.NewGenerator(w.sim, zuliptest.GeneratorConfig{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	began := w.simClock.Now()
	for w.simClock.Since(began) < time.Hour+zuliptest.DefaultQueueTimeout {
		for range 20 {
			if _, err := gen.Step(); err != nil {
				t.Fatal(err)
			}
		}
		w.waitAcked(q) // acknowledged while the broker is down: spooled
		w.heartbeat(q) // time passes with the bridge's long-poll waiting
	}
	if st := b.p.Status().Snapshot(); st.BrokerErr == nil || st.QueueID != q {
		t.Fatalf("status after the outage %+v: want the broker down and queue %s", st, q)
	}
	if b.spool.Stats().Pending == 0 {
		t.Fatal("nothing spooled during the outage")
	}
	w.lastEventID(q) // fails the test if the queue is gone

	w.nats.Start()
	b.forwarded()
	if err := b.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if control := w.checkStream(w.readStream(), expectation{queues: []string{q}}); len(control) != 0 {
		t.Errorf("control events %v, want none: no event may be lost", control)
	}
	if n := strings.Count(w.logs.String(), "broker down"); n != 1 {
		t.Errorf("the outage logged %d times, want once", n)
	}
}

// TestSpoolFull fills a small spool while the broker is down: the bridge
// stops acknowledging, so Zulip's queue holds the rest, says so once and
// in readiness, and catches up when the broker is back.
func TestSpoolFull(t *testing.T) {
	w := newWorld(t)
	b := w.start(options{spool: true, spoolMax: 16 << 10, cfg: pipeline.Config{PublishBatch: 5, PublishTimeout: 50 * time.Millisecond}})
	q := b.queueID()
	w.nats.Stop()
	w.send(200, "outage") // about 200 KB of events: far more than 16 KiB
	testutil.WaitFor(t, waitLimit, "the spool to report full", func() bool { return b.p.Status().Snapshot().SpoolErr != nil })
	if err := b.p.Status().Snapshot().Ready(); err == nil || !strings.Contains(err.Error(), "spool full") {
		t.Errorf("Ready() = %v, want a spool full error", err)
	}
	st := b.spool.Stats()
	if !st.Full {
		t.Errorf("spool stats %+v: not full", st)
	}
	if h, _ := w.sim.History(q); h.Acked >= h.Info.LastEventID {
		t.Fatalf("everything acknowledged (%d of %d) with a full spool", h.Acked, h.Info.LastEventID)
	}

	w.nats.Start()
	w.waitAcked(q)
	b.forwarded()
	testutil.WaitFor(t, waitLimit, "readiness", func() bool { return b.p.Status().Snapshot().Ready() == nil })
	if err := b.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	w.checkStream(w.readStream(), expectation{queues: []string{q}})
	logs := w.logs.String()
	if n := strings.Count(logs, "spool not taking events"); n != 1 {
		t.Errorf("the full spool logged %d times, want once", n)
	}
	if n := strings.Count(logs, "spool taking events again"); n != 1 {
		t.Errorf("the spool's recovery logged %d times, want once", n)
	}
}

// TestSpoolTurnedOnAndOff switches the spool on and off between runs:
// nothing is lost or published twice, and a checkpoint of a spool run is
// refused without the spool's last broker position.
func TestSpoolTurnedOnAndOff(t *testing.T) {
	w := newWorld(t)
	run := func(o options, n int) {
		t.Helper()
		b := w.start(o)
		q := b.queueID()
		w.send(n, "run")
		w.inject(typingEvent)
		w.waitAcked(q)
		if b.spool != nil {
			b.forwarded()
		}
		if err := b.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	run(options{}, 5)
	run(options{spool: true}, 5)

	// Off again: the checkpoint names a spool position.
	b := w.start(options{})
	if err := b.wait(); err == nil || !strings.Contains(err.Error(), "BRIDGE_SPOOL") {
		t.Fatalf("Run without the spool's position: %v, want an error naming BRIDGE_SPOOL", err)
	}
	sp, err := spool.Open(w.stateDir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, pos := sp.Forwarded()
	sp.Close(context.Background())
	run(options{forwarded: pos}, 5)
	run(options{spool: true}, 5)

	got := w.readStream()
	w.checkStream(got, expectation{queues: []string{w.sim.Queues()[0].ID}})
	if n := len(got); n != 4*6 {
		t.Errorf("stream holds %d messages, want %d", n, 4*6)
	}
}
