package main

import (
	"encoding/json"
	"fmt"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// natsEnv points a bridge at a NATS broker in the test process.
func natsEnv(nb *testutil.NATS) []string {
	return []string{"BRIDGE_SINK=nats", "BRIDGE_NATS_URL=" + nb.URL()}
}

// sendMessages sends n stream messages through the simulator.
func sendMessages(t *testing.T, sim *zuliptest.Server, n int, topic string) []int64 {
	t.Helper()
	ids := make([]int64, 0, n)
	for i := 0; i < n; i++ {
		id, err := sim.SendMessage(zuliptest.SendRequest{Type: "stream", To: "Denmark", Topic: topic, Content: fmt.Sprintf("message %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func injectReactions(t *testing.T, sim *zuliptest.Server, messageID int64, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		raw := fmt.Sprintf(`{"type":"reaction","op":"add","user_id":10,"user":{"user_id":10,"email":"iago@zulip.example.com","full_name":"Iago"},"message_id":%d,"emoji_name":"smile","emoji_code":"1f642","reaction_type":"unicode_emoji"}`, messageID)
		if _, err := sim.InjectEvent(json.RawMessage(raw)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestQueueLostWhileDown: the queue expires (or the server crashes) while
// the bridge is down; on start it registers anew, backfills the missed
// messages with their dedup keys and publishes one resync event.
func TestQueueLostWhileDown(t *testing.T) {
	for _, how := range []string{"expired", "crashed"} {
		t.Run(how, func(t *testing.T) {
			nb := testutil.StartNATS(t)
			w := newWorld(t, zuliptest.Config{})
			p := w.start(natsEnv(nb)...)
			q1 := w.queueID(30 * time.Second)
			before := sendMessages(t, w.sim, 20, "before")
			injectReactions(t, w.sim, before[0], 5)
			w.caughtUp(q1, w.lastEventID(q1), time.Minute, p)
			if code := p.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Fatalf("exit %d", code)
			}

			// While the bridge is down: messages and other events, then
			// the queue is gone.
			during := sendMessages(t, w.sim, 30, "during")
			injectReactions(t, w.sim, during[0], 5) // these are lost for good
			if how == "expired" {
				if !w.sim.ExpireQueue(q1) {
					t.Fatal("queue already gone")
				}
			} else {
				w.sim.Crash()
			}

			p = w.start(natsEnv(nb)...)
			q2 := w.queueID(30 * time.Second)
			if q2 == q1 {
				t.Fatal("no new queue registered")
			}
			after := sendMessages(t, w.sim, 10, "after")
			w.caughtUp(q2, w.lastEventID(q2), time.Minute, p)
			if code := p.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Fatalf("exit %d", code)
			}

			got := readStream(t, nb.URL(), "ZULIP")
			counts := map[string]int{}
			backfilled := 0
			var resyncs []stored
			for _, m := range got {
				counts[m.headers[mapping.HeaderDedupKey]]++
				if m.headers[mapping.HeaderBackfill] == "true" {
					backfilled++
				}
				if m.subject == "zulip.bridge.resync" {
					resyncs = append(resyncs, m)
				}
			}
			host := strings.TrimPrefix(w.site, "http://")
			for _, id := range append(append(before, during...), after...) {
				if n := counts[fmt.Sprintf("%s/message/%d", host, id)]; n != 1 {
					t.Errorf("message %d stored %d times, want once", id, n)
				}
			}
			if backfilled != len(during) {
				t.Errorf("%d messages marked backfilled, want %d", backfilled, len(during))
			}
			if len(resyncs) != 1 {
				t.Fatalf("%d resync events, want 1", len(resyncs))
			}
			var r struct {
				OldQueueID         string `json:"old_queue_id"`
				NewQueueID         string `json:"new_queue_id"`
				MessagesBackfilled int    `json:"messages_backfilled"`
				Unrecoverable      string `json:"unrecoverable"`
			}
			if err := json.Unmarshal(resyncs[0].data, &r); err != nil {
				t.Fatal(err)
			}
			if r.OldQueueID != q1 || r.NewQueueID != q2 || r.MessagesBackfilled != len(during) || r.Unrecoverable == "" {
				t.Errorf("resync event %s; want old %s new %s backfilled %d", resyncs[0].data, q1, q2, len(during))
			}
			// Everything the old and new queues delivered is there once.
			want := w.expected(q1, q2)
			var live []stored
			for _, m := range got {
				if m.headers[mapping.HeaderBackfill] != "true" {
					live = append(live, m)
				}
			}
			checkExactlyOnce(t, live, want)
		})
	}
}

// TestBrokerDownAndBack: while NATS is down, without the spool nothing is
// acknowledged to Zulip, and with it Zulip is acknowledged from the spool;
// once NATS is back everything arrives exactly once.
func TestBrokerDownAndBack(t *testing.T) {
	for _, spool := range []string{"off", "on"} {
		t.Run("spool "+spool, func(t *testing.T) {
			nb := testutil.StartNATS(t)
			w := newWorld(t, zuliptest.Config{})
			p := w.start(append(natsEnv(nb), "BRIDGE_LOG_LEVEL=debug", "BRIDGE_SPOOL="+spool)...)
			q := w.queueID(30 * time.Second)
			sendMessages(t, w.sim, 50, "before")
			w.caughtUp(q, w.lastEventID(q), time.Minute, p)
			acked := w.sim.Acked(q)

			nb.Stop()
			sendMessages(t, w.sim, 50, "outage")
			testutil.WaitFor(t, time.Minute, "the bridge to notice the broker is down", func() bool {
				return strings.Contains(p.out.String(), "broker down")
			})
			if spool == "off" {
				// The bridge is retrying the batch it holds: it must not
				// have acknowledged it, nor asked for (and so acknowledged)
				// anything newer.
				if got := w.sim.Acked(q); got != acked {
					t.Fatalf("acknowledged up to %d while the broker was down, want %d", got, acked)
				}
			} else {
				w.caughtUp(q, w.lastEventID(q), time.Minute, p) // from the spool
			}
			nb.Start()
			sendMessages(t, w.sim, 50, "after")
			w.caughtUp(q, w.lastEventID(q), 2*time.Minute, p)
			testutil.WaitFor(t, time.Minute, "the bridge to log the broker up", func() bool {
				return strings.Contains(p.out.String(), "broker up")
			})
			if code := p.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Fatalf("exit %d", code)
			}
			checkExactlyOnce(t, readStream(t, nb.URL(), "ZULIP"), w.expected(q))
		})
	}
}

// TestSIGTERMResumes: SIGTERM exits 0 within the shutdown timeout with the
// checkpoint written; the next start resumes the same queue.
func TestSIGTERMResumes(t *testing.T) {
	nb := testutil.StartNATS(t)
	w := newWorld(t, zuliptest.Config{})
	env := append(natsEnv(nb), "BRIDGE_SHUTDOWN_TIMEOUT=10s")
	p := w.start(env...)
	q := w.queueID(30 * time.Second)
	sendMessages(t, w.sim, 100, "first")
	w.caughtUp(q, w.lastEventID(q), time.Minute, p)
	checkProbes(t, p)

	began := time.Now()
	if code := p.stop(t, syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM; output:\n%s", code, tail(p.out.String()))
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("shutdown took %s, more than BRIDGE_SHUTDOWN_TIMEOUT", took)
	}
	cp := readCheckpoint(t, w.dir)
	if cp.QueueID != q || cp.LastEventID != int64(w.sim.Acked(q)) {
		t.Fatalf("checkpoint %v; want queue %s at %d", cp, q, w.sim.Acked(q))
	}

	sendMessages(t, w.sim, 100, "second")
	p = w.start(env...)
	w.caughtUp(q, w.lastEventID(q), time.Minute, p)
	if qs := w.sim.Queues(); len(qs) != 1 || qs[0].ID != q {
		t.Fatalf("queues %+v; the restart must resume %s, not register", qs, q)
	}
	if code := p.stop(t, syscall.SIGINT, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT", code)
	}
	checkExactlyOnce(t, readStream(t, nb.URL(), "ZULIP"), w.expected(q))
}

// checkProbes reads the bridge's HTTP address from its log and checks the
// endpoints of docs/operations.md on the running binary.
func checkProbes(t *testing.T, p *bridgeProc) {
	t.Helper()
	get := func(path string) (int, string) { return p.httpGet(t, path) }
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d %s", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusOK || !strings.Contains(body, "broker: ok") {
		t.Errorf("/readyz %d %s", code, body)
	}
	// With the spool on, what Zulip acknowledged reaches the broker a
	// moment later: the published count is waited for.
	var code int
	var body string
	testutil.WaitFor(t, 30*time.Second, "the broker to confirm the 100 messages", func() bool {
		code, body = get("/metrics")
		return strings.Contains(body, `zulip_bridge_events_published_total{type="message"} 100`)
	})
	for _, want := range []string{"zulip_bridge_last_event_id", `zulip_bridge_queue_registrations_total{reason="initial"} 1`} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %s", code, want)
		}
	}
	if strings.Contains(body, testAPIKey) {
		t.Error("/metrics shows the API key")
	}
}

// TestCheckpointInNATSKV runs the bridge with its checkpoint in a JetStream
// key-value bucket: a restart resumes the queue from it.
func TestCheckpointInNATSKV(t *testing.T) {
	nb := testutil.StartNATS(t)
	w := newWorld(t, zuliptest.Config{})
	env := append(natsEnv(nb), "BRIDGE_CHECKPOINT=nats-kv")
	p := w.start(env...)
	q := w.queueID(30 * time.Second)
	sendMessages(t, w.sim, 20, "kv")
	w.caughtUp(q, w.lastEventID(q), time.Minute, p)
	p.kill()
	sendMessages(t, w.sim, 20, "kv")
	p = w.start(env...)
	w.caughtUp(q, w.lastEventID(q), time.Minute, p)
	if qs := w.sim.Queues(); len(qs) != 1 || qs[0].ID != q {
		t.Fatalf("queues %+v; want %s resumed", qs, q)
	}
	p.stop(t, syscall.SIGTERM, 15*time.Second)
	checkExactlyOnce(t, readStream(t, nb.URL(), "ZULIP"), w.expected(q))
}

// TestStopWithBrokerDown: SIGTERM while the broker is down waits for it
// for the drain's share of BRIDGE_SHUTDOWN_TIMEOUT, then says at warn what
// is left (without the spool: what it read, unacknowledged; with it: the
// events the spool holds), and exits 0; the next start, with the broker
// back, delivers it exactly once.
func TestStopWithBrokerDown(t *testing.T) {
	for _, tc := range []struct {
		spool string
		warn  string
	}{
		{"off", `level=WARN msg="stopped before everything read was confirmed and checkpointed: it is left unacknowledged`},
		{"on", `level=WARN msg="stopped with events in the spool not yet forwarded: they are durable and forwarded at the next start" pending=\d+`},
	} {
		t.Run("spool "+tc.spool, func(t *testing.T) {
			nb := testutil.StartNATS(t)
			w := newWorld(t, zuliptest.Config{})
			env := append(natsEnv(nb), "BRIDGE_SHUTDOWN_TIMEOUT=2s", "BRIDGE_SPOOL="+tc.spool)
			p := w.start(env...)
			q := w.queueID(30 * time.Second)
			sendMessages(t, w.sim, 10, "before")
			w.caughtUp(q, w.lastEventID(q), time.Minute, p)

			nb.Stop()
			sendMessages(t, w.sim, 10, "outage")
			testutil.WaitFor(t, time.Minute, "the bridge to notice the broker is down", func() bool {
				return strings.Contains(p.out.String(), "broker down")
			})
			began := time.Now()
			if code := p.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Fatalf("exit %d on SIGTERM with the broker down, want 0:\n%s", code, tail(p.out.String()))
			}
			took := time.Since(began)
			out := p.out.String()
			if !regexp.MustCompile(tc.warn).MatchString(out) {
				t.Errorf("no warning saying what is left (%s):\n%s", tc.warn, tail(out))
			}
			// The drain's share is 1.5 s of the 2 s (a quarter is kept for
			// closing); the process must not outlive the timeout by much.
			if took < 1500*time.Millisecond {
				t.Errorf("stopped after %s: the broker was not waited for", took)
			}

			nb.Start()
			p = w.start(env...)
			w.caughtUp(q, w.lastEventID(q), time.Minute, p)
			waitResumed(t, p)
			if code := p.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Fatalf("exit %d", code)
			}
			checkExactlyOnce(t, readStream(t, nb.URL(), "ZULIP"), w.expected(q))
		})
	}
}
