package zuliptest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

func TestStatusFaults(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)

	srv.SetFaults(zuliptest.Faults{Status: http.StatusInternalServerError, StatusCount: 1})
	r := a.getEvents(q, -1, true)
	if r.status != http.StatusInternalServerError || r.body["result"] != "error" || r.body["msg"] != "Internal server error" {
		t.Fatalf("500: %d %s", r.status, r.raw)
	}
	if r := a.getEvents(q, -1, true); r.status != http.StatusOK {
		t.Fatalf("after one 500: %d %s", r.status, r.raw)
	}

	// 502 from the proxy, twice, on /events only.
	srv.SetFaults(zuliptest.Faults{Status: http.StatusBadGateway, StatusCount: 2, Path: "/api/v1/events"})
	if r := a.do(http.MethodGet, "/server_settings", nil); r.status != http.StatusOK {
		t.Fatalf("server_settings hit by an /events fault: %d", r.status)
	}
	for range 2 {
		r := a.getEvents(q, -1, true)
		if r.status != http.StatusBadGateway || !strings.Contains(string(r.raw), "<title>502 Bad Gateway</title>") || r.header.Get("Content-Type") != "text/html" {
			t.Fatalf("502: %d %s", r.status, r.raw)
		}
	}
	if r := a.getEvents(q, -1, true); r.status != http.StatusOK {
		t.Fatalf("after two 502s: %d %s", r.status, r.raw)
	}
	if f := srv.Faults(); f.Status != 0 || f.StatusCount != 0 {
		t.Fatalf("fault left: %+v", f)
	}

	// Without a count, every matching request fails until the faults change.
	srv.SetFaults(zuliptest.Faults{Status: http.StatusServiceUnavailable, Method: http.MethodPost})
	for range 3 {
		if r := a.do(http.MethodPost, "/register", nil); r.status != http.StatusServiceUnavailable {
			t.Fatalf("503: %d", r.status)
		}
	}
	if r := a.getEvents(q, -1, true); r.status != http.StatusOK {
		t.Fatalf("GET hit by a POST fault: %d", r.status)
	}
	srv.SetFaults(zuliptest.Faults{})
	a.register(nil)
}

func TestLatencyFault(t *testing.T) {
	srv, fc := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	srv.SetFaults(zuliptest.Faults{Latency: 5 * time.Second})
	got := async(func() response { return a.do(http.MethodGet, "/server_settings", nil) })
	waitBlocked(t, fc, 1)
	fc.Advance(5*time.Second - time.Millisecond)
	select {
	case r := <-got:
		t.Fatalf("answered before the latency passed: %d", r.status)
	default:
	}
	fc.Advance(time.Millisecond)
	if r := await(t, got, "delayed request"); r.status != http.StatusOK {
		t.Fatalf("delayed request: %d %s", r.status, r.raw)
	}
}

func TestConnectionResetFault(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	inject(t, srv, presence)
	srv.SetFaults(zuliptest.Faults{ResetConnections: 1})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/events?queue_id="+q+"&last_event_id=-1", nil)
	req.SetBasicAuth(a.email, a.key)
	// A fresh connection, so net/http does not retry the GET on another.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got %d across a reset connection", resp.StatusCode)
	}
	if d := srv.Delivered(q); len(d) != 0 {
		t.Fatalf("events delivered over a reset connection: %v", d)
	}
	if ev := a.getEvents(q, -1, false).events(t); len(ev) != 1 {
		t.Fatalf("after the reset: %v", ev)
	}
}

func TestBodyFaults(t *testing.T) {
	for _, tt := range []struct {
		name   string
		faults zuliptest.Faults
	}{
		{"truncated", zuliptest.Faults{TruncateJSON: 1}},
		{"malformed", zuliptest.Faults{MalformedJSON: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newSim(t, zuliptest.Config{})
			a := newAPI(t, srv)
			q := a.register(nil)
			inject(t, srv, presence)
			srv.SetFaults(tt.faults)
			bad := a.getEvents(q, -1, false)
			if bad.status != http.StatusOK || json.Valid(bad.raw) {
				t.Fatalf("want a 200 with invalid JSON, got %d %s", bad.status, bad.raw)
			}
			if d := srv.Delivered(q); len(d) != 0 {
				t.Fatalf("a %s response counted as delivered: %v", tt.name, d)
			}
			good := a.getEvents(q, -1, false)
			if len(good.events(t)) != 1 {
				t.Fatalf("after the fault: %s", good.raw)
			}
			if tt.name == "truncated" && !bytes.HasPrefix(good.raw, bad.raw) {
				t.Fatalf("truncated body %s is not a prefix of %s", bad.raw, good.raw)
			}
			if d := srv.Delivered(q); len(d) != 1 || d[0].Deliveries != 1 {
				t.Fatalf("delivered %+v", d)
			}
		})
	}
}

func TestHoldFault(t *testing.T) {
	srv, fc := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	inject(t, srv, presence)
	srv.SetFaults(zuliptest.Faults{Hold: 30 * time.Second, Path: "/api/v1/events"})
	got := async(func() response { return a.getEvents(q, -1, false) })
	waitBlocked(t, fc, 1)
	fc.Advance(29 * time.Second)
	select {
	case r := <-got:
		t.Fatalf("held response came early: %s", r.raw)
	default:
	}
	fc.Advance(time.Second)
	if ev := await(t, got, "held GET").events(t); len(ev) != 1 {
		t.Fatalf("held GET: %v", ev)
	}
	// An empty dont_block answer is not held.
	if r := a.getEvents(q, 0, true); r.status != http.StatusOK || len(r.events(t)) != 0 {
		t.Fatalf("empty answer: %s", r.raw)
	}
}
