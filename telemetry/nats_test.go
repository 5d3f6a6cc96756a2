package telemetry

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/zulip-bridge/zulip-bridge/internal/natsembed"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
	natssink "github.com/zulip-bridge/zulip-bridge/sink/nats"
)

// TestJetStreamEndToEnd publishes a batch through the wrapped JetStream
// sink into an embedded nats-server and reads the stream back: every
// stored message carries the publish span's traceparent next to its own
// headers, the wrapper still offers the sink's read-back and readiness, and
// /metrics counts the batch.
func TestJetStreamEndToEnd(t *testing.T) {
	srv, err := natsembed.Start(natsembed.Config{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("embedded nats: %v", err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	cfg := natssink.Config{Stream: "ZULIP"}
	cfg.URL = srv.ClientURL()
	js, err := natssink.New(ctx, cfg)
	if err != nil {
		t.Fatalf("nats sink: %v", err)
	}
	exp := tracetest.NewInMemoryExporter()
	tel, _ := newTelemetry(t, Config{}, WithSpanExporter(exp))
	s, obs := tel.WrapSink(js), tel.Observer()
	defer func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	ready, ok := s.(sink.ReadyChecker)
	if !ok {
		t.Fatal("the wrapped JetStream sink is not a sink.ReadyChecker")
	}
	if err := ready.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	rec, ok := s.(sink.Recoverer)
	if !ok {
		t.Fatal("the wrapped JetStream sink is not a sink.Recoverer")
	}
	pos, err := rec.Position(ctx)
	if err != nil {
		t.Fatalf("Position: %v", err)
	}

	batch := []*mapping.Message{
		messageEvent(1, 101, epoch.Unix()-30),
		otherEvent(2, "realm_user", "update"),
		messageEvent(3, 102, epoch.Unix()-10),
	}
	before := cloneMessages(batch)
	bctx, end := obs.Batch(ctx, "1700000000:4242", len(batch))
	err = s.Publish(bctx, batch)
	obs.Published(batch, err, 0)
	end(err)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for i := range batch {
		if len(batch[i].Headers) != len(before[i].Headers) {
			t.Fatalf("message %d: Publish changed the caller's headers", i)
		}
	}

	pub := spanNamed(t, exp.GetSpans(), SpanPublish)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	jsc, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := jsc.Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatalf("stream %s: %v", cfg.Stream, err)
	}
	for i, want := range before {
		stored, err := stream.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatalf("stream message %d: %v", i+1, err)
		}
		if stored.Subject != want.Subject || string(stored.Data) != string(want.Payload) {
			t.Errorf("stream message %d: %s %q, want %s %q", i+1, stored.Subject, stored.Data, want.Subject, want.Payload)
		}
		for _, h := range want.Headers {
			if got := stored.Header.Get(h.Key); got != h.Value {
				t.Errorf("stream message %d: header %s = %q, want %q", i+1, h.Key, got, h.Value)
			}
		}
		// NATS header names are case-sensitive: W3C's are lower case.
		carrier := propagation.MapCarrier{HeaderTraceparent: stored.Header.Get(HeaderTraceparent)}
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
		if sc.TraceID() != pub.SpanContext.TraceID() || sc.SpanID() != pub.SpanContext.SpanID() {
			t.Errorf("stream message %d: traceparent %q, want the publish span %s/%s", i+1, stored.Header.Get(HeaderTraceparent), pub.SpanContext.TraceID(), pub.SpanContext.SpanID())
		}
	}

	keys, err := rec.PublishedSince(ctx, pos)
	if err != nil {
		t.Fatalf("PublishedSince: %v", err)
	}
	for _, m := range before {
		if _, ok := keys[m.DedupKey]; !ok {
			t.Errorf("PublishedSince through the wrapper lacks %s (got %v)", m.DedupKey, keys)
		}
	}

	got := scrapeMetrics(t, tel)
	if v := got.counter(t, "zulip_bridge_events_published_total", map[string]string{"type": "message"}); v != 2 {
		t.Errorf("published messages = %v, want 2", v)
	}
	if v := got.counter(t, "zulip_bridge_events_published_total", map[string]string{"type": "realm_user"}); v != 1 {
		t.Errorf("published realm_user events = %v, want 1", v)
	}
	if n := got.histogram(t, "zulip_bridge_publish_duration_seconds", map[string]string{"outcome": "ok"}).GetSampleCount(); n != 1 {
		t.Errorf("publish duration samples = %d, want 1", n)
	}
	if lag := got.histogram(t, "zulip_bridge_message_lag_seconds", nil); lag.GetSampleCount() != 2 || lag.GetSampleSum() != 40 {
		t.Errorf("message lag: count %d sum %v, want 2 and 40", lag.GetSampleCount(), lag.GetSampleSum())
	}
}
