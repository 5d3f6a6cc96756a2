package zuliptest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

const presence = `{"type":"presence","user_id":10,"email":"hamlet@zulip.example.com","server_timestamp":1594825445.3,"presence":{"website":{"client":"website","status":"active","timestamp":1594825445,"pushable":false}}}`

func TestRegisterResponse(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	if _, err := srv.SendMessage(zuliptest.SendRequest{Sender: "hamlet@zulip.example.com", To: "Denmark", Topic: "t", Content: "x"}); err != nil {
		t.Fatal(err)
	}
	// Invisible to the bot: it is not in the private stream.
	if _, err := srv.SendMessage(zuliptest.SendRequest{Sender: "hamlet@zulip.example.com", To: "core team", Topic: "t", Content: "secret"}); err != nil {
		t.Fatal(err)
	}
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

	r := a.do(http.MethodPost, "/register", nil)
	if r.status != http.StatusOK || r.body["result"] != "success" {
		t.Fatalf("register: %d %s", r.status, r.raw)
	}
	b := r.body
	if id, _ := b["queue_id"].(string); !uuidRE.MatchString(id) {
		t.Errorf("queue_id %q is not a UUID", b["queue_id"])
	}
	checks := map[string]any{
		"last_event_id": -1.0, "zulip_version": zuliptest.DefaultZulipVersion,
		"zulip_feature_level": float64(zuliptest.DefaultFeatureLevel), "max_message_id": 1.0,
		"event_queue_longpoll_timeout_seconds": 90.0, "user_id": 20.0, "email": zuliptest.DefaultBot.Email,
	}
	for k, want := range checks {
		if b[k] != want {
			t.Errorf("%s = %v, want %v", k, b[k], want)
		}
	}
	emoji, _ := b["realm_emoji"].(map[string]any)
	if e, _ := emoji["1"].(map[string]any); e["name"] != "green_tick" {
		t.Errorf("realm_emoji = %v", b["realm_emoji"])
	}
	names := func(key, field string) []string {
		var out []string
		list, _ := b[key].([]any)
		for _, e := range list {
			out = append(out, fmt.Sprint(e.(map[string]any)[field]))
		}
		return out
	}
	if got := names("streams", "name"); !slices.Equal(got, []string{"Denmark", "Scotland", "Verona", "test", "Venice", "Rome"}) {
		t.Errorf("streams = %v (the private stream must be hidden)", got)
	}
	if got := names("subscriptions", "stream_id"); len(got) != 6 || got[0] != "1" {
		t.Errorf("subscriptions = %v", got)
	}
	if got := names("realm_users", "email"); len(got) != 6 || !slices.Contains(got, "hamlet@zulip.example.com") {
		t.Errorf("realm_users = %v", got)
	}

	// fetch_event_types narrows the state; event_types is its default.
	r = a.do(http.MethodPost, "/register", url.Values{"event_types": {`["message"]`}})
	if _, ok := r.body["streams"]; ok || r.body["max_message_id"] != 1.0 {
		t.Errorf("event_types=[message] state: %s", r.raw)
	}
	r = a.do(http.MethodPost, "/register", url.Values{"event_types": {`["message"]`}, "fetch_event_types": {`["stream"]`}})
	if _, ok := r.body["max_message_id"]; ok || r.body["streams"] == nil {
		t.Errorf("fetch_event_types=[stream] state: %s", r.raw)
	}
	// Unsupported narrow operators are refused as upstream refuses them.
	r = a.do(http.MethodPost, "/register", url.Values{"narrow": {`[["search","foo"]]`}})
	if r.status != http.StatusBadRequest || r.body["msg"] != "Operator search not supported." {
		t.Errorf("narrow search: %d %s", r.status, r.raw)
	}
}

// TestParameterEncodings sends the same calls with parameters in the query
// string, a urlencoded body and a multipart body, as official clients do.
func TestParameterEncodings(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	multipartBody := func(params url.Values) (*bytes.Buffer, string) {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		for k, vs := range params {
			for _, v := range vs {
				if err := w.WriteField(k, v); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return &buf, w.FormDataContentType()
	}
	send := func(method, encoding string, params url.Values, path string) response {
		u := srv.URL + "/api/v1" + path
		var req *http.Request
		switch encoding {
		case "query":
			req, _ = http.NewRequest(method, u+"?"+params.Encode(), nil)
		case "form":
			req, _ = http.NewRequest(method, u, strings.NewReader(params.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		case "multipart":
			body, ct := multipartBody(params)
			req, _ = http.NewRequest(method, u, body)
			req.Header.Set("Content-Type", ct)
		}
		return a.send(req)
	}
	for _, enc := range []string{"query", "form", "multipart"} {
		t.Run(enc, func(t *testing.T) {
			r := send(http.MethodPost, enc, url.Values{"event_types": {`["message"]`}, "narrow": {`[["stream","Denmark"]]`}}, "/register")
			q, _ := r.body["queue_id"].(string)
			if r.status != http.StatusOK || q == "" {
				t.Fatalf("register: %d %s", r.status, r.raw)
			}
			info := queueInfo(t, srv, q)
			if !slices.Equal(info.EventTypes, []string{"message"}) || len(info.Narrow) != 1 || info.Narrow[0].Operand != "Denmark" {
				t.Fatalf("registered queue %+v", info)
			}
			r = send(http.MethodPost, enc, url.Values{"type": {"stream"}, "to": {"Denmark"}, "topic": {enc}, "content": {"via " + enc}}, "/messages")
			if r.status != http.StatusOK {
				t.Fatalf("send: %d %s", r.status, r.raw)
			}
			r = send(http.MethodGet, "query", url.Values{"queue_id": {q}, "last_event_id": {"-1"}}, "/events")
			if ev := r.events(t); len(ev) != 1 || ev[0]["message"].(map[string]any)["subject"] != enc {
				t.Fatalf("events: %s", r.raw)
			}
			r = send(http.MethodDelete, enc, url.Values{"queue_id": {q}}, "/events")
			if r.status != http.StatusOK || r.body["result"] != "success" {
				t.Fatalf("delete: %d %s", r.status, r.raw)
			}
			if h, _ := srv.History(q); h.Ended != zuliptest.EndDeleted {
				t.Fatalf("queue not deleted: %+v", h)
			}
		})
	}
}

func queueInfo(t testing.TB, srv *zuliptest.Server, id string) zuliptest.QueueInfo {
	t.Helper()
	for _, q := range srv.Queues() {
		if q.ID == id {
			return q
		}
	}
	t.Fatalf("queue %s is not live", id)
	return zuliptest.QueueInfo{}
}

func TestAckAndPrune(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	for range 3 {
		inject(t, srv, presence)
	}

	first := a.getEvents(q, -1, false)
	if got := eventIDs(first.events(t)); !slices.Equal(got, []int64{0, 1, 2}) {
		t.Fatalf("ids = %v, want [0 1 2]", got)
	}
	// Asking again with the same last_event_id returns the same events,
	// byte for byte.
	again := a.getEvents(q, -1, false)
	if !bytes.Equal(first.raw, again.raw) {
		t.Fatalf("resend differs:\n%s\n%s", first.raw, again.raw)
	}
	// last_event_id=1 acknowledges 0 and 1: only 2 is left.
	if got := eventIDs(a.getEvents(q, 1, false).events(t)); !slices.Equal(got, []int64{2}) {
		t.Fatalf("after ack 1: ids = %v, want [2]", got)
	}
	if got := srv.Acked(q); got != 1 {
		t.Fatalf("Acked = %d, want 1", got)
	}
	if info := queueInfo(t, srv, q); info.Pending != 1 || info.Acked != 1 || info.LastEventID != 2 {
		t.Fatalf("queue info %+v", info)
	}
	if ev := a.getEvents(q, 2, true).events(t); len(ev) != 0 {
		t.Fatalf("after ack 2: %v", ev)
	}
	if got := srv.Acked(q); got != 2 {
		t.Fatalf("Acked = %d, want 2", got)
	}

	delivered := srv.Delivered(q)
	if len(delivered) != 3 {
		t.Fatalf("delivered %d events, want 3", len(delivered))
	}
	wantDeliveries := []int{2, 2, 3}
	for i, d := range delivered {
		if d.ID != int64(i) || d.Type != "presence" || d.Deliveries != wantDeliveries[i] {
			t.Errorf("delivered[%d] = id %d type %s deliveries %d, want deliveries %d", i, d.ID, d.Type, d.Deliveries, wantDeliveries[i])
		}
		// Delivered has exactly the bytes that were in the response.
		if !bytes.Contains(first.raw, d.Raw) && i < 2 {
			t.Errorf("delivered[%d] bytes %s not in response %s", i, d.Raw, first.raw)
		}
	}
}

// TestDeliveredBytes checks that Delivered reports the very bytes of the
// event in the response, and that an injected event keeps its bytes apart
// from the id.
func TestDeliveredBytes(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	inject(t, srv, `{ "type": "custom_thing", "id": 999, "nested": {"id": 5, "html": "<b>&amp;</b>"} }`)
	inject(t, srv, `{"type":"other"}`)
	r := a.getEvents(q, -1, false)
	var body struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(r.raw, &body); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"type":"custom_thing","id":0,"nested":{"id":5,"html":"<b>&amp;</b>"}}`,
		`{"type":"other","id":1}`,
	}
	if len(body.Events) != len(want) {
		t.Fatalf("events %s", r.raw)
	}
	delivered := srv.Delivered(q)
	for i := range want {
		if string(body.Events[i]) != want[i] {
			t.Errorf("event %d = %s, want %s", i, body.Events[i], want[i])
		}
		if !bytes.Equal(delivered[i].Raw, body.Events[i]) {
			t.Errorf("Delivered[%d] = %s, response had %s", i, delivered[i].Raw, body.Events[i])
		}
	}
}

func TestInjectEventRejectsNonEvents(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	for _, raw := range []string{`{}`, `[]`, `{"type":""}`, `{"type":1}`, `nope`} {
		if _, err := srv.InjectEvent(json.RawMessage(raw)); err == nil {
			t.Errorf("InjectEvent(%s) accepted", raw)
		}
	}
}

func TestLastEventIDErrors(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	for range 3 {
		inject(t, srv, presence)
	}
	a.getEvents(q, 1, true) // prunes 0 and 1

	tests := []struct {
		last int64
		msg  string
	}{
		{-1, "An event newer than -1 has already been pruned!"},
		{0, "An event newer than 0 has already been pruned!"},
		{7, "Event 7 was not in this queue"},
	}
	for _, tt := range tests {
		r := a.getEvents(q, tt.last, true)
		want := fmt.Sprintf(`{"result":"error","msg":%q,"code":"BAD_REQUEST"}`, tt.msg)
		if r.status != http.StatusBadRequest || string(r.raw) != want {
			t.Errorf("last_event_id=%d: %d %s, want 400 %s", tt.last, r.status, r.raw, want)
		}
	}
	// Like upstream, an id ahead of the queue still prunes what it covers
	// before the error: event 2 is gone now.
	if got := srv.Acked(q); got != 2 {
		t.Errorf("Acked = %d, want 2", got)
	}
	if r := a.getEvents(q, 2, true); r.status != http.StatusOK {
		t.Errorf("last_event_id=2 after the error: %d %s", r.status, r.raw)
	}

	for _, params := range []url.Values{{"queue_id": {q}}, {"last_event_id": {"-1"}}} {
		r := a.do(http.MethodGet, "/events", params)
		if r.status != http.StatusBadRequest || r.body["code"] != "BAD_REQUEST" {
			t.Errorf("GET /events %v: %d %s", params, r.status, r.raw)
		}
	}
}

func TestEventIDGaps(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	srv.SetFaults(zuliptest.Faults{EventIDGap: 2})
	for range 3 {
		inject(t, srv, presence)
	}
	if got := eventIDs(a.getEvents(q, -1, false).events(t)); !slices.Equal(got, []int64{2, 5, 8}) {
		t.Fatalf("ids = %v, want [2 5 8]", got)
	}
	// Acknowledging an id that is in the queue works across the gaps; one
	// that fell in a gap is not in the queue.
	if got := eventIDs(a.getEvents(q, 5, false).events(t)); !slices.Equal(got, []int64{8}) {
		t.Fatalf("after ack 5: %v", got)
	}
	if r := a.getEvents(q, 6, true); r.status != http.StatusBadRequest || r.body["msg"] != "Event 6 was not in this queue" {
		t.Fatalf("ack in a gap: %d %s", r.status, r.raw)
	}
}

func TestGetBlocksUntilEvent(t *testing.T) {
	srv, fc := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	got := async(func() response { return a.getEvents(q, -1, false) })
	waitBlocked(t, fc, 1) // the long-poll's heartbeat timer
	if info := queueInfo(t, srv, q); !info.Waiting {
		t.Fatalf("queue not waiting: %+v", info)
	}
	select {
	case r := <-got:
		t.Fatalf("GET returned before any event: %s", r.raw)
	default:
	}
	inject(t, srv, presence)
	r := await(t, got, "GET /events")
	if ev := r.events(t); len(ev) != 1 || ev[0]["type"] != "presence" {
		t.Fatalf("events %s", r.raw)
	}
	// A GET that waited says which queue answered, as upstream's
	// finish_handler does.
	if r.body["queue_id"] != q {
		t.Fatalf("queue_id = %v, want %s", r.body["queue_id"], q)
	}
}

func TestDontBlock(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	r := a.getEvents(q, -1, true)
	if string(r.raw) != `{"result":"success","msg":"","events":[]}` {
		t.Fatalf("dont_block on an empty queue: %d %s", r.status, r.raw)
	}
}

func TestHeartbeat(t *testing.T) {
	const interval = 45 * time.Second
	srv, fc := newSim(t, zuliptest.Config{HeartbeatInterval: interval})
	a := newAPI(t, srv)
	q := a.register(nil)
	got := async(func() response { return a.getEvents(q, -1, false) })
	waitBlocked(t, fc, 1)
	fc.Advance(interval - time.Millisecond)
	if info := queueInfo(t, srv, q); !info.Waiting || info.LastEventID != -1 {
		t.Fatalf("heartbeat before its time: %+v", info)
	}
	fc.Advance(time.Millisecond)
	r := await(t, got, "heartbeat")
	if string(r.raw) != fmt.Sprintf(`{"result":"success","msg":"","events":[{"type":"heartbeat","id":0}],"queue_id":%q}`, q) {
		t.Fatalf("heartbeat response %s", r.raw)
	}
	// The heartbeat consumed id 0 and is acknowledged like any event.
	inject(t, srv, presence)
	if got := eventIDs(a.getEvents(q, 0, false).events(t)); !slices.Equal(got, []int64{1}) {
		t.Fatalf("after the heartbeat: ids %v, want [1]", got)
	}
	// Heartbeats reach queues whatever their event_types.
	only := a.register(url.Values{"event_types": {`["message"]`}})
	got = async(func() response { return a.getEvents(only, -1, false) })
	waitBlocked(t, fc, 1)
	fc.Advance(interval)
	if ev := await(t, got, "heartbeat").events(t); len(ev) != 1 || ev[0]["type"] != "heartbeat" {
		t.Fatalf("filtered queue: %v", ev)
	}
}

// TestNewerGetEndsOlder: a second GET on a queue ends the one waiting,
// which gets what upstream's finish_handler sends: success, no events,
// the queue id.
func TestNewerGetEndsOlder(t *testing.T) {
	srv, fc := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	older := async(func() response { return a.getEvents(q, -1, false) })
	waitBlocked(t, fc, 1)
	newer := async(func() response { return a.getEvents(q, -1, false) })
	r := await(t, older, "older GET")
	want := fmt.Sprintf(`{"result":"success","msg":"","events":[],"queue_id":%q}`, q)
	if r.status != http.StatusOK || string(r.raw) != want {
		t.Fatalf("older GET: %d %s, want %s", r.status, r.raw, want)
	}
	waitBlocked(t, fc, 1) // the newer GET waits in turn
	inject(t, srv, presence)
	if ev := await(t, newer, "newer GET").events(t); len(ev) != 1 || ev[0]["id"] != 0.0 {
		t.Fatalf("newer GET: %v", ev)
	}
}

// TestClientGoneStopsWaiting: a GET whose client went away no longer
// holds the queue, so the expiry clock runs again.
func TestClientGoneStopsWaiting(t *testing.T) {
	srv, fc := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/events?queue_id="+q+"&last_event_id=-1", nil)
		req.SetBasicAuth(a.email, a.key)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitBlocked(t, fc, 1)
	cancel()
	<-done
	testutil.WaitFor(t, testTimeout, "the queue stops waiting", func() bool { return !queueInfo(t, srv, q).Waiting })
}

func TestQueueExpiry(t *testing.T) {
	badQueue := func(q string) string {
		return fmt.Sprintf(`{"result":"error","msg":"Bad event queue ID: %s","queue_id":%q,"code":"BAD_EVENT_QUEUE_ID"}`, q, q)
	}
	t.Run("idle queue expires after the timeout", func(t *testing.T) {
		srv, fc := newSim(t, zuliptest.Config{})
		a := newAPI(t, srv)
		q := a.register(nil)
		fc.Advance(zuliptest.DefaultQueueTimeout - time.Second)
		queueInfo(t, srv, q)
		fc.Advance(time.Second)
		r := a.getEvents(q, -1, true)
		if r.status != http.StatusBadRequest || string(r.raw) != badQueue(q) {
			t.Fatalf("expired queue: %d %s, want %s", r.status, r.raw, badQueue(q))
		}
		if h, ok := srv.History(q); !ok || h.Ended != zuliptest.EndExpired {
			t.Fatalf("history %+v", h)
		}
	})
	t.Run("a GET answered at once does not refresh the clock", func(t *testing.T) {
		srv, fc := newSim(t, zuliptest.Config{})
		a := newAPI(t, srv)
		q := a.register(nil)
		inject(t, srv, presence)
		for range 9 {
			fc.Advance(time.Minute)
			a.getEvents(q, -1, false).events(t) // re-fetches, never acknowledges
		}
		fc.Advance(time.Minute)
		if r := a.getEvents(q, -1, false); string(r.raw) != badQueue(q) {
			t.Fatalf("queue survived 10 minutes of immediate GETs: %d %s", r.status, r.raw)
		}
	})
	t.Run("a GET that waits restarts the clock", func(t *testing.T) {
		srv, fc := newSim(t, zuliptest.Config{})
		a := newAPI(t, srv)
		q := a.register(nil)
		fc.Advance(9 * time.Minute)
		got := async(func() response { return a.getEvents(q, -1, false) })
		waitBlocked(t, fc, 1)
		inject(t, srv, presence)
		await(t, got, "GET").events(t)
		fc.Advance(9 * time.Minute) // 18 minutes since registration
		if r := a.getEvents(q, 0, true); r.status != http.StatusOK {
			t.Fatalf("queue expired although a GET waited 9 minutes ago: %s", r.raw)
		}
	})
	t.Run("the clock stops while a GET waits", func(t *testing.T) {
		srv, fc := newSim(t, zuliptest.Config{HeartbeatInterval: time.Hour})
		a := newAPI(t, srv)
		q := a.register(nil)
		got := async(func() response { return a.getEvents(q, -1, false) })
		waitBlocked(t, fc, 1)
		fc.Advance(30 * time.Minute)
		if info := queueInfo(t, srv, q); !info.Waiting {
			t.Fatalf("queue with a waiting GET: %+v", info)
		}
		inject(t, srv, presence)
		await(t, got, "GET").events(t)
	})
	t.Run("queue_lifespan_secs", func(t *testing.T) {
		srv, fc := newSim(t, zuliptest.Config{})
		a := newAPI(t, srv)
		short := a.register(url.Values{"queue_lifespan_secs": {"120"}})
		long := a.register(url.Values{"queue_lifespan_secs": {"100000000"}})
		if got := queueInfo(t, srv, long).Lifespan; got != zuliptest.DefaultMaxQueueLifespan {
			t.Fatalf("lifespan %v, want the 7-day cap", got)
		}
		fc.Advance(119 * time.Second)
		queueInfo(t, srv, short)
		fc.Advance(time.Second)
		if r := a.getEvents(short, -1, true); string(r.raw) != badQueue(short) {
			t.Fatalf("short queue: %s", r.raw)
		}
		fc.Advance(7*24*time.Hour - 121*time.Second)
		queueInfo(t, srv, long)
		fc.Advance(time.Second)
		if r := a.getEvents(long, -1, true); string(r.raw) != badQueue(long) {
			t.Fatalf("long queue after 7 days: %s", r.raw)
		}
	})
}

func TestBadEventQueueID(t *testing.T) {
	other := zuliptest.Bot{Email: "other-bot@zulip.example.com", APIKey: strings.Repeat("o", 32)}
	srv, _ := newSim(t, zuliptest.Config{Bots: []zuliptest.Bot{zuliptest.DefaultBot, other}})
	a := newAPI(t, srv)
	b := newAPI(t, srv)
	b.email, b.key = other.Email, other.APIKey
	mine := a.register(nil)
	want := func(q string) string {
		return fmt.Sprintf(`{"result":"error","msg":"Bad event queue ID: %s","queue_id":%q,"code":"BAD_EVENT_QUEUE_ID"}`, q, q)
	}
	for name, r := range map[string]response{
		"unknown queue":        a.getEvents("1517975029:0", -1, true),
		"another bot's queue":  b.getEvents(mine, -1, true),
		"delete unknown queue": a.do(http.MethodDelete, "/events", url.Values{"queue_id": {"nope"}}),
	} {
		q := map[string]string{"unknown queue": "1517975029:0", "another bot's queue": mine, "delete unknown queue": "nope"}[name]
		if r.status != http.StatusBadRequest || string(r.raw) != want(q) {
			t.Errorf("%s: %d %s, want 400 %s", name, r.status, r.raw, want(q))
		}
	}
}

func TestDeleteQueueEndsWaitingGet(t *testing.T) {
	srv, fc := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	got := async(func() response { return a.getEvents(q, -1, false) })
	waitBlocked(t, fc, 1)
	if r := a.do(http.MethodDelete, "/events", url.Values{"queue_id": {q}}); string(r.raw) != `{"result":"success","msg":""}` {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	if r := await(t, got, "GET"); r.status != http.StatusOK || len(r.events(t)) != 0 {
		t.Fatalf("waiting GET after delete: %d %s", r.status, r.raw)
	}
	if r := a.getEvents(q, -1, true); r.body["code"] != "BAD_EVENT_QUEUE_ID" {
		t.Fatalf("GET after delete: %s", r.raw)
	}
}

func TestExpireQueueAndCrash(t *testing.T) {
	srv, fc := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q1 := a.register(nil)
	q2 := a.register(nil)
	inject(t, srv, presence)
	a.getEvents(q1, -1, false)

	got := async(func() response { return a.getEvents(q2, 0, false) })
	waitBlocked(t, fc, 1)
	if !srv.ExpireQueue(q2) || srv.ExpireQueue(q2) {
		t.Fatal("ExpireQueue should report true once, then false")
	}
	if r := await(t, got, "GET on expired queue"); len(r.events(t)) != 0 || r.body["queue_id"] != q2 {
		t.Fatalf("waiting GET on expired queue: %s", r.raw)
	}

	// A crash loses every queue; a GET waiting at that moment loses its
	// connection. Histories and messages survive.
	if _, err := srv.SendMessage(zuliptest.SendRequest{To: "Denmark", Topic: "t", Content: "before the crash"}); err != nil {
		t.Fatal(err)
	}
	if got := eventIDs(a.getEvents(q1, 0, false).events(t)); !slices.Equal(got, []int64{1}) {
		t.Fatalf("message event ids %v, want [1]", got)
	}
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/events?queue_id="+q1+"&last_event_id=1", nil)
		req.SetBasicAuth(a.email, a.key)
		// A fresh connection: on a reused one, net/http would retry the
		// idempotent GET after the drop and report the retry's answer.
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			err = fmt.Errorf("got a response: %d %s", resp.StatusCode, b)
			resp.Body.Close()
		}
		errc <- err
	}()
	waitBlocked(t, fc, 1)
	srv.Crash()
	if err := await(t, errc, "crashed GET"); err == nil || strings.Contains(err.Error(), "got a response") {
		t.Fatalf("GET across a crash: %v, want a connection error", err)
	}
	if len(srv.Queues()) != 0 {
		t.Fatalf("queues after crash: %v", srv.Queues())
	}
	if r := a.getEvents(q1, 1, true); r.body["code"] != "BAD_EVENT_QUEUE_ID" {
		t.Fatalf("GET after crash: %s", r.raw)
	}
	h, ok := srv.History(q1)
	if !ok || h.Ended != zuliptest.EndCrashed || len(h.Delivered) != 2 || h.Acked != 1 {
		t.Fatalf("history after crash: %+v", h)
	}
	if h, _ := srv.History(q2); h.Ended != zuliptest.EndExpired || h.Acked != 0 {
		t.Fatalf("history of expired queue: %+v", h)
	}
	if len(srv.Messages()) != 1 {
		t.Fatalf("messages after crash: %v", srv.Messages())
	}
}
