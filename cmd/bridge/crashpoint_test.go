package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/crashpoint"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// TestCrashAtKillPoints kills the bridge, with the spool on, exactly where
// the spool makes a crash hardest to survive: right after a batch is
// durable in the spool and before the checkpoint that acknowledges it
// (Zulip sends the batch again, and the spool already has it), and right
// after the broker confirmed a forwarded batch and before the spool
// records it (the broker has it, the spool would forward it again). Each
// bridge is started with one point armed, dies there by its own SIGKILL
// while events flow, and is replaced; in the end every event is in the
// broker exactly once.
func TestCrashAtKillPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	for _, tc := range []struct {
		name string
		sink func(t *testing.T) crashSink
	}{
		{"jetstream", jetStreamCrash},
		{"kafka", func(t *testing.T) crashSink { return kafkaCrash(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.sink(t)
			crashPointRun{kills: killCount(20), down: s.down, extra: append(s.env, "BRIDGE_SPOOL=on", "BRIDGE_PUBLISH_BATCH=50"), check: s.check}.run(t)
		})
	}
}

type crashPointRun struct {
	kills int
	down  time.Duration
	extra []string
	check func(w *world, queueID string)
}

func (c crashPointRun) run(t *testing.T) {
	w := newWorld(t, zuliptest.Config{HeartbeatInterval: 100 * time.Millisecond})
	rng := seeded(t, 3)
	p, queueID := w.startPolling(c.extra...)
	p.kill()
	gen, err := zuliptest.NewGenerator(w.sim, zuliptest.GeneratorConfig{Seed: rng.Uint64()})
	if err != nil {
		t.Fatal(err)
	}
	points := []string{crashpoint.SpoolAppended, crashpoint.Forwarded}
	killed := map[string]int{}
	for i := range c.kills {
		point := points[i%len(points)]
		n := 1 + rng.IntN(3)
		p = w.start(append(c.extra, fmt.Sprintf("%s=%s:%d", crashpoint.EnvVar, point, n))...)
		// Events keep coming until the armed point is reached: every batch
		// appended or forwarded reaches both points.
		for !p.exited() {
			for range 50 {
				if _, err := gen.Step(); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-p.done:
			case <-time.After(20 * time.Millisecond):
			}
			if len(w.sim.Delivered(queueID)) > 200000 {
				t.Fatalf("the bridge never reached %s:%d; output:\n%s", point, n, tail(p.out.String()))
			}
		}
		if code := p.cmd.ProcessState.ExitCode(); code != -1 {
			t.Fatalf("bridge armed at %s:%d exited with %d, not by SIGKILL; output:\n%s", point, n, code, tail(p.out.String()))
		}
		killed[point]++
		time.Sleep(c.down)
	}
	p = w.start(c.extra...)
	last := w.lastEventID(queueID)
	w.caughtUp(queueID, last, 3*time.Minute, p)
	waitResumed(t, p)
	testutil.WaitFor(t, time.Minute, "the spool to forward everything", func() bool {
		_, body := p.httpGet(t, "/metrics")
		return metricValue(body, "zulip_bridge_spool_pending_events") == "0"
	})
	if code := p.stop(t, 15, 30*time.Second); code != 0 {
		t.Errorf("last bridge exited %d on SIGTERM; output:\n%s", code, tail(p.out.String()))
	}
	if qs := w.sim.Queues(); len(qs) != 1 || qs[0].ID != queueID {
		t.Errorf("queues after the run: %+v; want only %s", qs, queueID)
	}
	t.Logf("kills by point %v, last event id %d", killed, last)
	c.check(w, queueID)
}

// metricValue returns the value of an unlabelled series in a /metrics
// body, "" when it is not there.
func metricValue(body, name string) string {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
