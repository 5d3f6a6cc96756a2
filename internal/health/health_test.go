package health

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

func TestProbes(t *testing.T) {
	var liveErr, brokerErr error
	h := &Handler{
		Live: func() error { return liveErr },
		Ready: []Check{
			{Name: "queue", Fn: func(context.Context) error { return nil }},
			{Name: "broker", Fn: func(context.Context) error { return brokerErr }},
		},
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "zulip_bridge_up 1\n") }),
	}
	if code, _ := get(t, h, "/healthz"); code != 200 {
		t.Fatalf("healthz = %d", code)
	}
	if code, body := get(t, h, "/readyz"); code != 200 || !strings.Contains(body, "broker: ok") {
		t.Fatalf("readyz = %d %q", code, body)
	}
	liveErr = errors.New("stuck for 10m")
	brokerErr = errors.New("connection refused")
	if code, body := get(t, h, "/healthz"); code != 503 || !strings.Contains(body, "stuck") {
		t.Fatalf("wedged healthz = %d %q", code, body)
	}
	if code, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "broker: not ready: connection refused") || !strings.Contains(body, "queue: ok") {
		t.Fatalf("unready readyz = %d %q", code, body)
	}
	if code, body := get(t, h, "/metrics"); code != 200 || !strings.Contains(body, "zulip_bridge_up") {
		t.Fatalf("metrics = %d %q", code, body)
	}
	if code, _ := get(t, h, "/nope"); code != 404 {
		t.Fatalf("unknown path = %d", code)
	}
}

func TestReadyCheckTimeout(t *testing.T) {
	h := &Handler{Ready: []Check{{Name: "hangs", Fn: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}}, Timeout: 1}
	if code, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "deadline") {
		t.Fatalf("hanging check: %d %q", code, body)
	}
}
