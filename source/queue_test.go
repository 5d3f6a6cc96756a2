package source_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// TestCallOnEachEventOrderOnceAcrossHeartbeatsAndGaps: events reach the
// handler in order and once each although ids have gaps, heartbeats come
// in between and the handler fails now and then; a failed event is not
// acknowledged (the server delivers it again) and heartbeats are
// acknowledged without reaching the handler.
func TestCallOnEachEventOrderOnceAcrossHeartbeatsAndGaps(t *testing.T) {
	const heartbeat = 50 * time.Second
	e := newEnv(t, zuliptest.Config{HeartbeatInterval: heartbeat})
	e.srv.SetFaults(zuliptest.Faults{EventIDGap: 3})
	cfg := e.config()
	cfg.EventTypes = []string{"*"}
	c := e.client(cfg)

	var (
		mu       sync.Mutex
		handled  []int   // the "n" of each event handled successfully, in order
		eventIDs []int64 // and its event id
		failed   = map[int64]bool{}
		progress = make(chan int, 100)
	)
	handler := func(ctx context.Context, ev source.Event) error {
		if ev.Heartbeat {
			t.Errorf("heartbeat %d reached the handler", ev.ID)
		}
		qid := e.srv.Queues()[0].ID
		if acked := e.srv.Acked(qid); acked >= ev.ID {
			t.Errorf("event %d already acknowledged (%d) while its handler runs", ev.ID, acked)
		}
		var n int
		if _, err := fmt.Sscanf(string(ev.Raw), `{"type":"test_event","n":%d`, &n); err != nil {
			t.Errorf("raw event %s: %v", ev.Raw, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if n%3 == 1 && !failed[ev.ID] {
			failed[ev.ID] = true
			return errors.New("downstream unavailable")
		}
		handled = append(handled, n)
		eventIDs = append(eventIDs, ev.ID)
		progress <- len(handled)
		return nil
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- c.CallOnEachEvent(ctx, handler) }()

	waitHandled := func(n int) {
		t.Helper()
		for {
			select {
			case got := <-progress:
				if got == n {
					return
				}
			case <-e.ctx.Done():
				t.Fatalf("timed out waiting for %d events to be handled", n)
			}
		}
	}
	heartbeatAcked := func() {
		t.Helper()
		e.blockUntil(2) // the long-poll waits
		qid := e.srv.Queues()[0].ID
		before := len(e.srv.Delivered(qid))
		e.fc.Advance(heartbeat)
		e.eventually("heartbeat acknowledged", func() bool {
			d := e.srv.Delivered(qid)
			return len(d) > before && d[len(d)-1].Type == "heartbeat" && e.srv.Acked(qid) == d[len(d)-1].ID
		})
	}

	total := 0
	for round := range 3 {
		e.blockUntil(2)
		for range 4 {
			e.inject(fmt.Sprintf(`{"type":"test_event","n":%d,"round":%d}`, total, round))
			total++
		}
		waitHandled(total)
		heartbeatAcked()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("CallOnEachEvent returned %v, want context.Canceled", err)
	}

	mu.Lock()
	defer mu.Unlock()
	want := make([]int, total)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(handled, want) {
		t.Fatalf("handled %v, want %v in order, once each", handled, want)
	}
	for i := 1; i < len(eventIDs); i++ {
		if eventIDs[i]-eventIDs[i-1] < 2 {
			t.Fatalf("event ids %v have no gaps: the fault did not apply", eventIDs)
		}
	}
	qid := e.srv.Queues()[0].ID
	for _, d := range e.srv.Delivered(qid) {
		if failed[d.ID] && d.Deliveries < 2 {
			t.Errorf("event %d failed in the handler but was delivered only once: it was acknowledged", d.ID)
		}
	}
}

// TestQueueAcknowledgesOnlyWhatIsAcked checks, on the server, what each GET
// acknowledged.
func TestQueueAcknowledgesOnlyWhatIsAcked(t *testing.T) {
	e := newEnv(t, zuliptest.Config{})
	e.srv.SetFaults(zuliptest.Faults{EventIDGap: 2})
	cfg := e.config()
	cfg.EventTypes = []string{"*"}
	c := e.client(cfg)

	q, err := c.Open(e.ctx, source.State{})
	if err != nil {
		t.Fatal(err)
	}
	reg := e.next(q)
	if reg.Registered == nil || reg.Lost != nil || len(all(t, reg)) != 0 {
		t.Fatalf("first batch %+v: want the registration alone", reg)
	}
	if st := q.State(); st != (source.State{}) {
		t.Fatalf("State before the registration is acknowledged = %+v, want the zero state", st)
	}
	if again := e.next(q); again.Registered != reg.Registered {
		t.Fatal("an unacknowledged registration batch did not come again")
	}
	q.Ack(reg.LastEventID())
	qid := reg.QueueID
	if st := q.State(); st.QueueID != qid || st.LastEventID != -1 {
		t.Fatalf("State after acknowledging the registration = %+v", st)
	}

	for n := range 3 {
		e.inject(fmt.Sprintf(`{"type":"test_event","n":%d}`, n))
	}
	b := e.next(q)
	got := ids(all(t, b))
	if len(got) != 3 || got[0] != 2 || got[1] != 5 || got[2] != 8 {
		t.Fatalf("event ids %v, want [2 5 8]", got)
	}
	// Not acknowledged: the same events again, nothing acknowledged.
	if again := ids(all(t, e.next(q))); !slices.Equal(again, got) {
		t.Fatalf("without Ack, Next returned %v, want %v again", again, got)
	}
	if a := e.srv.Acked(qid); a != -1 {
		t.Fatalf("server acknowledged %d before any Ack", a)
	}
	// An id between two events acknowledges the lower one: the server
	// accepts only ids it sent.
	q.Ack(7)
	if st := q.State(); st.LastEventID != 5 {
		t.Fatalf("after Ack(7), State().LastEventID = %d, want 5", st.LastEventID)
	}
	if a := e.srv.Acked(qid); a != -1 {
		t.Fatalf("Ack reached the server (%d) before the next Next", a)
	}
	if rest := ids(all(t, e.next(q))); !slices.Equal(rest, []int64{8}) {
		t.Fatalf("after Ack(5), Next returned %v, want [8]", rest)
	}
	if a := e.srv.Acked(qid); a != 5 {
		t.Fatalf("server acknowledged %d, want 5", a)
	}
	// Ids beyond the batch do not acknowledge what was never delivered.
	q.Ack(1000)
	if st := q.State(); st.LastEventID != 8 {
		t.Fatalf("after Ack(1000), State().LastEventID = %d, want 8", st.LastEventID)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	ch := e.goNext(ctx, q)
	e.blockUntil(2)
	if a := e.srv.Acked(qid); a != 8 {
		t.Fatalf("the waiting GET acknowledged %d, want 8", a)
	}
	cancel()
	if r := <-ch; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Next after cancel returned %v, want context.Canceled", r.err)
	}
}

// TestRestartFromSavedState: a second process resuming the first one's
// saved state gets exactly the events after it, byte for byte.
func TestRestartFromSavedState(t *testing.T) {
	e := newEnv(t, zuliptest.Config{})
	cfg := e.config()
	cfg.EventTypes = []string{"*"}

	q1, reg := e.open(e.client(cfg))
	for n := range 6 {
		e.inject(fmt.Sprintf(`{"type":"test_event","n":%d}`, n))
	}
	b1 := e.next(q1)
	b1evs := all(t, b1)
	if len(b1evs) != 6 {
		t.Fatalf("got %d events, want 6", len(b1evs))
	}
	q1.Ack(b1evs[2].ID) // the first three are durable
	saved := q1.State()
	// The first process dies here: its acknowledgement never reached the
	// server, as with a crash between checkpoint and next GET.

	q2, err := e.client(cfg).Open(e.ctx, saved)
	if err != nil {
		t.Fatal(err)
	}
	b2 := e.next(q2)
	b2evs := all(t, b2)
	if b2.Registered != nil || b2.QueueID != reg.QueueID {
		t.Fatalf("resume re-registered: %+v", b2)
	}
	if len(b2evs) != 3 {
		t.Fatalf("resumed with events %v, want the last three of %v", ids(b2evs), ids(b1evs))
	}
	for i, ev := range b2evs {
		want := b1evs[3+i]
		if ev.ID != want.ID || string(ev.Raw) != string(want.Raw) {
			t.Errorf("resumed event %d = %d %s, want %d %s", i, ev.ID, ev.Raw, want.ID, want.Raw)
		}
	}
	if a := e.srv.Acked(reg.QueueID); a != saved.LastEventID {
		t.Fatalf("server acknowledged %d, want the saved %d", a, saved.LastEventID)
	}
}

// TestQueueLost: expiry (and a server crash) mid-stream make Next register
// a new queue, report the loss with the highest message id handled, start
// the new queue's ids over, and keep State on the old queue until the loss
// is acknowledged; the gap is recoverable with GetMessages.
func TestQueueLost(t *testing.T) {
	tests := []struct {
		name string
		// ackThird acknowledges the third message before the loss;
		// otherwise it was delivered but not handled, and must be
		// backfilled.
		ackThird bool
		// waiting makes the loss happen under a waiting GET.
		waiting bool
		lose    func(*zuliptest.Server, string)
	}{
		{"expired", false, false, func(s *zuliptest.Server, q string) { s.ExpireQueue(q) }},
		{"crashed", false, false, func(s *zuliptest.Server, _ string) { s.Crash() }},
		{"expired while waiting", true, true, func(s *zuliptest.Server, q string) { s.ExpireQueue(q) }},
		{"crashed while waiting", true, true, func(s *zuliptest.Server, _ string) { s.Crash() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, zuliptest.Config{})
			c := e.client(e.config())
			q, reg := e.open(c)
			oldQueue := reg.QueueID

			m1, m2 := e.send("Denmark", "one"), e.send("Denmark", "two")
			b := e.next(q)
			if evs := all(t, b); len(evs) != 2 || evs[0].MessageID != m1 || evs[1].MessageID != m2 {
				t.Fatalf("events %+v, want messages %d and %d", evs, m1, m2)
			}
			q.Ack(b.LastEventID())
			if st := q.State(); st.MaxMessageID != m2 {
				t.Fatalf("State().MaxMessageID = %d, want %d", st.MaxMessageID, m2)
			}
			m3 := e.send("Denmark", "three")
			b = e.next(q)
			if evs := all(t, b); len(evs) != 1 || evs[0].MessageID != m3 {
				t.Fatalf("events %+v, want message %d", evs, m3)
			}
			handled := m2
			if tt.ackThird {
				q.Ack(b.LastEventID())
				handled = m3
			}
			acked := q.State()

			var ch <-chan nextResult
			const held = time.Second
			if tt.waiting {
				ch = e.goNext(e.ctx, q)
				e.blockUntil(2)
				// Next registers anew as soon as it sees the loss: the
				// registration is held until the messages sent meanwhile
				// are in, or it would race them.
				e.srv.SetFaults(zuliptest.Faults{Method: "POST", Path: "/api/v1/register", Latency: held})
			}
			tt.lose(e.srv, oldQueue)
			m4, m5 := e.send("Denmark", "four"), e.send("Denmark", "five")
			lostAt := e.fc.Now()
			if !tt.waiting {
				ch = e.goNext(e.ctx, q)
			} else {
				// The held registration: the client's timeout and the
				// server's latency are the clock's only timers.
				e.eventually("the new registration", func() bool { return len(e.rec.requests("POST", "/api/v1/register")) == 2 })
				e.blockUntil(2)
				e.srv.SetFaults(zuliptest.Faults{})
				e.fc.Advance(held)
			}
			b = e.wait(ch)

			if b.Registered == nil || b.Lost == nil || len(all(t, b)) != 0 {
				t.Fatalf("batch %+v: want a registration reporting the loss", b)
			}
			lost := *b.Lost
			if lost.OldQueueID != oldQueue || lost.NewQueueID != b.Registered.QueueID || lost.NewQueueID == oldQueue {
				t.Errorf("lost queues %q -> %q, registered %q, old %q", lost.OldQueueID, lost.NewQueueID, b.Registered.QueueID, oldQueue)
			}
			if lost.MaxMessageID != handled || lost.OldLastEventID != acked.LastEventID {
				t.Errorf("lost at message %d event %d, want the acknowledged %d and %d", lost.MaxMessageID, lost.OldLastEventID, handled, acked.LastEventID)
			}
			if !errors.Is(lost.Cause, source.ErrQueueExpired) || !lost.LostAt.Equal(lostAt) || lost.LastSuccess.IsZero() {
				t.Errorf("lost cause %v at %v (last success %v), want ErrQueueExpired at %v", lost.Cause, lost.LostAt, lost.LastSuccess, lostAt)
			}
			if b.Registered.MaxMessageID != m5 {
				t.Errorf("new registration max_message_id %d, want %d", b.Registered.MaxMessageID, m5)
			}
			if st := q.State(); st != acked {
				t.Errorf("State before the loss is acknowledged = %+v, want the old %+v", st, acked)
			}

			msgs, newest, err := c.GetMessages(e.ctx, lost.MaxMessageID, 100)
			if err != nil {
				t.Fatal(err)
			}
			var backfilled []int64
			for _, m := range msgs {
				backfilled = append(backfilled, m.ID)
			}
			want := []int64{m3, m4, m5}
			if tt.ackThird {
				want = want[1:]
			}
			if !slices.Equal(backfilled, want) || !newest {
				t.Errorf("backfill from %d: %v (newest %v), want %v", lost.MaxMessageID, backfilled, newest, want)
			}

			q.Ack(b.LastEventID())
			wantState := source.State{QueueID: lost.NewQueueID, LastEventID: -1, MaxMessageID: m5}
			if st := q.State(); st != wantState {
				t.Errorf("State after acknowledging the loss = %+v, want %+v", st, wantState)
			}
			m6 := e.send("Denmark", "six")
			b = e.next(q)
			if evs := all(t, b); len(evs) != 1 || evs[0].ID != 0 || evs[0].MessageID != m6 || b.QueueID != lost.NewQueueID {
				t.Fatalf("first batch of the new queue %+v, want event 0 with message %d", b, m6)
			}
			for _, r := range e.rec.requests("GET", "/api/v1/events") {
				if r.Query.Get("queue_id") == lost.NewQueueID && r.Query.Get("last_event_id") != "-1" {
					t.Errorf("first GET of the new queue sent last_event_id=%s: the old queue's id was reused", r.Query.Get("last_event_id"))
				}
			}
		})
	}
}

// TestRegisterFailuresAreRetried: a failing register, first or after a
// loss, is retried with growing delays and each failure is logged, never
// abandoned.
func TestRegisterFailuresAreRetried(t *testing.T) {
	e := newEnv(t, zuliptest.Config{})
	policy := source.ExponentialBackoff(time.Second, time.Minute, func() float64 { return 0.75 })
	c := e.client(e.config(), source.WithBackoff(policy))
	e.srv.SetFaults(zuliptest.Faults{Method: "POST", Path: "/api/v1/register", Status: 503, StatusCount: 3})

	type openResult struct {
		q   *source.Queue
		err error
	}
	opened := make(chan openResult, 1)
	go func() {
		q, err := c.Open(e.ctx, source.State{})
		opened <- openResult{q, err}
	}()
	for i := 1; i <= 3; i++ {
		d := e.lastSleep(i)
		if want := policy(i); d != want {
			t.Fatalf("retry %d waited %v, want %v", i, d, want)
		}
		e.fc.Advance(d)
	}
	r := <-opened
	if r.err != nil {
		t.Fatalf("Open: %v", r.err)
	}
	if n := len(e.rec.requests("POST", "/api/v1/register")); n != 4 {
		t.Fatalf("%d register requests, want 4", n)
	}
	if logged := e.logs.lines(slog.LevelWarn, "retrying"); len(logged) != 3 {
		t.Fatalf("logged %d retry warnings, want 3: %q", len(logged), logged)
	}
	q := r.q
	b := e.next(q)
	q.Ack(b.LastEventID())

	// After a loss: the replacement is retried the same way.
	e.srv.ExpireQueue(b.QueueID)
	e.srv.SetFaults(zuliptest.Faults{Method: "POST", Path: "/api/v1/register", Status: 500, StatusCount: 2})
	// Counted before Next starts: its first retry may be recorded at once.
	sleeps := len(e.clock.Sleeps())
	ch := e.goNext(e.ctx, q)
	for i := 1; i <= 2; i++ {
		d := e.lastSleep(sleeps + i)
		if want := policy(i); d != want {
			t.Fatalf("re-register retry %d waited %v, want %v", i, d, want)
		}
		e.fc.Advance(d)
	}
	if b := e.wait(ch); b.Lost == nil || b.Registered == nil {
		t.Fatalf("batch %+v does not report the replaced queue", b)
	}
	if logged := e.logs.lines(slog.LevelWarn, "retrying"); len(logged) != 5 {
		t.Fatalf("logged %d retry warnings, want 5", len(logged))
	}
}
