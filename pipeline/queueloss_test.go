package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/jonboulle/clockwork"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
)

// resyncEvent is the payload of <prefix>.bridge.resync as a consumer reads
// it (docs/names.md).
type resyncEvent struct {
	Type               string    `json:"type"`
	Site               string    `json:"site"`
	OldQueueID         string    `json:"old_queue_id"`
	OldLastEventID     int64     `json:"old_last_event_id"`
	NewQueueID         string    `json:"new_queue_id"`
	DetectedAt         time.Time `json:"detected_at"`
	RegisteredAt       time.Time `json:"registered_at"`
	FromMessageID      int64     `json:"from_message_id"`
	ToMessageID        int64     `json:"to_message_id"`
	MessagesBackfilled int       `json:"messages_backfilled"`
	Unrecoverable      string    `json:"unrecoverable"`
}

// oneResync checks that control holds exactly one resync event, for the
// loss of oldQueue replaced by newQueue (any when empty), and returns it.
func (w *world) oneResync(control []stored, oldQueue, newQueue string) resyncEvent {
	w.t.Helper()
	resyncs := controlEvents(control, "resync")
	if len(resyncs) != 1 || len(control) != 1 {
		w.t.Fatalf("control events %v, want exactly one resync", control)
	}
	m := resyncs[0]
	if key := fmt.Sprintf("%s/%s/bridge.resync", w.host, oldQueue); m.h(mapping.HeaderDedupKey) != key {
		w.t.Errorf("resync dedup key %q, want %q", m.h(mapping.HeaderDedupKey), key)
	}
	if m.h(mapping.HeaderEventType) != "bridge" || m.h(mapping.HeaderEventOp) != "resync" {
		w.t.Errorf("resync headers %v", m.headers)
	}
	var r resyncEvent
	if err := json.Unmarshal(m.data, &r); err != nil {
		w.t.Fatalf("resync payload %s: %v", m.data, err)
	}
	if r.Type != "resync" || r.OldQueueID != oldQueue || (newQueue != "" && r.NewQueueID != newQueue) {
		w.t.Errorf("resync %s: want old queue %s, new queue %s", m.data, oldQueue, newQueue)
	}
	if r.Unrecoverable == "" || r.DetectedAt.IsZero() || r.RegisteredAt.IsZero() {
		w.t.Errorf("resync %s does not say what was lost when", m.data)
	}
	return r
}

// TestQueueLostWhileStopped: the queue is gone when the bridge comes back
// (expired after a long outage, or the Zulip server crashed). Every
// message still arrives once: those delivered live before, those sent
// meanwhile backfilled from GET /messages, those of the new queue live;
// and one resync event says what happened.
func TestQueueLostWhileStopped(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(w *world, queueID string)
	}{
		{"expired", func(w *world, q string) {
			if !w.sim.ExpireQueue(q) {
				w.t.Fatalf("queue %s did not exist", q)
			}
		}},
		{"server crashed", func(w *world, _ string) { w.sim.Crash() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			b1 := w.start(options{})
			q1 := b1.queueID()
			live := w.send(5, "before")
			w.inject(typingEvent)
			w.inject(presenceEvent)
			w.waitAcked(q1)
			if err := b1.stop(); err != nil {
				t.Fatalf("first Run: %v", err)
			}
			acked, _ := w.sim.History(q1)

			tc.lose(w, q1)
			missed := w.send(7, "while down")
			w.inject(typingEvent) // no queue gets it: lost for good

			// Pages of 3: the backfill metric moves page by page.
			b2 := w.start(options{cfg: pipeline.Config{BackfillPageSize: 3}})
			q2 := w.newQueue(b2, q1)
			w.send(3, "after")
			w.inject(typingEvent)
			w.waitAcked(q2)
			if err := b2.stop(); err != nil {
				t.Fatalf("second Run: %v", err)
			}

			control := w.checkStream(w.readStream(), expectation{queues: []string{q1, q2}, backfilled: missed})
			r := w.oneResync(control, q1, q2)
			if r.MessagesBackfilled != len(missed) || r.FromMessageID != live[len(live)-1] || r.ToMessageID != missed[len(missed)-1] {
				t.Errorf("resync says %d messages backfilled in (%d, %d], want %d in (%d, %d]",
					r.MessagesBackfilled, r.FromMessageID, r.ToMessageID, len(missed), live[len(live)-1], missed[len(missed)-1])
			}
			if r.OldLastEventID != acked.Acked {
				t.Errorf("resync says the old queue's last event was %d, the server saw %d acknowledged", r.OldLastEventID, acked.Acked)
			}
			if n := b2.obs.backfilled.Load(); n != int64(len(missed)) {
				t.Errorf("observer told %d messages backfilled, want %d", n, len(missed))
			}
			b2.obs.mu.Lock()
			calls := b2.obs.backfillCalls
			b2.obs.mu.Unlock()
			if !slices.Equal(calls, []int{3, 3, 1}) {
				t.Errorf("observer told backfills %v, want one per page of 3: [3 3 1]", calls)
			}
		})
	}
}

// TestQueueLostWhileRunning: the queue expires under a running bridge, and
// messages are sent while it registers a new one (the registration is held
// back): they are backfilled, the rest arrives live, once each.
func TestQueueLostWhileRunning(t *testing.T) {
	w := newWorld(t)
	g := newGate()
	b := w.start(options{transport: g})
	q1 := b.queueID()
	w.send(3, "before")
	w.inject(typingEvent)
	w.waitAcked(q1)

	g.holdRegistrations()
	if err := w.simClock.BlockUntilContext(w.ctx, 1); err != nil { // the long-poll waits
		t.Fatal(err)
	}
	if !w.sim.ExpireQueue(q1) {
		t.Fatalf("queue %s did not exist", q1)
	}
	g.waitHeld(t)
	missed := w.send(4, "while registering")
	g.release()
	q2 := w.newQueue(b, q1)
	w.send(2, "after")
	w.waitAcked(q2)
	if err := b.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	control := w.checkStream(w.readStream(), expectation{queues: []string{q1, q2}, backfilled: missed})
	if r := w.oneResync(control, q1, q2); r.MessagesBackfilled != len(missed) {
		t.Errorf("resync says %d messages backfilled, want %d", r.MessagesBackfilled, len(missed))
	}
	if n := b.obs.registrations.Load(); n != 2 {
		t.Errorf("%d registrations, want 2", n)
	}
}

// TestBackfillInPages: a backfill larger than BackfillPageSize is fetched
// and published page by page.
func TestBackfillInPages(t *testing.T) {
	w := newWorld(t)
	b1 := w.start(options{})
	q1 := b1.queueID()
	w.send(2, "before")
	w.waitAcked(q1)
	if err := b1.stop(); err != nil {
		t.Fatal(err)
	}
	w.sim.ExpireQueue(q1)
	missed := w.send(10, "while down")

	var pages atomic.Int64
	b2 := w.start(options{
		cfg: pipeline.Config{BackfillPageSize: 3},
		publish: func(ctx context.Context, msgs []*mapping.Message, next func(context.Context, []*mapping.Message) error) error {
			if backfilled(msgs) > 0 {
				pages.Add(1)
			}
			return next(ctx, msgs)
		},
	})
	q2 := w.newQueue(b2, q1)
	w.waitAcked(q2)
	if err := b2.stop(); err != nil {
		t.Fatal(err)
	}

	control := w.checkStream(w.readStream(), expectation{queues: []string{q1, q2}, backfilled: missed})
	if r := w.oneResync(control, q1, q2); r.MessagesBackfilled != len(missed) {
		t.Errorf("resync says %d messages backfilled, want %d", r.MessagesBackfilled, len(missed))
	}
	if n := pages.Load(); n != 4 {
		t.Errorf("backfill published in %d pages, want 4 (3+3+3+1)", n)
	}
}

// TestRestartDuringBackfill stops the bridge in the middle of a resync:
// after the first page of a backfill is published and before the second
// is, or after the resync event is stored and before the broker confirms
// it. The checkpoint still names the lost queue; the next start finds it
// gone, registers again, backfills what is left (skipping what it reads
// back), and every message is in the stream once, with one resync event.
func TestRestartDuringBackfill(t *testing.T) {
	const pageSize = 3
	for _, tc := range []struct {
		name string
		// stopAt reports whether the bridge stops on this batch (page is
		// the number of the backfill page it holds, 0 if none), and
		// whether the broker stores it before the stop.
		stopAt func(msgs []*mapping.Message, page int64) (stop, stored bool)
		// checkpointMax is where the checkpoint leaves the backfill, as an
		// index into the missed messages.
		checkpointMax int
		// check checks the one resync event.
		check func(t *testing.T, r resyncEvent, missed []int64, q2, q3 string)
	}{
		{
			name:          "after the first page",
			stopAt:        func(_ []*mapping.Message, page int64) (bool, bool) { return page == 2, false },
			checkpointMax: pageSize - 1,
			// The run that finishes the backfill reports what it
			// published, from where the first page's checkpoint left off.
			check: func(t *testing.T, r resyncEvent, missed []int64, _, q3 string) {
				if r.NewQueueID != q3 || r.MessagesBackfilled != len(missed)-pageSize || r.FromMessageID != missed[pageSize-1] || r.ToMessageID != missed[len(missed)-1] {
					t.Errorf("resync %+v: want new queue %s, %d messages in (%d, %d]", r, q3, len(missed)-pageSize, missed[pageSize-1], missed[len(missed)-1])
				}
			},
		},
		{
			name: "after the resync event",
			stopAt: func(msgs []*mapping.Message, _ int64) (bool, bool) {
				return hasSubject(msgs, "zulip.bridge.resync"), true
			},
			checkpointMax: 9, // every page is checkpointed, the last one too
			// The stored resync event is the first run's, and the next
			// run's is its duplicate.
			check: func(t *testing.T, r resyncEvent, missed []int64, q2, _ string) {
				if r.NewQueueID != q2 || r.MessagesBackfilled != len(missed) {
					t.Errorf("resync %+v: want new queue %s, %d messages", r, q2, len(missed))
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			b1 := w.start(options{})
			q1 := b1.queueID()
			w.send(2, "before")
			w.waitAcked(q1)
			if err := b1.stop(); err != nil {
				t.Fatal(err)
			}
			w.sim.ExpireQueue(q1)
			missed := w.send(10, "while down")

			stopped := make(chan struct{})
			var pages atomic.Int64
			b2 := w.start(options{
				cfg: pipeline.Config{BackfillPageSize: pageSize, ShutdownTimeout: 50 * time.Millisecond},
				publish: func(ctx context.Context, msgs []*mapping.Message, next func(context.Context, []*mapping.Message) error) error {
					var page int64
					if backfilled(msgs) > 0 {
						page = pages.Add(1)
					}
					stop, stored := tc.stopAt(msgs, page)
					if !stop {
						return next(ctx, msgs)
					}
					if stored {
						if err := next(ctx, msgs); err != nil {
							return err
						}
					}
					close(stopped)
					<-ctx.Done() // the broker never confirms
					return ctx.Err()
				},
			})
			waitClosed(t, stopped, "the bridge to reach its stop")
			var q2 string
			for _, q := range w.sim.Queues() {
				if q.ID != q1 {
					q2 = q.ID
				}
			}
			if q2 == "" {
				t.Fatal("no queue replaced the lost one")
			}
			if err := b2.stop(); err != nil {
				t.Fatalf("Run stopped during the resync: %v", err)
			}
			cp := readCheckpoint(t, w.stateDir)
			if want := missed[tc.checkpointMax]; cp.QueueID != q1 || cp.MaxMessageID != want {
				t.Errorf("checkpoint names queue %s, max message id %d; want the lost queue %s and %d", cp.QueueID, cp.MaxMessageID, q1, want)
			}

			b3 := w.start(options{cfg: pipeline.Config{BackfillPageSize: pageSize}})
			q3 := w.newQueue(b3, q1)
			if q3 == q2 {
				t.Fatalf("the restart reused queue %s, which its checkpoint never named", q2)
			}
			w.send(2, "after")
			w.waitAcked(q3)
			if err := b3.stop(); err != nil {
				t.Fatal(err)
			}

			control := w.checkStream(w.readStream(), expectation{queues: []string{q1, q2, q3}, backfilled: missed})
			tc.check(t, w.oneResync(control, q1, ""), missed, q2, q3)
		})
	}
}

// newQueue waits until the bridge polls a queue other than old and
// returns it.
func (w *world) newQueue(b *bridge, old string) string {
	w.t.Helper()
	var id string
	testutil.WaitFor(w.t, waitLimit, "a queue replacing "+old, func() bool {
		s := b.p.Status().Snapshot()
		id = s.QueueID
		return s.Registered && id != "" && id != old
	})
	return id
}

// backfilled counts the backfilled messages of a batch.
func backfilled(msgs []*mapping.Message) int {
	n := 0
	for _, m := range msgs {
		if v, _ := m.Get(mapping.HeaderBackfill); v == "true" {
			n++
		}
	}
	return n
}

// readCheckpoint reads the file store's checkpoint as the next start will.
func readCheckpoint(t *testing.T, dir string) checkpoint.Checkpoint {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, checkpoint.FileName))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := checkpoint.DecodeFile(data)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// TestBackfillLogsProgress: a long backfill says how far it got, page by
// page, at most every ten seconds.
func TestBackfillLogsProgress(t *testing.T) {
	w := newWorld(t)
	b1 := w.start(options{})
	q1 := b1.queueID()
	w.send(1, "before")
	w.waitAcked(q1)
	if err := b1.stop(); err != nil {
		t.Fatal(err)
	}
	w.sim.ExpireQueue(q1)
	missed := w.send(12, "while down")

	fc := clockwork.NewFakeClock()
	b2 := w.start(options{
		clock: fc,
		cfg:   pipeline.Config{BackfillPageSize: 3},
		publish: func(ctx context.Context, msgs []*mapping.Message, next func(context.Context, []*mapping.Message) error) error {
			if backfilled(msgs) > 0 {
				fc.Advance(6 * time.Second) // each page takes six seconds
			}
			return next(ctx, msgs)
		},
	})
	w.newQueue(b2, q1)
	testutil.WaitFor(t, waitLimit, "the backfill to end", func() bool {
		return strings.Contains(w.logs.String(), "backfilled messages after queue loss")
	})
	if err := b2.stop(); err != nil {
		t.Fatal(err)
	}
	// Pages at 6, 12, 18 and 24 s: a line after the second and the fourth.
	var lines []string
	for _, l := range strings.Split(w.logs.String(), "\n") {
		if strings.Contains(l, "backfill in progress") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "published=6") || !strings.Contains(lines[1], fmt.Sprintf("published=%d", len(missed))) {
		t.Errorf("progress lines %q, want two, at 6 and %d messages", lines, len(missed))
	}
}
