package pipeline_test

import (
	"testing"

	"github.com/zulip-bridge/zulip-bridge/pipeline"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// TestMixedTrafficIntoJetStream runs the generator's mix of every kind of
// Zulip event, with heartbeats and gaps in the event ids, through the
// pipeline into JetStream: each event once, byte for byte, in order per
// subject, with the headers of docs/names.md; heartbeats acknowledged but
// published only when configured.
func TestMixedTrafficIntoJetStream(t *testing.T) {
	for _, tc := range []struct {
		name              string
		events            int
		publishHeartbeats bool
	}{
		{"10000 events", 10000, false},
		{"heartbeats published", 500, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			b := w.start(options{cfg: pipeline.Config{PublishHeartbeats: tc.publishHeartbeats}})
			q := b.queueID()
			gen, err := zuliptest.NewGenerator(w.sim, zuliptest.GeneratorConfig{Seed: 8})
			if err != nil {
				t.Fatal(err)
			}
			// Generate until the queue got tc.events events: some of the
			// mix (messages in a private stream) are not the bot's to see.
			received := func() int {
				n := 0
				for _, ev := range w.sim.Delivered(q) {
					if ev.Type != "heartbeat" {
						n++
					}
				}
				return n
			}
			for i := 0; ; i++ {
				// Stretches of traffic with and without gaps in the ids.
				switch i % 2000 {
				case 200:
					w.sim.SetFaults(zuliptest.Faults{EventIDGap: 1 + i%5})
				case 1200:
					w.sim.SetFaults(zuliptest.Faults{})
				}
				if _, err := gen.Step(); err != nil {
					t.Fatal(err)
				}
				if i%100 == 99 {
					w.heartbeat(q)
					if i+1 >= tc.events && received() >= tc.events {
						break
					}
				}
			}
			w.waitAcked(q)
			if err := b.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}

			delivered := w.sim.Delivered(q)
			heartbeats, gaps := 0, 0
			for i, ev := range delivered {
				if ev.Type == "heartbeat" {
					heartbeats++
				}
				if i > 0 && ev.ID > delivered[i-1].ID+1 {
					gaps++
				}
			}
			if heartbeats < tc.events/100 {
				t.Fatalf("queue delivered %d heartbeats, want at least %d", heartbeats, tc.events/100)
			}
			if gaps == 0 {
				t.Fatal("no gaps in the delivered event ids: the fault did not apply")
			}

			got := w.readStream()
			control := w.checkStream(got, expectation{queues: []string{q}, heartbeats: tc.publishHeartbeats})
			if len(control) != 0 {
				t.Errorf("control events %v, want none", control)
			}
			stored := 0
			for _, m := range got {
				if m.subject == "zulip.heartbeat" {
					stored++
				}
			}
			if want := map[bool]int{true: heartbeats, false: 0}[tc.publishHeartbeats]; stored != want {
				t.Errorf("%d heartbeats stored, want %d", stored, want)
			}
			if want := len(delivered) - heartbeats + stored; len(got) != want {
				t.Errorf("stream holds %d messages, want %d", len(got), want)
			}
		})
	}
}
