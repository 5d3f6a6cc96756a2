package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The exporters are built here from Config rather than with the contrib
// autoexport package: autoexport reads os.Getenv itself (Config is parsed
// and validated with the rest of the bridge's configuration), has no
// http/json, and leaves the OTLP exporters' own default endpoint,
// https://localhost:4318, where the specification says http.
//
// Every exporter is given its endpoint URL explicitly, so that the scheme
// decides TLS (http: plain, https: TLS); headers, TLS files, timeout and
// compression come from the standard OTEL_EXPORTER_OTLP_* variables, which
// the exporters read themselves.

// newSpanExporter returns the span exporter that cfg names, and a
// description of it for the start-up log line (no credentials).
func newSpanExporter(ctx context.Context, cfg Config, console io.Writer, logger *slog.Logger) (sdktrace.SpanExporter, []any, error) {
	if cfg.consoleTraces() {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(console))
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: console trace exporter: %w", err)
		}
		return exp, []any{"exporter", "console"}, nil
	}
	u, proto := cfg.tracesURL(), cfg.tracesProtocol()
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch proto {
	case protoGRPC:
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(u))
	default:
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u)}
		if proto == protoHTTPJSON {
			opts = append(opts, otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: OTLP trace exporter: %w", err)
	}
	return &loggingExporter{SpanExporter: exp, log: logger}, []any{"exporter", "otlp", "protocol", proto, "endpoint", redactedURL(u)}, nil
}

// newMetricReader returns the periodic reader that pushes metrics over
// OTLP (interval and timeout from OTEL_METRIC_EXPORT_INTERVAL and
// OTEL_METRIC_EXPORT_TIMEOUT, which the SDK reads), and a description of it
// for the start-up log line.
func newMetricReader(ctx context.Context, cfg Config, logger *slog.Logger) (sdkmetric.Reader, []any, error) {
	u, proto := cfg.metricsURL(), cfg.metricsProtocol()
	var (
		exp sdkmetric.Exporter
		err error
	)
	switch proto {
	case protoGRPC:
		exp, err = otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpointURL(u))
	default:
		exp, err = otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(u))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: OTLP metric exporter: %w", err)
	}
	return sdkmetric.NewPeriodicReader(&loggingMetricExporter{Exporter: exp, log: logger}), []any{"exporter", "otlp", "protocol", proto, "endpoint", redactedURL(u)}, nil
}

// loggingMetricExporter reports export failures through slog, once when
// they start and once when they stop, as loggingExporter does for spans.
type loggingMetricExporter struct {
	sdkmetric.Exporter
	log *slog.Logger

	mu      sync.Mutex
	failing bool
}

func (e *loggingMetricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	err := e.Exporter.Export(ctx, rm)
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case err != nil && !e.failing:
		e.failing = true
		e.log.Warn("metric export failing: OTLP metrics are being dropped (/metrics is unaffected)", "error", err)
	case err == nil && e.failing:
		e.failing = false
		e.log.Info("metric export recovered")
	}
	return nil
}

// redactedURL is u for a log line, without credentials or query.
func redactedURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(invalid URL)"
	}
	p.User = nil
	p.RawQuery = ""
	p.Fragment = ""
	return p.String()
}
