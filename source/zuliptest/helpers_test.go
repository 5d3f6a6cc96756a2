package zuliptest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// testTimeout bounds every wait of a test on the real clock; tests never
// sleep, they wait for a condition with this deadline.
const testTimeout = 10 * time.Second

// api drives a simulator over plain net/http, the way any Zulip client does.
type api struct {
	t      testing.TB
	client *http.Client // default http.DefaultClient
	srv    *zuliptest.Server
	email  string
	key    string
}

// response is an API answer: status, headers, raw body and the body
// decoded as a JSON object (nil when it is not one).
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func newSim(t testing.TB, cfg zuliptest.Config) (*zuliptest.Server, *clockwork.FakeClock) {
	t.Helper()
	fc, _ := cfg.Clock.(*clockwork.FakeClock)
	if cfg.Clock == nil {
		fc = clockwork.NewFakeClock()
		cfg.Clock = fc
	}
	srv := zuliptest.NewServer(cfg)
	t.Cleanup(srv.Close)
	return srv, fc
}

func newAPI(t testing.TB, srv *zuliptest.Server) *api {
	return &api{t: t, srv: srv, email: zuliptest.DefaultBot.Email, key: zuliptest.DefaultBot.APIKey}
}

// do sends method path with params: in the query string for GET, in a
// urlencoded body otherwise.
func (a *api) do(method, path string, params url.Values) response {
	a.t.Helper()
	return a.doCtx(context.Background(), method, path, params)
}

func (a *api) doCtx(ctx context.Context, method, path string, params url.Values) response {
	a.t.Helper()
	var body io.Reader
	u := a.srv.URL + "/api/v1" + path
	if method == http.MethodGet {
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		a.t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return a.send(req)
}

func (a *api) send(req *http.Request) response {
	a.t.Helper()
	if a.email != "" {
		req.SetBasicAuth(a.email, a.key)
	}
	client := a.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// register registers a queue with the given extra parameters and returns
// its id.
func (a *api) register(params url.Values) string {
	a.t.Helper()
	r := a.do(http.MethodPost, "/register", params)
	if r.status != http.StatusOK {
		a.t.Fatalf("register: %d %s", r.status, r.raw)
	}
	id, _ := r.body["queue_id"].(string)
	if id == "" {
		a.t.Fatalf("register: no queue_id in %s", r.raw)
	}
	return id
}

// getEvents polls the queue once.
func (a *api) getEvents(queueID string, lastEventID int64, dontBlock bool) response {
	a.t.Helper()
	return a.getEventsCtx(context.Background(), queueID, lastEventID, dontBlock)
}

func (a *api) getEventsCtx(ctx context.Context, queueID string, lastEventID int64, dontBlock bool) response {
	a.t.Helper()
	p := url.Values{"queue_id": {queueID}, "last_event_id": {itoa(lastEventID)}}
	if dontBlock {
		p.Set("dont_block", "true")
	}
	return a.doCtx(ctx, http.MethodGet, "/events", p)
}

// events decodes a GET /events body's events.
func (r response) events(t testing.TB) []map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("get events: %d %s", r.status, r.raw)
	}
	var body struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(r.raw, &body); err != nil {
		t.Fatalf("decode events %s: %v", r.raw, err)
	}
	return body.Events
}

// eventIDs lists the ids of events.
func eventIDs(events []map[string]any) []int64 {
	ids := make([]int64, len(events))
	for i, e := range events {
		ids[i] = int64(e["id"].(float64))
	}
	return ids
}

func eventTypes(events []map[string]any) []string {
	types := make([]string, len(events))
	for i, e := range events {
		types[i], _ = e["type"].(string)
	}
	return types
}

// inject puts an event into the server's queues.
func inject(t testing.TB, srv *zuliptest.Server, raw string) map[string]int64 {
	t.Helper()
	ids, err := srv.InjectEvent(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("inject %s: %v", raw, err)
	}
	return ids
}

// async runs f in a goroutine and returns a channel with its result.
func async[T any](f func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	return ch
}

// await waits for ch with the test deadline.
func await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitBlocked waits until n timers are pending on the fake clock: with the
// simulator, one per waiting long-poll.
func waitBlocked(t testing.TB, fc *clockwork.FakeClock, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := fc.BlockUntilContext(ctx, n); err != nil {
		t.Fatalf("waiting for %d clock waiters: %v", n, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
