package telemetry

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/zulip-bridge/zulip-bridge/mapping"
)

// W3C Trace Context header names (docs/names.md).
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// loggingExporter reports export failures through slog, once when they
// start and once when they stop, rather than through OpenTelemetry's global
// error handler (the standard library logger, once per failed batch).
// The batch processor does nothing with an export error but hand it to that
// handler, so swallowing it here loses nothing; the OTLP exporter has
// already retried.
type loggingExporter struct {
	sdktrace.SpanExporter
	log *slog.Logger

	mu      sync.Mutex
	failing bool
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case err != nil && !e.failing:
		e.failing = true
		e.log.Warn("trace export failing: spans are being dropped", "error", err, "spans", len(spans))
	case err == nil && e.failing:
		e.failing = false
		e.log.Info("trace export recovered")
	}
	return nil
}

// headerCarrier lets a propagator write into a message's headers. Set
// replaces a header of the same name (case-insensitively, as HTTP and NATS
// compare them) rather than adding a second one.
type headerCarrier struct{ h *[]mapping.Header }

func (c headerCarrier) Get(key string) string {
	for _, h := range *c.h {
		if strings.EqualFold(h.Key, key) {
			return h.Value
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) {
	hs := *c.h
	for i := range hs {
		if strings.EqualFold(hs[i].Key, key) {
			hs[i].Value = value
			return
		}
	}
	*c.h = append(hs, mapping.Header{Key: key, Value: value})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, len(*c.h))
	for i, h := range *c.h {
		keys[i] = h.Key
	}
	return keys
}
