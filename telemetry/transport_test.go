package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// clientTimeout is a cancel cause like the Zulip client's own deadline.
type clientTimeout struct{}

func (clientTimeout) Error() string { return "no response within 90s" }
func (clientTimeout) Timeout() bool { return true }

// TestRoundTripperLabels sends requests through the instrumented transport
// to a Zulip stand-in and checks the labels: endpoints from the allow-list
// without query strings, ids or the site's path prefix, and the status of
// every outcome.
func TestRoundTripperLabels(t *testing.T) {
	tel, fc := newTelemetry(t, Config{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fc.Advance(2 * time.Second) // the server's think time, on the test's clock
		switch r.URL.Path {
		case "/api/v1/register":
			w.WriteHeader(http.StatusUnauthorized)
		case "/zulip/api/v1/events", "/api/v1/events":
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	client := &http.Client{Transport: tel.RoundTripper(nil)}
	do := func(ctx context.Context, method, url string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader("queue_id=q-secret-queue"))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("bot@example.com", "s3cr3t-api-key")
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	ctx := t.Context()
	base := strings.Replace(srv.URL, "http://", "http://bot%40example.com:s3cr3t-api-key@", 1)
	do(ctx, http.MethodGet, base+"/api/v1/events?queue_id=q-secret-queue&last_event_id=41")
	do(ctx, http.MethodGet, srv.URL+"/zulip/api/v1/events?queue_id=q-secret-queue&last_event_id=42")
	do(ctx, http.MethodDelete, srv.URL+"/api/v1/events")
	do(ctx, http.MethodPost, srv.URL+"/api/v1/register")
	do(ctx, http.MethodGet, srv.URL+"/api/v1/messages/123456/history")
	do(ctx, "PROPFIND", srv.URL+"/api/v1/users/me")
	do(ctx, http.MethodGet, closedURL+"/api/v1/server_settings")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	do(canceled, http.MethodGet, srv.URL+"/api/v1/events")
	timedOut, cancelCause := context.WithCancelCause(ctx)
	cancelCause(clientTimeout{})
	do(timedOut, http.MethodGet, srv.URL+"/api/v1/events")

	got := scrapeMetrics(t, tel)
	tests := []struct {
		endpoint, method, status string
		want                     float64
	}{
		{"/api/v1/events", "GET", "200", 2},
		{"/api/v1/events", "DELETE", "200", 1},
		{"/api/v1/register", "POST", "401", 1},
		{"other", "GET", "404", 1},
		{"/api/v1/users/me", "other", "404", 1},
		{"/api/v1/server_settings", "GET", "error", 1},
		{"/api/v1/events", "GET", "canceled", 1},
		{"/api/v1/events", "GET", "timeout", 1},
	}
	for _, tt := range tests {
		labels := map[string]string{"endpoint": tt.endpoint, "method": tt.method, "status": tt.status}
		if v := got.counter(t, "zulip_bridge_zulip_requests_total", labels); v != tt.want {
			t.Errorf("zulip_bridge_zulip_requests_total%v = %v, want %v", labels, v, tt.want)
		}
	}
	h := got.histogram(t, "zulip_bridge_zulip_request_duration_seconds", map[string]string{"endpoint": "/api/v1/register", "method": "POST"})
	if h.GetSampleCount() != 1 || h.GetSampleSum() != 2 {
		t.Errorf("register duration: count %d sum %v, want 1 and 2", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, leak := range []string{"q-secret-queue", "last_event_id", "s3cr3t", "bot@example.com", "123456", "/zulip/", "127.0.0.1", "PROPFIND"} {
		if strings.Contains(got.body, leak) {
			t.Errorf("/metrics contains %q", leak)
		}
	}
}

func TestZulipEndpoint(t *testing.T) {
	tests := map[string]string{
		"/api/v1/events":                 "/api/v1/events",
		"/api/v1/events/":                "/api/v1/events",
		"/api/v1/register":               "/api/v1/register",
		"/api/v1/messages":               "/api/v1/messages",
		"/api/v1/server_settings":        "/api/v1/server_settings",
		"/api/v1/users/me":               "/api/v1/users/me",
		"/chat/zulip/api/v1/register":    "/api/v1/register",
		"/api/v1/messages/42":            "other",
		"/api/v1/users/me/subscriptions": "other",
		"/api/v1/":                       "other",
		"/json/events":                   "other",
		"":                               "other",
	}
	for path, want := range tests {
		if got := zulipEndpoint(path); got != want {
			t.Errorf("zulipEndpoint(%q) = %q, want %q", path, got, want)
		}
	}
}

// closeCounter is an http.RoundTripper that counts CloseIdleConnections.
type closeCounter struct {
	http.RoundTripper
	closes atomic.Int32
}

func (c *closeCounter) CloseIdleConnections() { c.closes.Add(1) }

func TestRoundTripperForwardsCloseIdleConnections(t *testing.T) {
	tel, _ := newTelemetry(t, Config{})
	base := &closeCounter{RoundTripper: http.DefaultTransport}
	client := &http.Client{Transport: tel.RoundTripper(base)}
	client.CloseIdleConnections()
	if n := base.closes.Load(); n != 1 {
		t.Errorf("base transport got %d CloseIdleConnections calls, want 1", n)
	}
}

func TestRoundTripperPassesResponseAndError(t *testing.T) {
	tel, _ := newTelemetry(t, Config{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Remaining", "199")
		_, _ = io.WriteString(w, `{"result":"success"}`)
	}))
	defer srv.Close()
	client := &http.Client{Transport: tel.RoundTripper(nil)}
	resp, err := client.Get(srv.URL + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"result":"success"}` || resp.Header.Get("X-RateLimit-Remaining") != "199" {
		t.Errorf("response changed: %q, headers %v", body, resp.Header)
	}
	_, err = client.Get("http://127.0.0.1:0/api/v1/events")
	if err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("request to port 0: err = %v, want the dial error", err)
	}
}
