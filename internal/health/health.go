package health

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Check is one readiness condition; nil means satisfied.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Handler serves /healthz, /readyz and, when Metrics is set, /metrics.
type Handler struct {
	// Live reports whether the process is working; an error means wedged.
	Live func() error
	// Ready lists the conditions of readiness, checked in order.
	Ready []Check
	// Metrics serves /metrics; nil: 404.
	Metrics http.Handler
	// Timeout bounds each readiness check (default 2s): a probe must
	// answer even when a broker hangs.
	Timeout time.Duration
}

// ServeHTTP routes the three endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz", "/livez":
		h.live(w)
	case "/readyz":
		h.ready(w, r)
	case "/metrics":
		if h.Metrics == nil {
			http.NotFound(w, r)
			return
		}
		h.Metrics.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (h *Handler) live(w http.ResponseWriter) {
	if h.Live != nil {
		if err := h.Live(); err != nil {
			writeText(w, http.StatusServiceUnavailable, "wedged: "+err.Error()+"\n")
			return
		}
	}
	writeText(w, http.StatusOK, "ok\n")
}

func (h *Handler) ready(w http.ResponseWriter, r *http.Request) {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	var b strings.Builder
	ok := true
	for _, c := range h.Ready {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		err := c.Fn(ctx)
		cancel()
		if err != nil {
			ok = false
			fmt.Fprintf(&b, "%s: not ready: %v\n", c.Name, err)
		} else {
			fmt.Fprintf(&b, "%s: ok\n", c.Name)
		}
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeText(w, status, b.String())
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
