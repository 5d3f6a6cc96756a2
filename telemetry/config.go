package telemetry

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/propagation"
)

// DefaultServiceName is the service.name of traces and target_info when
// Config.ServiceName is empty.
const DefaultServiceName = "zulip-bridge"

// Config is the telemetry part of the bridge configuration. The zero value
// works: metrics on, tracing off.
//
// Only the variables that decide whether, how and where spans and metrics
// are exported are fields here. The OTLP exporter and the SDK read the other standard
// variables themselves, as every OpenTelemetry SDK does:
// OTEL_EXPORTER_OTLP[_TRACES|_METRICS]_HEADERS, _TIMEOUT, _COMPRESSION,
// _CERTIFICATE, _CLIENT_CERTIFICATE, _CLIENT_KEY, OTEL_TRACES_SAMPLER[_ARG],
// OTEL_BSP_*, OTEL_METRIC_EXPORT_INTERVAL, OTEL_METRIC_EXPORT_TIMEOUT,
// OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES.
type Config struct {
	// ServiceName is the service.name resource attribute; empty means
	// DefaultServiceName. OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES,
	// read by the SDK, take precedence, as the OpenTelemetry spec requires.
	ServiceName string
	// ServiceVersion is the service.version resource attribute (the build's
	// version); empty leaves it out.
	ServiceVersion string

	// SDKDisabled turns tracing and OTLP metrics export off whatever else
	// is set. /metrics stays on: it is the bridge's own contract, not an
	// OpenTelemetry export.
	SDKDisabled bool `env:"OTEL_SDK_DISABLED" envDefault:"false" example:"true" help:"true turns tracing and OTLP metrics off (/metrics stays on)"`
	// TracesExporter is "otlp", "console" or "none". Empty (the default)
	// means "otlp" when an OTLP endpoint is set and no tracing otherwise, so
	// that a bridge with no OTEL_* variable never tries to reach a
	// collector.
	TracesExporter string `env:"OTEL_TRACES_EXPORTER" example:"otlp" help:"otlp, console (spans on stdout) or none; unset = otlp when an OTLP endpoint is set, else no tracing"`
	// MetricsExporter is a comma-separated list of "prometheus" (/metrics,
	// always served), "otlp" (push over OTLP as well) and "none". Empty
	// means prometheus only.
	MetricsExporter string `env:"OTEL_METRICS_EXPORTER" example:"prometheus,otlp" help:"prometheus (default: /metrics only), otlp (also push over OTLP) or none; /metrics is always served"`
	// Endpoint is the OTLP base URL: spans go to its path + /v1/traces and
	// metrics to its path + /v1/metrics over HTTP, to the URL itself over
	// gRPC. Unset, it is http://localhost:4318 (HTTP) or
	// http://localhost:4317 (gRPC), as the OpenTelemetry specification says.
	Endpoint string `env:"OTEL_EXPORTER_OTLP_ENDPOINT" example:"http://otel-collector:4318" help:"OTLP base URL (default http://localhost:4318, gRPC http://localhost:4317); setting it turns tracing on"`
	// TracesEndpoint is the full OTLP URL for spans; it takes precedence
	// over Endpoint.
	TracesEndpoint string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" example:"http://otel-collector:4318/v1/traces" help:"OTLP URL for spans (wins over the base URL); setting it turns tracing on"`
	// MetricsEndpoint is the full OTLP URL for metrics; it takes precedence
	// over Endpoint.
	MetricsEndpoint string `env:"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" example:"http://otel-collector:4318/v1/metrics" help:"OTLP URL for metrics (wins over the base URL), with OTEL_METRICS_EXPORTER=otlp"`
	// Protocol is the OTLP transport: "http/protobuf" (default),
	// "http/json" or "grpc".
	Protocol string `env:"OTEL_EXPORTER_OTLP_PROTOCOL" example:"grpc" help:"http/protobuf (default), http/json or grpc"`
	// TracesProtocol overrides Protocol for spans.
	TracesProtocol string `env:"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" example:"http/protobuf" help:"overrides OTEL_EXPORTER_OTLP_PROTOCOL for spans"`
	// MetricsProtocol overrides Protocol for metrics.
	MetricsProtocol string `env:"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL" example:"http/protobuf" help:"overrides OTEL_EXPORTER_OTLP_PROTOCOL for metrics"`
	// Propagators is the comma-separated list of context propagators
	// whose headers published messages carry: "tracecontext", "baggage",
	// "none". Empty means "tracecontext,baggage", the specification's
	// default.
	Propagators string `env:"OTEL_PROPAGATORS" example:"tracecontext" help:"tracecontext, baggage or none, comma-separated; unset = tracecontext,baggage"`
}

// Validate reports every invalid field, naming its variable.
func (c Config) Validate() error {
	var errs []error
	switch strings.TrimSpace(c.TracesExporter) {
	case "", "otlp", "console", "none":
	default:
		errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported; use otlp, console or none (example: OTEL_TRACES_EXPORTER=otlp)", c.TracesExporter))
	}
	for _, v := range splitList(c.MetricsExporter) {
		switch v {
		case "prometheus", "otlp", "none":
		default:
			errs = append(errs, fmt.Errorf("OTEL_METRICS_EXPORTER: %q is not supported; use prometheus, otlp or none (example: OTEL_METRICS_EXPORTER=prometheus,otlp)", v))
		}
	}
	for _, v := range splitList(c.Propagators) {
		switch v {
		case "tracecontext", "baggage", "none":
		default:
			errs = append(errs, fmt.Errorf("OTEL_PROPAGATORS: %q is not supported; use tracecontext, baggage or none (example: OTEL_PROPAGATORS=tracecontext,baggage)", v))
		}
	}
	for _, e := range []struct{ key, val, example string }{
		{"OTEL_EXPORTER_OTLP_ENDPOINT", c.Endpoint, "http://otel-collector:4318"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", c.TracesEndpoint, "http://otel-collector:4318/v1/traces"},
		{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", c.MetricsEndpoint, "http://otel-collector:4318/v1/metrics"},
	} {
		if err := checkEndpoint(e.val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w (example: %s=%s)", e.key, err, e.key, e.example))
		}
	}
	for _, p := range []struct{ key, val string }{
		{"OTEL_EXPORTER_OTLP_PROTOCOL", c.Protocol},
		{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", c.TracesProtocol},
		{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", c.MetricsProtocol},
	} {
		switch strings.TrimSpace(p.val) {
		case "", protoHTTPProtobuf, protoHTTPJSON, protoGRPC:
		default:
			errs = append(errs, fmt.Errorf("%s: %q is not an OTLP protocol; use http/protobuf, http/json or grpc (example: %s=http/protobuf)", p.key, p.val, p.key))
		}
	}
	if c.MetricsExportEnabled() && c.metricsProtocol() == protoHTTPJSON {
		errs = append(errs, errors.New("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: http/json is not supported for metrics; use http/protobuf or grpc (example: OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=http/protobuf)"))
	}
	return errors.Join(errs...)
}

// OTLP transports (OTEL_EXPORTER_OTLP_PROTOCOL).
const (
	protoHTTPProtobuf = "http/protobuf"
	protoHTTPJSON     = "http/json"
	protoGRPC         = "grpc"
)

// Default OTLP endpoints, from the OpenTelemetry specification: plain HTTP
// on localhost, so that a local collector works with no other variable.
const (
	defaultHTTPEndpoint = "http://localhost:4318"
	defaultGRPCEndpoint = "http://localhost:4317"
)

// splitList splits a comma-separated OTEL_* list, trimmed, without empty
// items.
func splitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// checkEndpoint accepts an empty value or an http(s) URL with a host. The
// value is not quoted back: an endpoint may carry credentials in its
// userinfo.
func checkEndpoint(v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return errors.New("is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must start with http:// or https://")
	case u.Host == "":
		return errors.New("has no host")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("must not have a query string or fragment")
	}
	return nil
}

// TracingEnabled reports whether spans are exported: an OTLP endpoint or
// OTEL_TRACES_EXPORTER=otlp or console is set, and neither
// OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none.
func (c Config) TracingEnabled() bool {
	exp := strings.TrimSpace(c.TracesExporter)
	if c.SDKDisabled || exp == "none" {
		return false
	}
	return exp == "otlp" || exp == "console" || strings.TrimSpace(c.Endpoint) != "" || strings.TrimSpace(c.TracesEndpoint) != ""
}

// consoleTraces reports whether spans are written to standard output
// rather than sent over OTLP.
func (c Config) consoleTraces() bool { return strings.TrimSpace(c.TracesExporter) == "console" }

// MetricsExportEnabled reports whether metrics are pushed over OTLP, in
// addition to /metrics: OTEL_METRICS_EXPORTER lists otlp and
// OTEL_SDK_DISABLED is not true.
func (c Config) MetricsExportEnabled() bool {
	return !c.SDKDisabled && slices.Contains(splitList(c.MetricsExporter), "otlp")
}

// tracesProtocol is the OTLP transport for spans.
func (c Config) tracesProtocol() string {
	return cmp.Or(strings.TrimSpace(c.TracesProtocol), strings.TrimSpace(c.Protocol), protoHTTPProtobuf)
}

// metricsProtocol is the OTLP transport for metrics.
func (c Config) metricsProtocol() string {
	return cmp.Or(strings.TrimSpace(c.MetricsProtocol), strings.TrimSpace(c.Protocol), protoHTTPProtobuf)
}

// tracesURL is where spans go: the signal's endpoint, else the base one
// (+ /v1/traces over HTTP), else the specification's default.
func (c Config) tracesURL() string {
	return signalURL(c.TracesEndpoint, c.Endpoint, c.tracesProtocol(), "/v1/traces")
}

// metricsURL is where metrics go, as tracesURL for spans.
func (c Config) metricsURL() string {
	return signalURL(c.MetricsEndpoint, c.Endpoint, c.metricsProtocol(), "/v1/metrics")
}

func signalURL(signal, base, protocol, path string) string {
	if u := strings.TrimSpace(signal); u != "" {
		return u
	}
	base = strings.TrimSpace(base)
	if protocol == protoGRPC {
		return cmp.Or(base, defaultGRPCEndpoint)
	}
	base = cmp.Or(base, defaultHTTPEndpoint)
	u, err := url.Parse(base)
	if err != nil {
		return base // Validate reports it; the exporter will too
	}
	u.Path = strings.TrimRight(u.Path, "/") + path
	return u.String()
}

// propagator is the propagator that OTEL_PROPAGATORS names.
func (c Config) propagator() propagation.TextMapPropagator {
	names := splitList(c.Propagators)
	if len(names) == 0 {
		names = []string{"tracecontext", "baggage"}
	}
	var ps []propagation.TextMapPropagator
	for _, n := range names {
		switch n {
		case "tracecontext":
			ps = append(ps, propagation.TraceContext{})
		case "baggage":
			ps = append(ps, propagation.Baggage{})
		}
	}
	return propagation.NewCompositeTextMapPropagator(ps...)
}

func (c Config) serviceName() string {
	if c.ServiceName == "" {
		return DefaultServiceName
	}
	return c.ServiceName
}
