package zuliptest_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

func TestAuthentication(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	bot := zuliptest.DefaultBot
	tests := []struct {
		name   string
		header string // Authorization; "" for none
		msg    string // "" for success
	}{
		{"valid", basic(bot.Email + ":" + bot.APIKey), ""},
		{"email is case-insensitive", basic("Bridge-Bot@Zulip.Example.com:" + bot.APIKey), ""},
		{"missing header", "", "Missing authorization header for basic auth"},
		{"not basic", "Bearer " + bot.APIKey, "This endpoint requires HTTP basic authentication."},
		{"not base64", "Basic !!!", "Invalid authorization header for basic auth"},
		{"no colon", basic(bot.Email), "Invalid authorization header for basic auth"},
		{"wrong key", basic(bot.Email + ":" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "Invalid API key"},
		{"malformed key", basic(bot.Email + ":short"), "Malformed API key"},
		{"unknown bot", basic("someone@zulip.example.com:" + bot.APIKey), "Invalid API key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/messages?anchor=newest&num_before=0&num_after=0", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			a := &api{t: t, srv: srv}
			r := a.send(req)
			if tt.msg == "" {
				if r.status != http.StatusOK {
					t.Fatalf("%d %s", r.status, r.raw)
				}
				return
			}
			want := fmt.Sprintf(`{"result":"error","msg":%q,"code":"UNAUTHORIZED"}`, tt.msg)
			if r.status != http.StatusUnauthorized || string(r.raw) != want {
				t.Fatalf("%d %s, want 401 %s", r.status, r.raw, want)
			}
			if got := r.header.Get("WWW-Authenticate"); got != `Basic realm="zulip"` {
				t.Fatalf("WWW-Authenticate = %q", got)
			}
			// Unauthenticated answers carry no rate-limit headers.
			if got := r.header.Get("X-RateLimit-Limit"); got != "" {
				t.Fatalf("X-RateLimit-Limit = %q on a 401", got)
			}
		})
	}
	// server_settings needs no credentials.
	a := &api{t: t, srv: srv}
	if r := a.do(http.MethodGet, "/server_settings", nil); r.status != http.StatusOK || r.body["zulip_version"] != zuliptest.DefaultZulipVersion {
		t.Fatalf("server_settings: %d %s", r.status, r.raw)
	}
}

func TestRateLimit(t *testing.T) {
	srv, fc := newSim(t, zuliptest.Config{RateLimit: 3, RateWindow: time.Minute})
	a := newAPI(t, srv)
	start := fc.Now()
	get := func() response {
		return a.do(http.MethodGet, "/messages", map[string][]string{"anchor": {"newest"}, "num_before": {"0"}, "num_after": {"0"}})
	}
	for i, remaining := range []string{"2", "1", "0"} {
		r := get()
		if r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.raw)
		}
		if r.header.Get("X-RateLimit-Limit") != "3" || r.header.Get("X-RateLimit-Remaining") != remaining {
			t.Fatalf("request %d headers: %v", i, r.header)
		}
		if reset, _ := strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64); reset != start.Add(time.Minute).Unix() {
			t.Fatalf("X-RateLimit-Reset = %s, want %d", r.header.Get("X-RateLimit-Reset"), start.Add(time.Minute).Unix())
		}
		fc.Advance(10 * time.Second)
	}
	// 30 s after the first request: 30 s to wait.
	r := get()
	want := `{"result":"error","msg":"API usage exceeded rate limit","retry-after":30,"code":"RATE_LIMIT_HIT"}`
	if r.status != http.StatusTooManyRequests || string(r.raw) != want {
		t.Fatalf("over the limit: %d %s, want 429 %s", r.status, r.raw, want)
	}
	if r.header.Get("Retry-After") != "30" || r.header.Get("X-RateLimit-Remaining") != "0" || r.header.Get("X-RateLimit-Limit") != "3" {
		t.Fatalf("429 headers: %v", r.header)
	}
	fc.Advance(29*time.Second + 500*time.Millisecond)
	if r := get(); r.status != http.StatusTooManyRequests || r.body["retry-after"] != 0.5 || r.header.Get("Retry-After") != "0.5" {
		t.Fatalf("half a second early: %d %s %v", r.status, r.raw, r.header)
	}
	fc.Advance(500 * time.Millisecond)
	if r := get(); r.status != http.StatusOK {
		t.Fatalf("after the window: %d %s", r.status, r.raw)
	}
	// Rate-limit headers are on error answers too.
	fc.Advance(time.Minute)
	r = a.getEvents("nope", -1, true)
	if r.status != http.StatusBadRequest || r.header.Get("X-RateLimit-Limit") != "3" {
		t.Fatalf("error answer: %d %v", r.status, r.header)
	}
}

func TestRateLimitHeadersWhenUnlimited(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	r := a.do(http.MethodPost, "/register", nil)
	limit, err1 := strconv.Atoi(r.header.Get("X-RateLimit-Limit"))
	remaining, err2 := strconv.Atoi(r.header.Get("X-RateLimit-Remaining"))
	_, err3 := strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || remaining != limit-1 || limit < 1<<30 {
		t.Fatalf("headers %v", r.header)
	}
}

func TestRateLimitBurstFault(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	srv.SetFaults(zuliptest.Faults{RateLimitBurst: 2, RetryAfter: 1500 * time.Millisecond, Path: "/api/v1/events"})
	for i := range 2 {
		r := a.getEvents(q, -1, true)
		if r.status != http.StatusTooManyRequests || r.body["retry-after"] != 1.5 || r.header.Get("Retry-After") != "1.5" || r.body["code"] != "RATE_LIMIT_HIT" {
			t.Fatalf("burst %d: %d %s %v", i, r.status, r.raw, r.header)
		}
	}
	if got := srv.Faults().RateLimitBurst; got != 0 {
		t.Fatalf("burst left: %d", got)
	}
	if r := a.getEvents(q, -1, true); r.status != http.StatusOK {
		t.Fatalf("after the burst: %d %s", r.status, r.raw)
	}
}
