package pipeline_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
)

// TestInitialStatePerRegistration: with PublishInitialState, every
// registration (the first one and the one replacing a lost queue) publishes
// one <prefix>.bridge.state carrying the register response byte for byte;
// resuming a queue registers nothing and publishes no state.
func TestInitialStatePerRegistration(t *testing.T) {
	w := newWorld(t)
	g := newGate()
	opts := options{cfg: pipeline.Config{PublishInitialState: true}, transport: g}
	b := w.start(opts)
	q1 := b.queueID()
	w.send(1, "first queue")
	w.waitAcked(q1)
	if err := w.simClock.BlockUntilContext(w.ctx, 1); err != nil {
		t.Fatal(err)
	}
	w.sim.ExpireQueue(q1)
	q2 := w.newQueue(b, q1)
	w.send(1, "second queue")
	w.waitAcked(q2)
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}

	b2 := w.start(opts)
	if got := b2.queueID(); got != q2 {
		t.Fatalf("restart polls %s, want the resumed queue %s", got, q2)
	}
	w.send(1, "resumed")
	w.waitAcked(q2)
	if err := b2.stop(); err != nil {
		t.Fatal(err)
	}

	control := w.checkStream(w.readStream(), expectation{queues: []string{q1, q2}})
	states := controlEvents(control, "state")
	bodies := g.registerBodies()
	if len(bodies) != 2 || len(states) != 2 {
		t.Fatalf("%d registrations and state events %v, want 2 of each", len(bodies), states)
	}
	if len(controlEvents(control, "resync")) != 1 || len(control) != 3 {
		t.Errorf("control events %v, want 2 state and 1 resync", control)
	}
	for i, q := range []string{q1, q2} {
		m := states[i]
		if key := fmt.Sprintf("%s/%s/bridge.state", w.host, q); m.h(mapping.HeaderDedupKey) != key {
			t.Errorf("state event %d: dedup key %q, want %q", i, m.h(mapping.HeaderDedupKey), key)
		}
		if m.h(mapping.HeaderEventType) != "bridge" || m.h(mapping.HeaderEventOp) != "state" {
			t.Errorf("state event %d: headers %v", i, m.headers)
		}
		if !bytes.Equal(m.data, bodies[i]) {
			t.Errorf("state event %d is not the register response of queue %s byte for byte:\n got %.200s\nwant %.200s", i, q, m.data, bodies[i])
		}
	}
}
