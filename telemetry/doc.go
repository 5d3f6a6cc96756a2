// Package telemetry gives the bridge its metrics and traces (docs/operations.md).
//
// New builds an OpenTelemetry MeterProvider exported through the Prometheus
// exporter into the Telemetry's own prometheus.Registry (with the Go
// runtime and process collectors; no global registry, no OpenTelemetry
// global), served by MetricsHandler as GET /metrics. Tracing is off unless
// Config.TracingEnabled (an OTLP endpoint or OTEL_TRACES_EXPORTER=otlp or
// console, and not OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none); then
// spans go over OTLP/HTTP or OTLP/gRPC (or to stdout), batched, and Shutdown
// flushes them. With OTEL_METRICS_EXPORTER=otlp the same metrics are also
// pushed over OTLP by a periodic reader, which Shutdown flushes too.
//
// Wiring, in cmd/bridge:
//
//	tel, err := telemetry.New(ctx, cfg.Telemetry, logger)
//	mux.Handle("GET /metrics", tel.MetricsHandler())
//	zulipTransport = tel.RoundTripper(zulipTransport) // the one with the ZULIP_CERT* TLS settings
//	deps := pipeline.Deps{Sink: tel.WrapSink(s), Observer: tel.Observer(), ...}
//	... run; stop the pipeline and the sink ...
//	tel.Shutdown(shutdownCtx)
//
// Observer and WrapSink split the work so that nothing is counted twice:
// Observer counts what the pipeline sees (events, skips, confirmed
// messages, lag, registrations, backfills, batches) and opens the batch
// span; WrapSink sees every Publish call (its duration, errors and span,
// and the trace headers). Use both.
//
// What it guarantees:
//   - Label values come from fixed lists only (event types known to Zulip,
//     skip reasons, API endpoints the bridge calls, HTTP methods and status
//     codes); anything else is "other". No stream name or id, topic, queue
//     id, site, user, query string or credential is ever a label.
//   - WrapSink never modifies the caller's messages: with tracing on it
//     publishes copies with W3C traceparent (and tracestate, when the trace
//     has state, and baggage, as OTEL_PROPAGATORS says) set to the publish span; with tracing off it passes the
//     batch through untouched. The result is a sink.Recoverer or
//     sink.ReadyChecker exactly when the wrapped sink is.
//   - Errors returned by the wrapped sink and the base transport are
//     returned unchanged.
//
// # Metrics
//
// The bridge's own metrics, all with the zulip_bridge_ prefix, are the
// metricSpecs of metrics.go; docs/operations.md lists them as Prometheus
// renders them (MetricsMarkdown, compared whole by a test). Beside them are
// the standard go_*, process_*, promhttp_* and target_info (the resource:
// service_name, service_version, OTEL_RESOURCE_ATTRIBUTES).
//
// type is a Zulip event type (message, typing, ...), bridge for the
// bridge's control events, or other. Series that alerts use (publish
// errors per kind, registrations per reason, backfilled messages) are
// exported at 0 from the start.
//
// # Traces
//
// Span zulip_bridge.batch (kind consumer) covers one polled batch; each
// Publish of it is a child span zulip_bridge.publish (kind producer), whose
// context every published message carries in its traceparent header, so a
// consumer can continue the trace. The OTLP endpoint and encoding come from
// Config; headers, TLS, timeout, compression, sampler (OTEL_TRACES_SAMPLER)
// and batching (OTEL_BSP_*) from the standard OTEL_* variables, read by the
// exporter and SDK themselves.
package telemetry
