package telemetry

import (
	"context"
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		{"zero value", Config{}, nil},
		{"full", Config{TracesExporter: "otlp", Endpoint: "https://collector.example.com:4318", TracesEndpoint: "http://127.0.0.1:4318/v1/traces", Protocol: "http/json", TracesProtocol: "http/protobuf"}, nil},
		{"exporter none", Config{TracesExporter: "none"}, nil},
		{"zipkin", Config{TracesExporter: "zipkin"},
			[]string{"OTEL_TRACES_EXPORTER", `"zipkin" is not supported`, "example: OTEL_TRACES_EXPORTER=otlp"}},
		{"list", Config{TracesExporter: "otlp,console"}, []string{"OTEL_TRACES_EXPORTER"}},
		{"endpoint without scheme", Config{Endpoint: "collector:4318"},
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT", "http:// or https://", "example: OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318"}},
		{"endpoint without host", Config{TracesEndpoint: "http:///v1/traces"},
			[]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "has no host"}},
		{"endpoint with query", Config{Endpoint: "http://c:4318/?token=abc"},
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT", "query string"}},
		{"grpc", Config{Protocol: "grpc", TracesExporter: "otlp", MetricsExporter: "otlp"}, nil},
		{"console, metrics list, propagators", Config{TracesExporter: "console", MetricsExporter: " prometheus, otlp ", Propagators: "tracecontext,baggage"}, nil},
		{"propagators none", Config{Propagators: "none"}, nil},
		{"unknown metrics exporter", Config{MetricsExporter: "prometheus,statsd"},
			[]string{"OTEL_METRICS_EXPORTER", `"statsd" is not supported`, "example: OTEL_METRICS_EXPORTER="}},
		{"unknown propagator", Config{Propagators: "tracecontext,b3"},
			[]string{"OTEL_PROPAGATORS", `"b3" is not supported`}},
		{"metrics endpoint", Config{MetricsEndpoint: "collector:4318"},
			[]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http:// or https://"}},
		{"json metrics", Config{MetricsExporter: "otlp", Protocol: "http/json"},
			[]string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json is not supported for metrics"}},
		{"json spans, protobuf metrics", Config{MetricsExporter: "otlp", Protocol: "http/json", MetricsProtocol: "http/protobuf"}, nil},
		{"bad metrics protocol", Config{MetricsProtocol: "thrift"},
			[]string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", `"thrift"`}},
		{"unknown protocol", Config{TracesProtocol: "thrift"},
			[]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", `"thrift"`}},
		{"every error at once", Config{TracesExporter: "jaeger", Endpoint: "::", Protocol: "udp"},
			[]string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestEndpointErrorsDoNotEchoCredentials(t *testing.T) {
	err := Config{Endpoint: "ftp://user:hunter2@collector:4318"}.Validate()
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Validate() = %v, want an error without the password", err)
	}
}

func TestTracingEnabled(t *testing.T) {
	tests := []struct {
		cfg  Config
		want bool
	}{
		{Config{}, false},
		{Config{Protocol: "http/json"}, false},
		{Config{Endpoint: "http://c:4318"}, true},
		{Config{TracesEndpoint: "http://c:4318/v1/traces"}, true},
		{Config{TracesExporter: "otlp"}, true},
		{Config{TracesExporter: "none", Endpoint: "http://c:4318"}, false},
		{Config{SDKDisabled: true, TracesExporter: "otlp", Endpoint: "http://c:4318"}, false},
	}
	for _, tt := range tests {
		if got := tt.cfg.TracingEnabled(); got != tt.want {
			t.Errorf("%+v.TracingEnabled() = %v, want %v", tt.cfg, got, tt.want)
		}
	}
}

func TestTracesURL(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		// The specification's defaults: plain HTTP on localhost.
		{Config{}, "http://localhost:4318/v1/traces"},
		{Config{TracesExporter: "otlp"}, "http://localhost:4318/v1/traces"},
		{Config{TracesExporter: "otlp", Protocol: "grpc"}, "http://localhost:4317"},
		{Config{TracesExporter: "otlp", Protocol: "http/json", TracesProtocol: "grpc"}, "http://localhost:4317"},
		{Config{Endpoint: "http://c:4317", Protocol: "grpc"}, "http://c:4317"},
		{Config{Endpoint: "http://c:4318"}, "http://c:4318/v1/traces"},
		{Config{Endpoint: "http://c:4318/"}, "http://c:4318/v1/traces"},
		{Config{Endpoint: "https://gw.example.com/otlp"}, "https://gw.example.com/otlp/v1/traces"},
		{Config{Endpoint: "http://c:4318", TracesEndpoint: "http://t:4318/custom"}, "http://t:4318/custom"},
	}
	for _, tt := range tests {
		if got := tt.cfg.tracesURL(); got != tt.want {
			t.Errorf("%+v.tracesURL() = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}

func TestMetricsURL(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{MetricsExporter: "otlp"}, "http://localhost:4318/v1/metrics"},
		{Config{MetricsExporter: "otlp", MetricsProtocol: "grpc"}, "http://localhost:4317"},
		{Config{Endpoint: "https://gw.example.com/otlp/"}, "https://gw.example.com/otlp/v1/metrics"},
		{Config{Endpoint: "http://c:4318", MetricsEndpoint: "http://m:4318/custom"}, "http://m:4318/custom"},
	}
	for _, tt := range tests {
		if got := tt.cfg.metricsURL(); got != tt.want {
			t.Errorf("%+v.metricsURL() = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}

func TestMetricsExportEnabled(t *testing.T) {
	tests := []struct {
		cfg  Config
		want bool
	}{
		{Config{}, false},
		{Config{Endpoint: "http://c:4318"}, false}, // an endpoint turns on tracing only
		{Config{MetricsExporter: "prometheus"}, false},
		{Config{MetricsExporter: "none"}, false},
		{Config{MetricsExporter: "otlp"}, true},
		{Config{MetricsExporter: "prometheus,otlp"}, true},
		{Config{MetricsExporter: "otlp", SDKDisabled: true}, false},
	}
	for _, tt := range tests {
		if got := tt.cfg.MetricsExportEnabled(); got != tt.want {
			t.Errorf("%+v.MetricsExportEnabled() = %v, want %v", tt.cfg, got, tt.want)
		}
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(context.Background(), Config{Protocol: "thrift"}, nil); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_PROTOCOL") {
		t.Errorf("New with an invalid config: err = %v, want the Validate error", err)
	}
	if _, err := New(context.Background(), Config{}, nil, WithClock(nil)); err == nil {
		t.Error("New with WithClock(nil): err = nil")
	}
	if _, err := New(context.Background(), Config{}, nil, WithSpanExporter(nil)); err == nil {
		t.Error("New with WithSpanExporter(nil): err = nil")
	}
}

// TestConfigFromEnvironment parses the standard variables the way
// cmd/bridge does, so a wrong env tag shows here rather than in production.
func TestConfigFromEnvironment(t *testing.T) {
	var cfg Config
	err := envconfig.Parse(&cfg, []string{
		"OTEL_SDK_DISABLED=false",
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://otel-collector:4318/v1/traces",
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/json",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf",
		"OTEL_METRICS_EXPORTER=prometheus,otlp",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=http://otel-collector:4318/v1/metrics",
		"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=grpc",
		"OTEL_PROPAGATORS=tracecontext",
		"OTEL_SERVICE_NAME=ignored-here", // read by the SDK, not a field
	})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Config{
		TracesExporter: "otlp",
		Endpoint:       "http://otel-collector:4318",
		TracesEndpoint: "http://otel-collector:4318/v1/traces",
		Protocol:       "http/json",
		TracesProtocol: "http/protobuf",

		MetricsExporter: "prometheus,otlp",
		MetricsEndpoint: "http://otel-collector:4318/v1/metrics",
		MetricsProtocol: "grpc",
		Propagators:     "tracecontext",
	}
	if cfg != want {
		t.Errorf("parsed %+v, want %+v", cfg, want)
	}
	if err := envconfig.Parse(&cfg, []string{"OTEL_SDK_DISABLED=yes please"}); err == nil || !strings.Contains(err.Error(), "OTEL_SDK_DISABLED") {
		t.Errorf("Parse of a bad boolean: %v, want an error naming OTEL_SDK_DISABLED", err)
	}
	var keys []string
	for _, v := range envconfig.Vars(&Config{}) {
		keys = append(keys, v.Key)
		if v.Secret {
			t.Errorf("%s listed as a secret", v.Key)
		}
	}
	wantKeys := []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_PROPAGATORS"}
	if strings.Join(keys, " ") != strings.Join(wantKeys, " ") {
		t.Errorf("variables %v, want %v", keys, wantKeys)
	}
}
