package main

import (
	"cmp"
	"context"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// crashRun drives the acceptance test of docs/delivery.md: events flow into
// the queue while the bridge is killed with SIGKILL at random moments,
// kills times, restarted each time; then a last bridge catches up and
// every event the queue delivered must be in the broker exactly once.
type crashRun struct {
	events int // events to generate
	kills  int // SIGKILLs
	// down is how long the bridge stays dead after a kill: longer than a
	// broker's own duplicate window, so that it cannot hide a duplicate.
	down  time.Duration
	extra []string // environment of the bridge beyond the world's
	check func(w *world, queueID string)
}

func (c crashRun) run(t *testing.T) {
	w := newWorld(t, zuliptest.Config{HeartbeatInterval: 100 * time.Millisecond})
	rng := seeded(t, 1)
	p, queueID := w.startPolling(c.extra...)

	gen, err := zuliptest.NewGenerator(w.sim, zuliptest.GeneratorConfig{Seed: rng.Uint64()})
	if err != nil {
		t.Fatal(err)
	}
	// Traffic in the background: bursts with pauses, id gaps now and then.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var produced atomic.Int64
	trafficDone := make(chan error, 1)
	go func() {
		for i := 0; i < c.events; i++ {
			if ctx.Err() != nil {
				trafficDone <- ctx.Err()
				return
			}
			switch i % 5000 {
			case 1000:
				w.sim.SetFaults(zuliptest.Faults{EventIDGap: 3})
			case 2000:
				w.sim.SetFaults(zuliptest.Faults{})
			}
			if _, err := gen.Step(); err != nil {
				trafficDone <- err
				return
			}
			produced.Add(1)
			if i%20 == 19 {
				time.Sleep(time.Millisecond) // pacing: ~20k events/s at most
			}
		}
		trafficDone <- nil
	}()

	// Kill at random moments, restarting each time. Half the kills come
	// after a random delay, spread over start-up, read-back, long-polls,
	// publishes and checkpoint writes; the other half come right after the
	// server handed out a batch that is not acknowledged yet, the moment
	// when the broker may hold messages that no checkpoint records.
	midBatch := 0
	for i := 0; i < c.kills; i++ {
		if i%2 == 0 {
			time.Sleep(time.Duration(20+rng.IntN(250)) * time.Millisecond)
		} else if w.inFlight(queueID, 2*time.Second) {
			midBatch++
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		}
		if p.exited() {
			t.Fatalf("bridge exited by itself (code %d) before kill %d; output:\n%s", p.cmd.ProcessState.ExitCode(), i, tail(p.out.String()))
		}
		p.kill()
		time.Sleep(c.down)
		p = w.start(c.extra...)
	}
	if err := <-trafficDone; err != nil {
		t.Fatal(err)
	}
	last := w.lastEventID(queueID)
	w.caughtUp(queueID, last, 3*time.Minute, p)
	// The bridge killed last may have acknowledged everything already:
	// SIGTERM only once this one is up (its signal handler installed).
	waitResumed(t, p)
	if code := p.stop(t, 15, 30*time.Second); code != 0 {
		t.Errorf("last bridge exited %d on SIGTERM; output:\n%s", code, tail(p.out.String()))
	}
	if qs := w.sim.Queues(); len(qs) != 1 || qs[0].ID != queueID {
		t.Errorf("queues after the run: %+v; want only %s (kills must not lose the queue)", qs, queueID)
	}
	t.Logf("%d events generated, %d kills (%d with a batch in flight), last event id %d", produced.Load(), c.kills, midBatch, last)
	c.check(w, queueID)
}

// seeded returns a random source seeded from the clock, logging the seed
// so that a failing run can be told apart.
func seeded(t *testing.T, stream uint64) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, stream))
}

// startPolling starts a bridge and waits until it polls its queue. Kills
// start only then: the bridge polls a queue only after checkpointing its
// registration, and one killed before that leaves a queue that delivered
// nothing; its successor registers another, which would not be the queue
// the test watches.
func (w *world) startPolling(extra ...string) (*bridgeProc, string) {
	w.t.Helper()
	p := w.start(extra...)
	queueID := w.queueID(30 * time.Second)
	testutil.WaitFor(w.t, 30*time.Second, "the bridge to poll its queue", func() bool {
		qs := w.sim.Queues()
		return len(qs) == 1 && qs[0].Waiting
	})
	return p, queueID
}

// waitResumed waits until p has resumed its queue, by its log.
func waitResumed(t *testing.T, p *bridgeProc) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, "the bridge to resume its queue", func() bool {
		return strings.Contains(p.out.String(), "resuming event queue")
	})
}

// inFlight waits until the queue has handed out events that are not
// acknowledged, and reports whether that happened within timeout.
func (w *world) inFlight(queueID string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		h, _ := w.sim.History(queueID)
		if n := len(h.Delivered); n > 0 && h.Delivered[n-1].ID > h.Acked && h.Delivered[n-1].Type != "heartbeat" {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

// crashSink is a broker for the crash tests: the bridge's environment for
// it, and the check that it holds every delivered event exactly once.
type crashSink struct {
	env   []string
	down  time.Duration // outage after a kill
	check func(w *world, queueID string)
}

// jetStreamCrash runs JetStream with the shortest duplicate window it
// allows, shorter than the outage after a kill: exactly-once must come
// from the read-back, not from JetStream's dedup.
func jetStreamCrash(t *testing.T) crashSink {
	nb := testutil.StartNATS(t)
	return crashSink{
		env: []string{
			"BRIDGE_SINK=nats",
			"BRIDGE_NATS_URL=" + nb.URL(),
			"BRIDGE_NATS_DUPLICATE_WINDOW=100ms",
			"BRIDGE_NATS_MAX_AGE=1h",
		},
		down: 150 * time.Millisecond,
		check: func(w *world, queueID string) {
			checkExactlyOnce(t, readStream(t, nb.URL(), "ZULIP"), w.expected(queueID))
		},
	}
}

// kafkaCrash runs kfake, topics created by the bridge; extra adds to the
// bridge's environment.
func kafkaCrash(t *testing.T, extra ...string) crashSink {
	kb := newKafka(t)
	return crashSink{
		env: append([]string{
			"BRIDGE_SINK=kafka",
			"BRIDGE_KAFKA_BROKERS=" + kb.brokers(),
			"BRIDGE_KAFKA_CREATE_TOPICS=true",
		}, extra...),
		check: func(w *world, queueID string) {
			checkExactlyOnce(t, readTopics(t, kb, "zulip."), w.expected(queueID))
		},
	}
}

// soakKills, when set, replaces each crash test's number of SIGKILLs:
// the soak mode of docs/testing.md, e.g.
//
//	go test ./cmd/bridge -run 'TestCrash(JetStream|Kafka)ExactlyOnce' -crash.kills 1000 -timeout 3h
var soakKills = flag.Int("crash.kills", 0, "SIGKILLs per crash test (soak mode, e.g. 1000); 0 keeps each test's own")

// killCount is n, or the soak mode's count.
func killCount(n int) int { return cmp.Or(*soakKills, n) }

// TestCrashJetStreamExactlyOnce and TestCrashKafkaExactlyOnce run the crash
// test with the spool on and off: with the file checkpoint and no spool
// setting the spool is on; off with the kafka checkpoint.
func TestCrashJetStreamExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test takes about a minute")
	}
	for _, tc := range []struct {
		name  string
		env   []string
		kills int
	}{
		{"spool", nil, 50},
		{"no spool", []string{"BRIDGE_SPOOL=off"}, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := jetStreamCrash(t)
			kills := killCount(tc.kills)
			crashRun{events: max(20000, 200*kills), kills: kills, down: s.down, extra: append(s.env, tc.env...), check: s.check}.run(t)
		})
	}
}

func TestCrashKafkaExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test takes about a minute")
	}
	for _, tc := range []struct {
		name  string
		env   []string
		kills int
	}{
		{"no spool", []string{"BRIDGE_CHECKPOINT=kafka"}, 50},
		{"spool", nil, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := kafkaCrash(t, tc.env...)
			kills := killCount(tc.kills)
			crashRun{events: max(20000, 200*kills), kills: kills, down: s.down, extra: s.env, check: s.check}.run(t)
		})
	}
}

// midResponseRun is the crash test of the streamed loop: one GET /events
// response holds a backlog of thousands of events, read in chunks of
// BRIDGE_PUBLISH_BATCH, and the bridge is killed again and again in the
// middle of it: while the response is half consumed, chunks are in flight
// and a confirmed chunk may not be checkpointed yet. Each restart resumes
// after the last durable chunk; in the end every event is in the broker
// exactly once.
type midResponseRun struct {
	extra []string
	down  time.Duration
	check func(w *world, queueID string)
}

func (c midResponseRun) run(t *testing.T) {
	w := newWorld(t, zuliptest.Config{})
	rng := seeded(t, 2)
	extra := append([]string{"BRIDGE_PUBLISH_BATCH=20"}, c.extra...)
	p, queueID := w.startPolling(extra...)
	p.kill()
	// The backlog piles up while no bridge runs: the next GET returns it
	// all in one response.
	gen, err := zuliptest.NewGenerator(w.sim, zuliptest.GeneratorConfig{Seed: rng.Uint64()})
	if err != nil {
		t.Fatal(err)
	}
	const backlog = 6000
	for range backlog {
		if _, err := gen.Step(); err != nil {
			t.Fatal(err)
		}
	}
	first, last := w.sim.Acked(queueID), w.lastEventID(queueID)

	// First, deterministically: the server holds the response after
	// half the backlog; the bridge publishes and checkpoints what it got
	// and is killed while the rest is still to come.
	pause := w.sim.PauseEvents(queueID, backlog/2)
	p = w.start(extra...)
	<-pause.Reached()
	testutil.WaitFor(t, time.Minute, "a checkpoint inside the held response", func() bool {
		return checkpointEventID(w.dir) > first+int64(backlog/4)
	})
	p.kill()
	pause.Release()
	if cp := checkpointEventID(w.dir); cp >= first+int64(backlog/2) {
		t.Fatalf("checkpoint at event %d, past the %d events the server had sent", cp, backlog/2)
	}
	time.Sleep(c.down)

	// Then each round kills the bridge once its checkpoint passed the
	// next mark: then the response is half read, the next chunks are
	// being published, and the broker may hold more than the checkpoint
	// says.
	const rounds = 8
	midResponse, ahead := 0, 0
	for i := range rounds {
		mark := first + (last-first)*int64(i+2)/(rounds+3) + int64(rng.IntN(40))
		p = w.start(extra...)
		testutil.WaitFor(t, time.Minute, "the checkpoint to pass the next mark", func() bool {
			if p.exited() {
				t.Fatalf("bridge exited (code %d); output:\n%s", p.cmd.ProcessState.ExitCode(), tail(p.out.String()))
			}
			return checkpointEventID(w.dir) >= mark
		})
		p.kill()
		cp := checkpointEventID(w.dir)
		if cp > first && cp < last {
			midResponse++
		}
		if w.sim.Acked(queueID) < cp {
			ahead++ // the checkpoint is ahead of what Zulip was told: the response was not finished
		}
		time.Sleep(c.down)
	}
	if midResponse < rounds/2 {
		t.Errorf("only %d of %d kills came with the checkpoint inside the response", midResponse, rounds)
	}
	p = w.start(extra...)
	w.caughtUp(queueID, last, 3*time.Minute, p)
	waitResumed(t, p)
	if code := p.stop(t, 15, 30*time.Second); code != 0 {
		t.Errorf("last bridge exited %d on SIGTERM; output:\n%s", code, tail(p.out.String()))
	}
	if qs := w.sim.Queues(); len(qs) != 1 || qs[0].ID != queueID {
		t.Errorf("queues after the run: %+v; want only %s (a backlog in one response is no queue loss)", qs, queueID)
	}
	t.Logf("backlog of %d events (ids %d..%d), %d kills, %d inside the response, %d with the checkpoint ahead of Zulip's acknowledgement",
		backlog, first+1, last, rounds, midResponse, ahead)
	c.check(w, queueID)
}

// checkpointEventID is the last_event_id of the file checkpoint in dir, -2
// when there is none (yet).
func checkpointEventID(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, checkpoint.FileName))
	if err != nil {
		return -2
	}
	cp, err := checkpoint.DecodeFile(b)
	if err != nil {
		return -2
	}
	return cp.LastEventID
}

func TestCrashMidResponseJetStream(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	s := jetStreamCrash(t)
	midResponseRun{down: s.down, extra: s.env, check: s.check}.run(t)
}

func TestCrashMidResponseKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	s := kafkaCrash(t)
	midResponseRun{down: s.down, extra: s.env, check: s.check}.run(t)
}
