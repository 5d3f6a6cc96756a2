package source_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// testDeadline bounds every wait of a test in real time; nothing should
// come close to it.
const testDeadline = 20 * time.Second

// env is one simulator and what a test needs around it: a fake clock
// shared by server and client, a transport that records the client's
// requests, and a log that records the client's warnings.
type env struct {
	t     *testing.T
	ctx   context.Context
	fc    *clockwork.FakeClock
	clock *sleepClock
	srv   *zuliptest.Server
	rec   *recorder
	logs  *logRecorder
}

func newEnv(t *testing.T, cfg zuliptest.Config) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testDeadline)
	t.Cleanup(cancel)
	fc := clockwork.NewFakeClockAt(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	cfg.Clock = fc
	srv := zuliptest.NewServer(cfg)
	t.Cleanup(srv.Close)
	return &env{
		t:     t,
		ctx:   ctx,
		fc:    fc,
		clock: &sleepClock{FakeClock: fc},
		srv:   srv,
		rec:   newRecorder(srv.Client().Transport, fc),
		logs:  &logRecorder{},
	}
}

// config is a valid client configuration for the simulator's default bot.
func (e *env) config() source.Config {
	return source.Config{Site: e.srv.URL, Email: zuliptest.DefaultBot.Email, APIKey: zuliptest.DefaultBot.APIKey}
}

// noBackoff retries at once, for tests that are not about delays.
func noBackoff(int) time.Duration { return 0 }

// client builds a client on the env's clock, recorder and log; by default
// it retries without delay.
func (e *env) client(cfg source.Config, opts ...source.Option) *source.Client {
	e.t.Helper()
	all := append([]source.Option{
		source.WithTransport(e.rec),
		source.WithClock(e.clock),
		source.WithLogger(slog.New(e.logs)),
		source.WithBackoff(noBackoff),
		source.WithVersion("test"),
	}, opts...)
	c, err := source.NewClient(cfg, all...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// open opens a fresh queue and acknowledges its registration batch.
func (e *env) open(c *source.Client) (*source.Queue, *source.Registration) {
	e.t.Helper()
	q, err := c.Open(e.ctx, source.State{})
	if err != nil {
		e.t.Fatal(err)
	}
	b := e.next(q)
	if b.Registered == nil || len(all(e.t, b)) != 0 {
		e.t.Fatalf("first batch %+v is not a registration", b)
	}
	q.Ack(b.LastEventID())
	return q, b.Registered
}

// all reads the rest of b's events, failing the test on error.
func all(t testing.TB, b source.Batch) []source.Event {
	t.Helper()
	var out []source.Event
	for {
		evs, err := b.Read(0, 0)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		out = append(out, evs...)
	}
}

// next calls q.Next and fails the test on error.
func (e *env) next(q *source.Queue) source.Batch {
	e.t.Helper()
	b, err := q.Next(e.ctx)
	if err != nil {
		e.t.Fatalf("Next: %v", err)
	}
	return b
}

type nextResult struct {
	b   source.Batch
	err error
}

// goNext runs q.Next in the background, for tests that must move the
// clock while it waits.
func (e *env) goNext(ctx context.Context, q *source.Queue) <-chan nextResult {
	ch := make(chan nextResult, 1)
	go func() {
		b, err := q.Next(ctx)
		ch <- nextResult{b, err}
	}()
	return ch
}

func (e *env) wait(ch <-chan nextResult) source.Batch {
	e.t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			e.t.Fatalf("Next: %v", r.err)
		}
		return r.b
	case <-e.ctx.Done():
		e.t.Fatal("Next did not return in time")
	}
	return source.Batch{}
}

// blockUntil waits until n timers are pending on the clock: with the
// simulator, a waiting long-poll is two (the server's heartbeat and the
// client's timeout), a client backing off is one.
func (e *env) blockUntil(n int) {
	e.t.Helper()
	if err := e.fc.BlockUntilContext(e.ctx, n); err != nil {
		e.t.Fatalf("waiting for %d timers on the clock: %v", n, err)
	}
}

// eventually waits for cond, checking it whenever the client sent or got
// a request, and at least every few milliseconds for server-side changes.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-e.rec.changed():
		case <-tick.C:
		case <-e.ctx.Done():
			e.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// inject puts a test event into every queue and returns its id there.
func (e *env) inject(raw string) {
	e.t.Helper()
	if _, err := e.srv.InjectEvent(json.RawMessage(raw)); err != nil {
		e.t.Fatal(err)
	}
}

// send sends a stream message and returns its id.
func (e *env) send(stream, content string) int64 {
	e.t.Helper()
	id, err := e.srv.SendMessage(zuliptest.SendRequest{Sender: "iago@zulip.example.com", To: stream, Topic: "t", Content: content})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func ids(evs []source.Event) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// sleepClock is the fake clock with a record of the delays the client
// chose to wait (every NewTimer is a backoff wait; request timeouts use
// AfterFunc), so that a test reads the delay itself rather than inferring
// it from when requests arrive.
type sleepClock struct {
	*clockwork.FakeClock
	mu     sync.Mutex
	sleeps []time.Duration
}

func (c *sleepClock) NewTimer(d time.Duration) clockwork.Timer {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	return c.FakeClock.NewTimer(d)
}

func (c *sleepClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// lastSleep waits until the client is blocked on a backoff timer it has
// not been released from, and returns its delay.
func (e *env) lastSleep(count int) time.Duration {
	e.t.Helper()
	e.eventually(fmt.Sprintf("backoff wait #%d", count), func() bool { return len(e.clock.Sleeps()) >= count })
	e.blockUntil(1)
	return e.clock.Sleeps()[count-1]
}

// driveBackoff lets a background Next through its backoff waits, advancing
// the clock by each delay the client chose, until Next returns; it returns
// Next's result and the delays.
func (e *env) driveBackoff(ch <-chan nextResult) (nextResult, []time.Duration) {
	e.t.Helper()
	var slept []time.Duration
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if n := len(e.clock.Sleeps()); n > len(slept) {
			d := e.lastSleep(n)
			slept = append(slept, d)
			e.fc.Advance(d)
			continue
		}
		select {
		case r := <-ch:
			return r, slept
		case <-tick.C:
		case <-e.ctx.Done():
			e.t.Fatal("Next neither returned nor backed off in time")
		}
	}
}

// recorded is one request the client sent.
type recorded struct {
	Method string
	Path   string
	Query  url.Values
	Body   string
	Form   url.Values
	Header http.Header
	At     time.Time // on the fake clock, when the request left
	Status int       // 0 until answered, or when there was no response
	Err    error
}

// recorder is an http.RoundTripper that records what passes through.
type recorder struct {
	next  http.RoundTripper
	clock clockwork.Clock
	mu    sync.Mutex
	reqs  []*recorded
	ch    chan struct{}
}

func newRecorder(next http.RoundTripper, clock clockwork.Clock) *recorder {
	return &recorder{next: next, clock: clock, ch: make(chan struct{})}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := &recorded{Method: req.Method, Path: req.URL.Path, Query: req.URL.Query(), Header: req.Header.Clone(), At: r.clock.Now()}
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(b))
		rec.Body = string(b)
		rec.Form, _ = url.ParseQuery(rec.Body)
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.signalLocked()
	r.mu.Unlock()
	resp, err := r.next.RoundTrip(req)
	r.mu.Lock()
	if err != nil {
		rec.Err = err
	} else {
		rec.Status = resp.StatusCode
	}
	r.signalLocked()
	r.mu.Unlock()
	return resp, err
}

func (r *recorder) signalLocked() {
	close(r.ch)
	r.ch = make(chan struct{})
}

func (r *recorder) changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ch
}

// requests returns the recorded requests to method and path ("" for any).
func (r *recorder) requests(method, path string) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorded
	for _, rec := range r.reqs {
		if (method == "" || rec.Method == method) && (path == "" || rec.Path == path) {
			out = append(out, *rec)
		}
	}
	return out
}

// logRecorder is a slog.Handler keeping every record.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.records = append(l.records, r.Clone())
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// lines renders the records at level or above whose message contains msg.
func (l *logRecorder) lines(level slog.Level, msg string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		if r.Level < level || !strings.Contains(r.Message, msg) {
			continue
		}
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		out = append(out, b.String())
	}
	return out
}

// all renders every record, for checking that nothing logged a secret.
func (l *logRecorder) all() string {
	return strings.Join(l.lines(slog.LevelDebug, ""), "\n")
}
