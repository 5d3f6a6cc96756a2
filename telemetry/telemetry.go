package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// scope is the instrumentation scope of the bridge's meters and tracers.
const scope = "github.com/zulip-bridge/zulip-bridge/telemetry"

// Telemetry owns the bridge's metrics and traces. Create it with New, serve
// MetricsHandler, hand Observer, WrapSink and RoundTripper to the components
// they instrument, and call Shutdown last. Its methods are safe for
// concurrent use. It sets no OpenTelemetry or Prometheus global.
type Telemetry struct {
	log      *slog.Logger
	clock    clockwork.Clock
	registry *prometheus.Registry
	meters   *sdkmetric.MeterProvider
	// spans is nil when tracing is off; tracer is then a no-op.
	spans      *sdktrace.TracerProvider
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	// propFields are the headers a published message's trace context
	// replaces: traceparent, tracestate and those of the propagator.
	propFields []string
	m          *instruments
}

// Option configures New.
type Option func(*options) error

type options struct {
	clock    clockwork.Clock
	exporter sdktrace.SpanExporter
	// console is where OTEL_TRACES_EXPORTER=console writes; nil means
	// standard output.
	console io.Writer
}

// WithClock sets the clock that durations and message lag are measured
// with; tests pass a fake one.
func WithClock(c clockwork.Clock) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("telemetry: WithClock: nil clock")
		}
		o.clock = c
		return nil
	}
}

// WithSpanExporter turns tracing on and sends every span to exp as soon as
// it ends, instead of batching it to OTLP; Config's tracing fields are then
// ignored. It is meant for tests (tracetest.InMemoryExporter) and
// debugging (stdouttrace).
func WithSpanExporter(exp sdktrace.SpanExporter) Option {
	return func(o *options) error {
		if exp == nil {
			return errors.New("telemetry: WithSpanExporter: nil exporter")
		}
		o.exporter = exp
		return nil
	}
}

// New sets up metrics (always) and tracing (when cfg.TracingEnabled or
// WithSpanExporter). It opens no connection: the OTLP exporter connects when
// it first exports.
func New(ctx context.Context, cfg Config, logger *slog.Logger, opts ...Option) (*Telemetry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.clock == nil {
		o.clock = clockwork.NewRealClock()
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}

	t := &Telemetry{
		log:        logger,
		clock:      o.clock,
		registry:   prometheus.NewRegistry(),
		propagator: cfg.propagator(),
	}
	t.propFields = append([]string{HeaderTraceparent, HeaderTracestate}, t.propagator.Fields()...)
	if err := t.registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("telemetry: register Go runtime collector: %w", err)
	}
	if err := t.registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("telemetry: register process collector: %w", err)
	}
	exporter, err := otelprom.New(
		otelprom.WithRegisterer(t.registry),
		// Stated rather than left to the default, which the exporter
		// documents as subject to change: names like
		// zulip_bridge_publish_duration_seconds and *_total are the contract.
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		// One scope, ours: otel_scope_* labels on every series would say
		// nothing and double the label set.
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	readers := []sdkmetric.Option{sdkmetric.WithReader(exporter), sdkmetric.WithResource(res)}
	if cfg.MetricsExportEnabled() {
		r, desc, err := newMetricReader(ctx, cfg, logger)
		if err != nil {
			return nil, err
		}
		readers = append(readers, sdkmetric.WithReader(r))
		logger.Info("metrics export on: pushing metrics over OTLP, /metrics still served", desc...)
	}
	t.meters = sdkmetric.NewMeterProvider(readers...)
	if t.m, err = newInstruments(t.meters.Meter(scope)); err != nil {
		return nil, errors.Join(err, t.meters.Shutdown(ctx))
	}

	switch {
	case o.exporter != nil:
		t.spans = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(o.exporter))
	case cfg.TracingEnabled():
		exp, desc, err := newSpanExporter(ctx, cfg, cmp.Or[io.Writer](o.console, os.Stdout), logger)
		if err != nil {
			return nil, errors.Join(err, t.meters.Shutdown(ctx))
		}
		t.spans = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
		logger.Info("tracing on: exporting spans", desc...)
	}
	if t.spans != nil {
		t.tracer = t.spans.Tracer(scope)
	} else {
		t.tracer = noop.NewTracerProvider().Tracer(scope)
	}
	return t, nil
}

func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := []resource.Option{
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(cfg.serviceName())),
	}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(cfg.ServiceVersion)))
	}
	// Last, so that OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win, as
	// the specification requires.
	attrs = append(attrs, resource.WithFromEnv())
	res, err := resource.New(ctx, attrs...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource (check OTEL_RESOURCE_ATTRIBUTES, e.g. OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=prod): %w", err)
	}
	return res, nil
}

// TracingEnabled reports whether spans are recorded and trace context is
// added to published messages.
func (t *Telemetry) TracingEnabled() bool { return t.spans != nil }

// MetricsHandler serves the Prometheus text (or OpenMetrics, when asked)
// exposition of the bridge's metrics and the Go runtime and process
// collectors, from the Telemetry's own registry.
func (t *Telemetry) MetricsHandler() http.Handler {
	h := promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{
		ErrorLog: promLogger{t.log},
		// A collector that fails must not take the others' series down
		// with it: serve what was gathered and log the rest.
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          t.registry,
		EnableOpenMetrics: true,
	})
	return promhttp.InstrumentMetricHandler(t.registry, h)
}

// Shutdown flushes the spans not yet exported and stops both providers. It
// gives up when ctx is done; call it once, after the components it
// instruments have stopped.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.spans != nil {
		if err := t.spans.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: flush spans: %w", err))
		}
	}
	if err := t.meters.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("telemetry: stop metrics: %w", err))
	}
	return errors.Join(errs...)
}

// promLogger sends promhttp's errors (a collector failing, a client gone)
// to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("serving metrics: " + fmt.Sprint(v...))
}
