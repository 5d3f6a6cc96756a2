package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/mapping"
)

// otelEnv makes the process environment hold exactly the given OTEL_*
// variables (restored after the test), since the OTLP exporters read the
// environment too, and returns the Config parsed from it as cmd/bridge
// parses it.
func otelEnv(t *testing.T, kv ...string) Config {
	t.Helper()
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); strings.HasPrefix(k, "OTEL_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	var cfg Config
	if err := envconfig.Parse(&cfg, os.Environ()); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

// startLog is New's log, for the start-up lines.
type startLog struct{ buf testutil.SyncBuffer }

func (l *startLog) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(&l.buf, nil)) }

// line returns the fields of the first line whose msg starts with prefix.
func (l *startLog) line(t *testing.T, prefix string) map[string]any {
	t.Helper()
	for raw := range strings.Lines(l.buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err == nil && strings.HasPrefix(m["msg"].(string), prefix) {
			return m
		}
	}
	t.Fatalf("no log line %q in:\n%s", prefix, l.buf.String())
	return nil
}

// publishOne records one batch with one published message.
func publishOne(t *testing.T, ctx context.Context, tel *Telemetry) *mapping.Message {
	t.Helper()
	broker := &memorySink{}
	bctx, end := tel.Observer().Batch(ctx, "q", 1)
	if err := tel.WrapSink(broker).Publish(bctx, []*mapping.Message{messageEvent(1, 1, 0)}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	end(nil)
	return broker.last()[0]
}

func shutdown(t *testing.T, tel *Telemetry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestOTLPDefaultEndpoint checks that OTEL_TRACES_EXPORTER=otlp alone
// exports to the specification's default, http://localhost:4318 (plain
// HTTP: a local collector has no TLS), and over gRPC to
// http://localhost:4317. Nothing is exported: 4318 is not ours to bind.
func TestOTLPDefaultEndpoint(t *testing.T) {
	for _, tt := range []struct {
		env          []string
		url, proto   string
		metricsProto string
	}{
		{[]string{"OTEL_TRACES_EXPORTER=otlp"}, "http://localhost:4318/v1/traces", "http/protobuf", ""},
		{[]string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, "http://localhost:4317", "grpc", ""},
		{[]string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_METRICS_EXPORTER=otlp"}, "http://localhost:4318/v1/traces", "http/protobuf", "http://localhost:4318/v1/metrics"},
	} {
		t.Run(strings.Join(tt.env, " "), func(t *testing.T) {
			cfg := otelEnv(t, tt.env...)
			var log startLog
			tel, err := New(t.Context(), cfg, log.logger())
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer shutdown(t, tel)
			if !tel.TracingEnabled() {
				t.Fatal("TracingEnabled = false")
			}
			l := log.line(t, "tracing on")
			if l["endpoint"] != tt.url || l["protocol"] != tt.proto || l["exporter"] != "otlp" {
				t.Errorf("tracing on: endpoint %v protocol %v exporter %v, want %s %s otlp", l["endpoint"], l["protocol"], l["exporter"], tt.url, tt.proto)
			}
			if tt.metricsProto != "" {
				if l := log.line(t, "metrics export on"); l["endpoint"] != tt.metricsProto {
					t.Errorf("metrics export endpoint %v, want %s", l["endpoint"], tt.metricsProto)
				}
			} else if strings.Contains(log.buf.String(), "metrics export on") {
				t.Error("metrics pushed over OTLP without OTEL_METRICS_EXPORTER=otlp")
			}
		})
	}
}

// TestOTLPHTTPFromEnvironment: OTEL_TRACES_EXPORTER=otlp and only a base
// http:// endpoint deliver spans to a plain OTLP/HTTP collector, and
// OTEL_METRICS_EXPORTER=otlp delivers metrics there too, while /metrics
// keeps serving.
func TestOTLPHTTPFromEnvironment(t *testing.T) {
	recv, srv := newOTLPReceiver(t)
	cfg := otelEnv(t, "OTEL_TRACES_EXPORTER=otlp", "OTEL_METRICS_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT="+srv.URL)
	tel, err := New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	publishOne(t, t.Context(), tel)
	if s := scrapeMetrics(t, tel); !strings.Contains(s.body, "zulip_bridge_batch_duration_seconds") {
		t.Error("/metrics lacks zulip_bridge_batch_duration_seconds with OTLP metrics on")
	}
	shutdown(t, tel)

	recv.mu.Lock()
	defer recv.mu.Unlock()
	got := map[string]string{}
	for i, p := range recv.paths {
		got[p] += recv.bodies[i]
	}
	for path, want := range map[string][]string{
		"/v1/traces":  {SpanBatch, SpanPublish, DefaultServiceName},
		"/v1/metrics": {"zulip_bridge_batch_duration", "zulip_bridge_publish_duration", DefaultServiceName},
	} {
		body, ok := got[path]
		if !ok {
			t.Errorf("nothing posted to %s (paths: %v)", path, recv.paths)
			continue
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: export does not mention %q", path, w)
			}
		}
	}
}

// grpcCollector is an OTLP/gRPC collector: the OTLP trace and metrics
// services, keeping what they got.
type grpcCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	colmetricspb.UnimplementedMetricsServiceServer

	mu      sync.Mutex
	spans   [][]byte
	metrics [][]byte
}

func (c *grpcCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	b, _ := proto.Marshal(req)
	c.mu.Lock()
	c.spans = append(c.spans, b)
	c.mu.Unlock()
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// metricsService adapts the collector to MetricsServiceServer, whose
// method has the same name as the trace service's.
type metricsService struct{ *grpcCollector }

func (m metricsService) Export(_ context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	b, _ := proto.Marshal(req)
	m.mu.Lock()
	m.metrics = append(m.metrics, b)
	m.mu.Unlock()
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

func startGRPCCollector(t *testing.T) (*grpcCollector, string) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &grpcCollector{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, c)
	colmetricspb.RegisterMetricsServiceServer(srv, metricsService{c})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return c, "http://" + lis.Addr().String()
}

// TestOTLPGRPCFromEnvironment: OTEL_EXPORTER_OTLP_PROTOCOL=grpc sends spans
// and metrics over OTLP/gRPC, in plain text to an http:// endpoint; the
// per-signal protocol variables win over the shared one.
func TestOTLPGRPCFromEnvironment(t *testing.T) {
	for _, env := range [][]string{
		{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=grpc"},
	} {
		t.Run(strings.Join(env, " "), func(t *testing.T) {
			c, endpoint := startGRPCCollector(t)
			cfg := otelEnv(t, append([]string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_METRICS_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint}, env...)...)
			tel, err := New(t.Context(), cfg, nil)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			publishOne(t, t.Context(), tel)
			shutdown(t, tel)
			c.mu.Lock()
			defer c.mu.Unlock()
			spans, metrics := bytes.Join(c.spans, nil), bytes.Join(c.metrics, nil)
			for _, w := range []string{SpanBatch, SpanPublish, DefaultServiceName} {
				if !bytes.Contains(spans, []byte(w)) {
					t.Errorf("spans received over gRPC (%d requests) do not mention %q", len(c.spans), w)
				}
			}
			for _, w := range []string{"zulip_bridge_batch_duration", DefaultServiceName} {
				if !bytes.Contains(metrics, []byte(w)) {
					t.Errorf("metrics received over gRPC (%d requests) do not mention %q", len(c.metrics), w)
				}
			}
		})
	}
}

// TestPropagators checks OTEL_PROPAGATORS: by default (tracecontext,baggage)
// published messages carry the caller's baggage besides traceparent, and
// replace a stale one; tracecontext alone leaves baggage out; none adds no
// trace header at all.
func TestPropagators(t *testing.T) {
	bag, err := baggage.Parse("tenant=acme")
	if err != nil {
		t.Fatal(err)
	}
	ctx := baggage.ContextWithBaggage(t.Context(), bag)
	for _, tt := range []struct {
		propagators     string
		parent, baggage bool
	}{
		{"", true, true},
		{"tracecontext,baggage", true, true},
		{"tracecontext", true, false},
		{"baggage", false, true},
		{"none", false, false},
	} {
		t.Run(tt.propagators, func(t *testing.T) {
			cfg := otelEnv(t, "OTEL_PROPAGATORS="+tt.propagators)
			tel, _ := newTelemetry(t, cfg, WithSpanExporter(tracetest.NewInMemoryExporter()))
			broker := &memorySink{}
			msg := messageEvent(1, 1, 0)
			msg.Headers = append(msg.Headers, mapping.Header{Key: "Baggage", Value: "stale=1"})
			bctx, end := tel.Observer().Batch(ctx, "q", 1)
			if err := tel.WrapSink(broker).Publish(bctx, []*mapping.Message{msg}); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			end(nil)
			var parents, bags []string
			for _, h := range broker.last()[0].Headers {
				switch strings.ToLower(h.Key) {
				case "traceparent":
					parents = append(parents, h.Value)
				case "baggage":
					bags = append(bags, h.Value)
				}
			}
			if got := len(parents) == 1; got != tt.parent || len(parents) > 1 {
				t.Errorf("traceparent %q, want one: %v", parents, tt.parent)
			}
			switch {
			case tt.baggage && (len(bags) != 1 || bags[0] != "tenant=acme"):
				t.Errorf("baggage %q, want only tenant=acme", bags)
			case !tt.baggage && len(bags) > 0 && bags[0] != "stale=1":
				t.Errorf("baggage %q added without the baggage propagator", bags)
			}
		})
	}
}

// TestConsoleTraces: OTEL_TRACES_EXPORTER=console writes the spans as JSON
// (to standard output; here to a buffer) and contacts no collector.
func TestConsoleTraces(t *testing.T) {
	cfg := otelEnv(t, "OTEL_TRACES_EXPORTER=console", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1")
	var out testutil.SyncBuffer
	var log startLog
	tel, err := New(t.Context(), cfg, log.logger(), func(o *options) error { o.console = &out; return nil })
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	publishOne(t, t.Context(), tel)
	shutdown(t, tel)
	if l := log.line(t, "tracing on"); l["exporter"] != "console" {
		t.Errorf("tracing on: exporter %v, want console", l["exporter"])
	}
	for _, w := range []string{`"Name":"` + SpanBatch + `"`, `"Name":"` + SpanPublish + `"`} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("console output lacks %s:\n%s", w, out.String())
		}
	}
}

// TestExportLogHidesCredentials: the start-up lines name the endpoint
// without its userinfo, and never the OTLP headers (which carry tokens).
func TestExportLogHidesCredentials(t *testing.T) {
	cfg := otelEnv(t, "OTEL_TRACES_EXPORTER=otlp", "OTEL_METRICS_EXPORTER=otlp",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://user:hunter2@127.0.0.1:1",
		"OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20s3cret")
	var log startLog
	tel, err := New(t.Context(), cfg, log.logger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// Nothing recorded: Shutdown has no span to send; the metric flush to
	// port 1 fails fast and is logged (without credentials either).
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_ = tel.Shutdown(ctx)
	if l := log.line(t, "tracing on"); l["endpoint"] != "http://127.0.0.1:1/v1/traces" {
		t.Errorf("tracing on: endpoint %v, want http://127.0.0.1:1/v1/traces", l["endpoint"])
	}
	if l := log.line(t, "metric export failing"); l["level"] != "WARN" {
		t.Errorf("failed metric flush logged at %v, want WARN", l["level"])
	}
	for _, secret := range []string{"hunter2", "s3cret"} {
		if strings.Contains(log.buf.String(), secret) {
			t.Errorf("log shows %q:\n%s", secret, log.buf.String())
		}
	}
}
