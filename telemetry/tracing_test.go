package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %s, want 1 (all: %d)", len(found), name, len(spans))
	}
	return found[0]
}

// TestBatchAndPublishSpans proves the span tree of one batch and that each
// published message carries the publish span's context in its W3C headers,
// while the caller's messages stay as they were.
func TestBatchAndPublishSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, fc := newTelemetry(t, Config{}, WithSpanExporter(exp))
	if !tel.TracingEnabled() {
		t.Fatal("TracingEnabled = false with a span exporter")
	}
	broker := &memorySink{clock: fc, latency: 10 * time.Millisecond}
	s, obs := tel.WrapSink(broker), tel.Observer()

	batch := []*mapping.Message{
		messageEvent(1, 101, epoch.Unix()),
		otherEvent(2, "typing", "start"),
		messageEvent(3, 102, epoch.Unix()),
	}
	// A message that already carries trace headers (say, re-published from
	// a dead letter) gets the current ones instead, not a second pair.
	batch[1].Headers = append(batch[1].Headers,
		mapping.Header{Key: "Traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		mapping.Header{Key: "tracestate", Value: "stale=1"})
	before := cloneMessages(batch)

	bctx, end := obs.Batch(t.Context(), "1700000000:4242", len(batch))
	if err := s.Publish(bctx, batch); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	end(nil)

	spans := exp.GetSpans()
	batchSpan := spanNamed(t, spans, SpanBatch)
	pub := spanNamed(t, spans, SpanPublish)
	if batchSpan.Parent.IsValid() {
		t.Errorf("batch span has parent %v, want a root", batchSpan.Parent)
	}
	if pub.Parent.SpanID() != batchSpan.SpanContext.SpanID() || pub.SpanContext.TraceID() != batchSpan.SpanContext.TraceID() {
		t.Errorf("publish span's parent is %v, want the batch span %v", pub.Parent, batchSpan.SpanContext)
	}
	if pub.SpanKind != trace.SpanKindProducer || batchSpan.SpanKind != trace.SpanKindConsumer {
		t.Errorf("span kinds: publish %v, batch %v; want producer and consumer", pub.SpanKind, batchSpan.SpanKind)
	}
	if got := pub.EndTime.Sub(pub.StartTime); got != 10*time.Millisecond {
		t.Errorf("publish span lasted %v on the fake clock, want the broker's 10ms", got)
	}
	attrs := map[string]any{}
	for _, kv := range append(pub.Attributes, batchSpan.Attributes...) {
		attrs[string(kv.Key)] = kv.Value.AsInterface()
	}
	if attrs["messaging.batch.message_count"] != int64(3) || attrs["zulip.queue_id"] != "1700000000:4242" {
		t.Errorf("span attributes %v lack the batch size or queue id", attrs)
	}

	sent := broker.last()
	if len(sent) != len(batch) {
		t.Fatalf("broker got %d messages, want %d", len(sent), len(batch))
	}
	for i, m := range sent {
		if m == batch[i] {
			t.Fatalf("message %d: the broker got the caller's message, want a copy with trace headers", i)
		}
		var parents, states []string
		var rest []mapping.Header
		for _, h := range m.Headers {
			switch strings.ToLower(h.Key) {
			case HeaderTraceparent:
				parents = append(parents, h.Value)
			case HeaderTracestate:
				states = append(states, h.Value)
			default:
				rest = append(rest, h)
			}
		}
		if len(parents) != 1 || len(states) != 0 {
			t.Fatalf("message %d: traceparent %q tracestate %q, want one traceparent and no tracestate", i, parents, states)
		}
		got := propagation.TraceContext{}.Extract(context.Background(), headerCarrier{&m.Headers})
		sc := trace.SpanContextFromContext(got)
		if sc.TraceID() != pub.SpanContext.TraceID() || sc.SpanID() != pub.SpanContext.SpanID() || !sc.IsSampled() {
			t.Errorf("message %d: traceparent %s, want the publish span %s/%s sampled", i, parents[0], pub.SpanContext.TraceID(), pub.SpanContext.SpanID())
		}
		var wantRest []mapping.Header
		for _, h := range before[i].Headers {
			if k := strings.ToLower(h.Key); k != HeaderTraceparent && k != HeaderTracestate {
				wantRest = append(wantRest, h)
			}
		}
		if !reflect.DeepEqual(rest, wantRest) {
			t.Errorf("message %d: other headers\n got %v\nwant %v", i, rest, wantRest)
		}
		if m.Subject != batch[i].Subject || m.DedupKey != batch[i].DedupKey || string(m.Payload) != string(batch[i].Payload) {
			t.Errorf("message %d: subject, dedup key or payload changed", i)
		}
	}
	if !reflect.DeepEqual(batch, before) {
		t.Error("Publish modified the caller's messages")
	}
}

// TestTracestateFollowsParent checks that vendor trace state from the
// incoming context reaches the messages.
func TestTracestateFollowsParent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, _ := newTelemetry(t, Config{}, WithSpanExporter(exp))
	broker := &memorySink{}
	parent := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"tracestate":  "vendor=opaque",
	})
	if err := tel.WrapSink(broker).Publish(parent, []*mapping.Message{messageEvent(1, 1, 0)}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	m := broker.last()[0]
	if v, _ := m.Get(HeaderTracestate); v != "vendor=opaque" {
		t.Errorf("tracestate = %q, want vendor=opaque", v)
	}
	if v, _ := m.Get(HeaderTraceparent); !strings.HasPrefix(v, "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
		t.Errorf("traceparent = %q, want the parent's trace id", v)
	}
}

func TestPublishErrorMarksSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, _ := newTelemetry(t, Config{}, WithSpanExporter(exp))
	broker := &memorySink{}
	pe := &sink.PublishError{Failed: []int{1}, Err: errors.New("no responders")}
	broker.failNext(pe)
	batch := []*mapping.Message{messageEvent(1, 1, 0), messageEvent(2, 2, 0)}
	ctx, end := tel.Observer().Batch(t.Context(), "q", 2)
	err := tel.WrapSink(broker).Publish(ctx, batch)
	end(err)
	var got *sink.PublishError
	if !errors.As(err, &got) || !reflect.DeepEqual(got.Failed, []int{1}) {
		t.Fatalf("Publish returned %v, want the sink's PublishError with Failed [1]", err)
	}
	for _, name := range []string{SpanPublish, SpanBatch} {
		s := spanNamed(t, exp.GetSpans(), name)
		if s.Status.Code != codes.Error || len(s.Events) == 0 || s.Events[0].Name != "exception" {
			t.Errorf("%s: status %v, events %v; want an error status and the recorded error", name, s.Status, s.Events)
		}
	}
}

// TestTracingOff checks that without tracing the sink gets the caller's
// messages as they are: no copies, no trace headers.
func TestTracingOff(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Endpoint: "http://127.0.0.1:1", SDKDisabled: true},
		{Endpoint: "http://127.0.0.1:1", TracesExporter: "none"},
	} {
		tel, _ := newTelemetry(t, cfg)
		if tel.TracingEnabled() {
			t.Errorf("%+v: TracingEnabled = true", cfg)
		}
		broker := &memorySink{}
		batch := []*mapping.Message{messageEvent(1, 1, 0)}
		ctx, end := tel.Observer().Batch(t.Context(), "q", 1)
		if err := tel.WrapSink(broker).Publish(ctx, batch); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		end(nil)
		if sent := broker.last(); sent[0] != batch[0] {
			t.Errorf("%+v: the sink got a copy; without tracing it should get the caller's message", cfg)
		}
		if _, ok := batch[0].Get(HeaderTraceparent); ok {
			t.Errorf("%+v: traceparent added with tracing off", cfg)
		}
	}
}

// otlpReceiver is an OTLP/HTTP collector endpoint that keeps what it got.
type otlpReceiver struct {
	mu       sync.Mutex
	paths    []string
	bodies   []string
	ctypes   []string
	received chan struct{}
}

func newOTLPReceiver(t *testing.T) (*otlpReceiver, *httptest.Server) {
	r := &otlpReceiver{received: make(chan struct{}, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.paths = append(r.paths, req.URL.Path)
		r.bodies = append(r.bodies, string(body))
		r.ctypes = append(r.ctypes, req.Header.Get("Content-Type"))
		r.mu.Unlock()
		w.Header().Set("Content-Type", req.Header.Get("Content-Type"))
		if strings.Contains(req.Header.Get("Content-Type"), "json") {
			_, _ = io.WriteString(w, "{}")
		}
		r.received <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

// TestOTLPExport runs the real OTLP/HTTP exporter against a collector
// endpoint in the test and checks that Shutdown flushes the spans to the
// URL the configuration names, in the encoding it names.
func TestOTLPExport(t *testing.T) {
	tests := []struct {
		name     string
		cfg      func(base string) Config
		wantPath string
		wantType string
	}{
		{"base endpoint, json", func(base string) Config {
			return Config{Endpoint: base + "/otlp/", Protocol: "http/json"}
		}, "/otlp/v1/traces", "application/json"},
		{"traces endpoint wins, protobuf", func(base string) Config {
			return Config{Endpoint: "http://127.0.0.1:1", TracesEndpoint: base + "/custom/traces", TracesProtocol: "http/protobuf", Protocol: "http/json"}
		}, "/custom/traces", "application/x-protobuf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recv, srv := newOTLPReceiver(t)
			tel, err := New(t.Context(), tt.cfg(srv.URL), nil)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if !tel.TracingEnabled() {
				t.Fatal("TracingEnabled = false with an OTLP endpoint")
			}
			ctx, end := tel.Observer().Batch(t.Context(), "q", 1)
			if err := tel.WrapSink(&memorySink{}).Publish(ctx, []*mapping.Message{messageEvent(1, 1, 0)}); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			end(nil)
			sctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := tel.Shutdown(sctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			select {
			case <-recv.received:
			default:
				t.Fatal("Shutdown returned before the spans reached the collector")
			}
			recv.mu.Lock()
			defer recv.mu.Unlock()
			if recv.paths[0] != tt.wantPath || recv.ctypes[0] != tt.wantType {
				t.Errorf("export went to %s as %s, want %s as %s", recv.paths[0], recv.ctypes[0], tt.wantPath, tt.wantType)
			}
			all := strings.Join(recv.bodies, "")
			for _, name := range []string{SpanBatch, SpanPublish, DefaultServiceName} {
				if !strings.Contains(all, name) {
					t.Errorf("exported spans do not mention %q", name)
				}
			}
		})
	}
}
