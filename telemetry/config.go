package telemetry

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultServiceName is the service.name of traces and target_info when
// Config.ServiceName is empty.
const DefaultServiceName = "zulip-bridge"

// Config is the telemetry part of the bridge configuration. The zero value
// works: metrics on, tracing off.
//
// Only the variables that decide whether and where spans are exported are
// fields here. The OTLP exporter and the SDK read the other standard
// variables themselves, as every OpenTelemetry SDK does:
// OTEL_EXPORTER_OTLP[_TRACES]_HEADERS, _TIMEOUT, _COMPRESSION,
// _CERTIFICATE, _CLIENT_CERTIFICATE, _CLIENT_KEY, OTEL_TRACES_SAMPLER[_ARG],
// OTEL_BSP_*, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
type Config struct {
	// ServiceName is the service.name resource attribute; empty means
	// DefaultServiceName. OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES,
	// read by the SDK, take precedence, as the OpenTelemetry spec requires.
	ServiceName string
	// ServiceVersion is the service.version resource attribute (the build's
	// version); empty leaves it out.
	ServiceVersion string

	// SDKDisabled turns tracing off whatever else is set. Metrics stay on:
	// /metrics is the bridge's own contract, not an OpenTelemetry export.
	SDKDisabled bool `env:"OTEL_SDK_DISABLED" envDefault:"false" example:"true" help:"true turns tracing off (metrics stay on)"`
	// TracesExporter is "otlp" or "none". Empty (the default) means "otlp"
	// when an OTLP endpoint is set and no tracing otherwise, so that a
	// bridge with no OTEL_* variable never tries to reach a collector.
	TracesExporter string `env:"OTEL_TRACES_EXPORTER" example:"otlp" help:"otlp or none; unset = otlp when an OTLP endpoint is set, else no tracing"`
	// Endpoint is the OTLP/HTTP base URL; spans go to its path + /v1/traces.
	Endpoint string `env:"OTEL_EXPORTER_OTLP_ENDPOINT" example:"http://otel-collector:4318" help:"OTLP/HTTP base URL, e.g. http://otel-collector:4318; setting it turns tracing on"`
	// TracesEndpoint is the full OTLP/HTTP URL for spans; it takes
	// precedence over Endpoint.
	TracesEndpoint string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" example:"http://otel-collector:4318/v1/traces" help:"OTLP/HTTP URL for spans (wins over the base URL); setting it turns tracing on"`
	// Protocol is the OTLP encoding: "http/protobuf" (default) or
	// "http/json". The bridge has no gRPC exporter.
	Protocol string `env:"OTEL_EXPORTER_OTLP_PROTOCOL" example:"http/protobuf" help:"http/protobuf (default) or http/json; no gRPC"`
	// TracesProtocol overrides Protocol for spans.
	TracesProtocol string `env:"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" example:"http/protobuf" help:"overrides OTEL_EXPORTER_OTLP_PROTOCOL for spans"`
}

// Validate reports every invalid field, naming its variable.
func (c Config) Validate() error {
	var errs []error
	switch strings.TrimSpace(c.TracesExporter) {
	case "", "otlp", "none":
	default:
		errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported: the bridge exports spans with OTLP only; use otlp or none (example: OTEL_TRACES_EXPORTER=otlp)", c.TracesExporter))
	}
	for _, e := range []struct{ key, val, example string }{
		{"OTEL_EXPORTER_OTLP_ENDPOINT", c.Endpoint, "http://otel-collector:4318"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", c.TracesEndpoint, "http://otel-collector:4318/v1/traces"},
	} {
		if err := checkEndpoint(e.val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w (example: %s=%s)", e.key, err, e.key, e.example))
		}
	}
	for _, p := range []struct{ key, val string }{
		{"OTEL_EXPORTER_OTLP_PROTOCOL", c.Protocol},
		{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", c.TracesProtocol},
	} {
		switch strings.TrimSpace(p.val) {
		case "", "http/protobuf", "http/json":
		case "grpc":
			errs = append(errs, fmt.Errorf("%s: grpc is not supported: the bridge exports OTLP over HTTP, usually on port 4318 (example: %s=http/protobuf)", p.key, p.key))
		default:
			errs = append(errs, fmt.Errorf("%s: %q is not an OTLP protocol; use http/protobuf or http/json (example: %s=http/protobuf)", p.key, p.val, p.key))
		}
	}
	return errors.Join(errs...)
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
// OTEL_TRACES_EXPORTER=otlp is set, and neither OTEL_SDK_DISABLED=true nor
// OTEL_TRACES_EXPORTER=none.
func (c Config) TracingEnabled() bool {
	exp := strings.TrimSpace(c.TracesExporter)
	if c.SDKDisabled || exp == "none" {
		return false
	}
	return exp == "otlp" || strings.TrimSpace(c.Endpoint) != "" || strings.TrimSpace(c.TracesEndpoint) != ""
}

// tracesURL is where spans go, or "" to let the exporter use its default
// (https://localhost:4318/v1/traces), as OTEL_TRACES_EXPORTER=otlp alone
// asks for.
func (c Config) tracesURL() string {
	if u := strings.TrimSpace(c.TracesEndpoint); u != "" {
		return u
	}
	base := strings.TrimSpace(c.Endpoint)
	if base == "" {
		return ""
	}
	u, err := url.Parse(base)
	if err != nil {
		return base // Validate reports it; the exporter will too
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/v1/traces"
	return u.String()
}

// jsonEncoding reports whether spans are sent as OTLP/JSON.
func (c Config) jsonEncoding() bool {
	p := strings.TrimSpace(c.TracesProtocol)
	if p == "" {
		p = strings.TrimSpace(c.Protocol)
	}
	return p == "http/json"
}

func (c Config) serviceName() string {
	if c.ServiceName == "" {
		return DefaultServiceName
	}
	return c.ServiceName
}
