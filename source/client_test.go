package source_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// TestRateLimitRetryAfter: after a 429 with retry-after 2.5, the client
// waits 2.5 s (not its shorter backoff) before the next request.
func TestRateLimitRetryAfter(t *testing.T) {
	e := newEnv(t, zuliptest.Config{})
	cfg := e.config()
	cfg.EventTypes = []string{"*"}
	c := e.client(cfg, source.WithBackoff(func(int) time.Duration { return 100 * time.Millisecond }))
	q, _ := e.open(c)
	e.inject(`{"type":"test_event"}`)
	e.srv.SetFaults(zuliptest.Faults{Method: "GET", Path: "/api/v1/events", RateLimitBurst: 1, RetryAfter: 2500 * time.Millisecond})

	ch := e.goNext(e.ctx, q)
	d := e.lastSleep(1)
	if d != 2500*time.Millisecond {
		t.Fatalf("waited %v after the 429, want retry-after's 2.5s", d)
	}
	limited := e.rec.requests("GET", "/api/v1/events")
	if len(limited) != 1 || limited[0].Status != 429 {
		t.Fatalf("requests %+v, want one 429", limited)
	}
	e.fc.Advance(2499 * time.Millisecond)
	if n := len(e.rec.requests("GET", "/api/v1/events")); n != 1 {
		t.Fatalf("%d requests before 2.5 s had passed", n)
	}
	e.fc.Advance(time.Millisecond)
	b := e.wait(ch)
	if len(all(t, b)) != 1 {
		t.Fatalf("batch %+v, want the event", b)
	}
	reqs := e.rec.requests("GET", "/api/v1/events")
	if len(reqs) != 2 || reqs[1].At.Sub(limited[0].At) < 2500*time.Millisecond {
		t.Fatalf("retry sent %v after the 429, want >= 2.5s", reqs[len(reqs)-1].At.Sub(limited[0].At))
	}
}

// TestTransientFailuresRetried: 5xx (JSON and proxy HTML), resets,
// truncated and malformed JSON are retried with the backoff policy's
// growing, jittered delays until the request succeeds.
func TestTransientFailuresRetried(t *testing.T) {
	tests := []struct {
		name   string
		faults zuliptest.Faults
	}{
		{"500", zuliptest.Faults{Status: 500, StatusCount: 3}},
		{"502 from a proxy", zuliptest.Faults{Status: 502, StatusCount: 3}},
		{"504 from a proxy", zuliptest.Faults{Status: 504, StatusCount: 3}},
		{"connection reset", zuliptest.Faults{ResetConnections: 3}},
		{"truncated JSON", zuliptest.Faults{TruncateJSON: 3}},
		{"malformed JSON", zuliptest.Faults{MalformedJSON: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, zuliptest.Config{})
			cfg := e.config()
			cfg.EventTypes = []string{"*"}
			jitter := []float64{0.9, 0.6, 0.8, 0.7}
			policy := source.ExponentialBackoff(time.Second, time.Minute, func() float64 {
				f := jitter[0]
				jitter = append(jitter[1:], f)
				return f
			})
			var delays []time.Duration
			c := e.client(cfg, source.WithBackoff(func(n int) time.Duration {
				d := policy(n)
				delays = append(delays, d)
				return d
			}))
			q, _ := e.open(c)
			e.inject(`{"type":"test_event","n":1}`)
			f := tt.faults
			f.Method, f.Path = "GET", "/api/v1/events"
			e.srv.SetFaults(f)

			r, slept := e.driveBackoff(e.goNext(e.ctx, q))
			if r.err != nil || len(all(t, r.b)) != 1 {
				t.Fatalf("Next = %+v, %v; want the event", r.b, r.err)
			}
			if len(slept) == 0 {
				t.Fatal("the fault caused no retry")
			}
			if !slices.Equal(slept, delays) {
				t.Fatalf("waited %v, the policy said %v", slept, delays)
			}
			for i := 1; i < len(slept); i++ {
				if slept[i] <= slept[i-1] {
					t.Errorf("delays %v do not grow", slept)
				}
			}
			if slept[0] == time.Second {
				t.Errorf("first delay %v is the bare ceiling: no jitter", slept[0])
			}
			// One outage, logged once each way; the attempts after the
			// first at debug.
			if warns := e.logs.lines(slog.LevelWarn, "retrying"); len(warns) != 1 {
				t.Errorf("%d retry warnings for %d retries, want 1", len(warns), len(slept))
			}
			if more := e.logs.lines(slog.LevelDebug, "still failing"); len(more) != len(slept)-1 {
				t.Errorf("%d debug lines for the %d retries after the first", len(more), len(slept)-1)
			}
			if ups := e.logs.lines(slog.LevelInfo, "recovered"); len(ups) != 1 {
				t.Errorf("recovery logged %d times, want once", len(ups))
			}
		})
	}
}

// TestUnauthorizedStops: bad credentials stop Open, Next and
// CallOnEachEvent at once with an error that names site and email and
// never shows the key.
func TestUnauthorizedStops(t *testing.T) {
	e := newEnv(t, zuliptest.Config{})
	const wrongKey = "WrongKeyWrongKeyWrongKeyWrongKey"
	cfg := e.config()
	cfg.APIKey = wrongKey
	c := e.client(cfg)

	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, source.ErrUnauthorized) {
			t.Fatalf("%s: %v, want ErrUnauthorized", what, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, e.srv.URL) || !strings.Contains(msg, zuliptest.DefaultBot.Email) {
			t.Errorf("%s: %q does not name site and email", what, msg)
		}
		if strings.Contains(msg, wrongKey) || strings.Contains(msg, zuliptest.DefaultBot.APIKey) {
			t.Errorf("%s: %q shows a key", what, msg)
		}
	}
	_, err := c.Open(e.ctx, source.State{})
	check("Open", err)
	err = c.CallOnEachEvent(e.ctx, func(context.Context, source.Event) error { return nil })
	check("CallOnEachEvent", err)

	good, reg := e.open(e.client(e.config()))
	_ = good
	q, err := c.Open(e.ctx, source.State{QueueID: reg.QueueID, LastEventID: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = q.Next(e.ctx)
	check("Next", err)

	// Two refused registers, the good register, the refused GET.
	if n := len(e.rec.requests("", "")); n != 4 {
		t.Errorf("%d requests, want 4 (no retry of a 401)", n)
	}
	if logs := e.logs.all(); strings.Contains(logs, wrongKey) || strings.Contains(logs, zuliptest.DefaultBot.APIKey) {
		t.Errorf("a key was logged:\n%s", logs)
	}
}

// TestNarrowSpellings: both spellings of a narrow send the same register
// request, and the server applies it.
func TestNarrowSpellings(t *testing.T) {
	e := newEnv(t, zuliptest.Config{})
	var bodies []string
	for _, narrow := range []string{`["stream","Denmark"]`, `[["stream","Denmark"]]`} {
		cfg := e.config()
		cfg.Narrow = narrow
		before := len(e.rec.requests("POST", "/api/v1/register"))
		e.open(e.client(cfg))
		reqs := e.rec.requests("POST", "/api/v1/register")
		if len(reqs) != before+1 {
			t.Fatalf("%d register requests", len(reqs)-before)
		}
		r := reqs[len(reqs)-1]
		if got := r.Form.Get("narrow"); got != `[["stream","Denmark"]]` {
			t.Errorf("narrow %s sent as %s", narrow, got)
		}
		bodies = append(bodies, r.Body)
	}
	if bodies[0] != bodies[1] {
		t.Fatalf("the two spellings sent different requests:\n%s\n%s", bodies[0], bodies[1])
	}
	for _, qi := range e.srv.Queues() {
		if len(qi.Narrow) != 1 || qi.Narrow[0] != (zuliptest.NarrowTerm{Operator: "stream", Operand: "Denmark"}) {
			t.Errorf("queue %s registered with narrow %+v", qi.ID, qi.Narrow)
		}
	}
	e.send("Scotland", "not for us")
	m := e.send("Denmark", "for us")
	for _, qi := range e.srv.Queues() {
		if qi.Pending != 1 {
			t.Errorf("queue %s holds %d events, want only message %d", qi.ID, qi.Pending, m)
		}
	}
}

// TestRegisterRequest checks what a registration asks for.
func TestRegisterRequest(t *testing.T) {
	e := newEnv(t, zuliptest.Config{})
	cfg := e.config()
	cfg.EventTypes = []string{"message", "reaction"}
	cfg.AllPublicStreams = true
	cfg.QueueLifespan = 30 * time.Minute
	e.open(e.client(cfg))
	r := e.rec.requests("POST", "/api/v1/register")[0]
	want := map[string]string{
		"event_types":         `["message","reaction"]`,
		"all_public_streams":  "true",
		"queue_lifespan_secs": "1800",
		"apply_markdown":      "false",
		"client_gravatar":     "false",
	}
	for k, v := range want {
		if got := r.Form.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if ua := r.Header.Get("User-Agent"); ua != "zulip-bridge/test" {
		t.Errorf("User-Agent %q", ua)
	}
	if r.Form.Has("narrow") {
		t.Error("narrow sent without one configured")
	}
	qi := e.srv.Queues()[0]
	if qi.Lifespan != 30*time.Minute || !qi.AllPublicStreams || !slices.Equal(qi.EventTypes, []string{"message", "reaction"}) {
		t.Errorf("server registered %+v", qi)
	}
}

// TestZuliprcAndEnvironment: a zuliprc is enough to connect, and a value
// from the environment wins over the file's.
func TestZuliprcAndEnvironment(t *testing.T) {
	e := newEnv(t, zuliptest.Config{})
	rc := filepath.Join(t.TempDir(), "zuliprc")
	content := fmt.Sprintf("[api]\nemail=%s\nkey=%s\nsite=%s\n", zuliptest.DefaultBot.Email, zuliptest.DefaultBot.APIKey, e.srv.URL)
	if err := os.WriteFile(rc, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	e.open(e.client(source.Config{ConfigFile: rc}))

	c := e.client(source.Config{ConfigFile: rc, Email: "someone-else@zulip.example.com"})
	_, err := c.Open(e.ctx, source.State{})
	if !errors.Is(err, source.ErrUnauthorized) || !strings.Contains(err.Error(), "someone-else@zulip.example.com") {
		t.Fatalf("with ZULIP_EMAIL overriding the file: %v, want unauthorized for the environment's email", err)
	}
}

// TestLongPollHeldNinetySeconds: a server (or proxy) that holds a long-poll
// for 90 s does not make the client time out; a client timeout below the
// hold would.
func TestLongPollHeldNinetySeconds(t *testing.T) {
	tests := []struct {
		name        string
		timeout     time.Duration // Config.LongPollTimeout; 0 = default
		wantTimeout bool
	}{
		{"default timeout", 0, false},
		{"timeout below the hold", 60 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, zuliptest.Config{})
			cfg := e.config()
			cfg.EventTypes = []string{"*"}
			cfg.LongPollTimeout = tt.timeout
			c := e.client(cfg)
			q, _ := e.open(c)
			if tt.timeout == 0 && c.LongPollTimeout() < 90*time.Second {
				t.Fatalf("default long-poll timeout %v is not above 90s", c.LongPollTimeout())
			}
			e.inject(`{"type":"test_event"}`)
			e.srv.SetFaults(zuliptest.Faults{Method: "GET", Path: "/api/v1/events", Hold: 90 * time.Second})

			ctx, cancel := context.WithCancel(e.ctx)
			defer cancel()
			ch := e.goNext(ctx, q)
			e.blockUntil(2) // the server's hold and the client's timeout
			if tt.wantTimeout {
				// Only the client's deadline passes; the server still holds
				// the response. Advancing past both at once would let the
				// held response race the client's timeout.
				e.fc.Advance(tt.timeout)
				e.eventually("a timeout and a retry", func() bool {
					reqs := e.rec.requests("GET", "/api/v1/events")
					return len(reqs) >= 2 && reqs[0].Err != nil
				})
				if warns := e.logs.lines(slog.LevelWarn, "retrying"); len(warns) == 0 || !strings.Contains(warns[0], "no response within 1m0s") {
					t.Fatalf("warnings %q do not report the client's timeout", warns)
				}
				return
			}
			e.fc.Advance(90 * time.Second)
			b := e.wait(ch)
			if len(all(t, b)) != 1 {
				t.Fatalf("batch %+v, want the held event", b)
			}
			if reqs := e.rec.requests("GET", "/api/v1/events"); len(reqs) != 1 || reqs[0].Err != nil {
				t.Fatalf("requests %+v, want one that succeeded", reqs)
			}
			if warns := e.logs.lines(slog.LevelWarn, ""); len(warns) != 0 {
				t.Fatalf("warnings: %q", warns)
			}
		})
	}
}

// TestBacklogAboveResponseLimit: the limit bounds one event, not a
// response: a backlog many times larger streams through in chunks, the
// queue kept, and an event over the limit comes Oversized, without its
// bytes but with what acknowledging and reporting it needs.
func TestBacklogAboveResponseLimit(t *testing.T) {
	e := newEnv(t, zuliptest.Config{})
	cfg := e.config()
	cfg.MaxResponseBytes = 8 << 10
	c := e.client(cfg)
	q, reg := e.open(c)
	var want []int64
	for i := range 40 {
		want = append(want, e.send("Denmark", strings.Repeat(fmt.Sprint(i%10), 200)))
	}
	big := e.send("Denmark", strings.Repeat("x", 9<<10))
	want = append(want, big, e.send("Denmark", "after"))

	b := e.next(q)
	if b.Lost != nil || b.Registered != nil || b.QueueID != reg.QueueID {
		t.Fatalf("batch %+v, want events of the same queue", b)
	}
	var got []source.Event
	for {
		evs, err := b.Read(7, 2<<10)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 || len(evs) > 7 {
			t.Fatalf("Read(7, 2 KiB) returned %d events", len(evs))
		}
		size := 0
		for _, ev := range evs[:len(evs)-1] {
			size += len(ev.Raw)
		}
		if size >= 2<<10 {
			t.Fatalf("Read(7, 2 KiB) went on past %d bytes", size)
		}
		got = append(got, evs...)
		q.Ack(evs[len(evs)-1].ID)
	}
	var ids []int64
	for _, ev := range got {
		ids = append(ids, ev.MessageID)
		switch {
		case ev.MessageID == big && (!ev.Oversized || ev.Raw != nil || ev.Size <= 9<<10 || ev.Type != "message"):
			t.Errorf("the event over the limit: %+v, want it Oversized, without bytes", ev)
		case ev.MessageID != big && (ev.Oversized || ev.Size != len(ev.Raw)):
			t.Errorf("event %d: oversized %v, size %d of %d bytes", ev.ID, ev.Oversized, ev.Size, len(ev.Raw))
		}
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("messages %v, want %v", ids, want)
	}
	if st := q.State(); st.LastEventID != got[len(got)-1].ID || st.MaxMessageID != want[len(want)-1] {
		t.Errorf("state %+v after acknowledging every chunk", st)
	}
	if h, _ := e.srv.History(reg.QueueID); h.Ended != "" {
		t.Errorf("queue ended %q, want it kept", h.Ended)
	}
}

// TestRefusedLastEventID: a 400 refusing the saved last_event_id (a
// checkpoint out of step with the server) replaces the queue instead of
// retrying a request that cannot succeed.
func TestRefusedLastEventID(t *testing.T) {
	e := newEnv(t, zuliptest.Config{})
	cfg := e.config()
	cfg.EventTypes = []string{"*"}
	_, reg := e.open(e.client(cfg))
	e.inject(`{"type":"test_event"}`)

	q, err := e.client(cfg).Open(e.ctx, source.State{QueueID: reg.QueueID, LastEventID: 7, MaxMessageID: 3})
	if err != nil {
		t.Fatal(err)
	}
	b := e.next(q)
	var ae *source.APIError
	if b.Lost == nil || !errors.As(b.Lost.Cause, &ae) || ae.Status != 400 {
		t.Fatalf("batch %+v, want a loss caused by the 400", b)
	}
	if b.Lost.OldLastEventID != 7 || b.Lost.MaxMessageID != 3 {
		t.Errorf("loss %+v does not carry the saved state", b.Lost)
	}
}

// TestDeleteQueueAndServerSettings covers the remaining endpoints.
func TestDeleteQueueAndServerSettings(t *testing.T) {
	e := newEnv(t, zuliptest.Config{})
	c := e.client(e.config())
	ss, err := c.ServerSettings(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ss.ZulipVersion != zuliptest.DefaultZulipVersion || ss.FeatureLevel != zuliptest.DefaultFeatureLevel || ss.RealmURL == "" {
		t.Errorf("server settings %+v", ss)
	}
	if r := e.rec.requests("GET", "/api/v1/server_settings")[0]; r.Header.Get("Authorization") != "" {
		t.Error("server_settings sent credentials it does not need")
	}

	q, reg := e.open(c)
	if err := q.Delete(e.ctx); err != nil {
		t.Fatal(err)
	}
	if h, _ := e.srv.History(reg.QueueID); h.Ended != zuliptest.EndDeleted {
		t.Fatalf("queue ended %q, want deleted", h.Ended)
	}
	if err := c.DeleteQueue(e.ctx, reg.QueueID); !errors.Is(err, source.ErrQueueExpired) {
		t.Fatalf("deleting a deleted queue: %v, want ErrQueueExpired", err)
	}
}
