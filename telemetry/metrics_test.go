package telemetry

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// TestMetricsFromPipelineAndSink drives the Observer as the pipeline does
// for two batches and a queue loss, publishes through a wrapped sink, and
// reads every metric back from /metrics.
func TestMetricsFromPipelineAndSink(t *testing.T) {
	tel, fc := newTelemetry(t, Config{ServiceName: "bridge-under-test", ServiceVersion: "1.2.3"})
	broker := &memorySink{clock: fc, latency: 250 * time.Millisecond}
	s := tel.WrapSink(broker)
	obs := tel.Observer()
	ctx := t.Context()

	obs.Registered(false)
	// Batch 1: three messages sent 100 s, 40 s and 0 s before the clock's
	// start, a heartbeat, a duplicate, and a type no allow-list knows.
	bctx, end := obs.Batch(ctx, "1700000000:4242", 6)
	for _, typ := range []string{"message", "message", "message", "heartbeat", "message", "brand_new_type"} {
		obs.Received(typ)
	}
	obs.Skipped("heartbeat", "heartbeat")
	obs.Skipped("message", "duplicate")
	batch := []*mapping.Message{
		messageEvent(1, 101, epoch.Unix()-100),
		messageEvent(2, 102, epoch.Unix()-40),
		messageEvent(3, 103, epoch.Unix()),
		otherEvent(5, "brand_new_type", "add"),
	}
	began := fc.Now()
	err := s.Publish(bctx, batch)
	obs.Published(batch, err, fc.Since(began))
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	fc.Advance(50 * time.Millisecond) // the checkpoint write
	end(nil)
	obs.LastEventID(5)

	// The queue is lost; the new one starts over at -1 and a backfill
	// publishes two messages.
	obs.Registered(true)
	obs.Backfilled(2)
	obs.LastEventID(-1)
	_, end = obs.Batch(ctx, "1700000999:1", 1)
	end(errors.New("checkpoint store unavailable"))
	obs.Skipped("typing", "rate limited") // a reason the pipeline does not send (yet)

	got := scrapeMetrics(t, tel)
	counters := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"zulip_bridge_events_received_total", map[string]string{"type": "message"}, 4},
		{"zulip_bridge_events_received_total", map[string]string{"type": "heartbeat"}, 1},
		{"zulip_bridge_events_received_total", map[string]string{"type": "other"}, 1},
		{"zulip_bridge_events_skipped_total", map[string]string{"type": "heartbeat", "reason": "heartbeat"}, 1},
		{"zulip_bridge_events_skipped_total", map[string]string{"type": "message", "reason": "duplicate"}, 1},
		{"zulip_bridge_events_skipped_total", map[string]string{"type": "typing", "reason": "other"}, 1},
		{"zulip_bridge_events_published_total", map[string]string{"type": "message"}, 3},
		{"zulip_bridge_events_published_total", map[string]string{"type": "other"}, 1},
		{"zulip_bridge_queue_registrations_total", map[string]string{"reason": "initial"}, 1},
		{"zulip_bridge_queue_registrations_total", map[string]string{"reason": "queue_lost"}, 1},
		{"zulip_bridge_backfilled_messages_total", nil, 2},
		{"zulip_bridge_publish_errors_total", map[string]string{"kind": "partial"}, 0},
		{"zulip_bridge_publish_errors_total", map[string]string{"kind": "timeout"}, 0},
		{"zulip_bridge_publish_errors_total", map[string]string{"kind": "canceled"}, 0},
		{"zulip_bridge_publish_errors_total", map[string]string{"kind": "error"}, 0},
	}
	for _, c := range counters {
		if v := got.counter(t, c.name, c.labels); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	if v := got.gauge(t, "zulip_bridge_last_event_id", nil); v != -1 {
		t.Errorf("zulip_bridge_last_event_id = %v, want -1 (the new queue's)", v)
	}

	pub := got.histogram(t, "zulip_bridge_publish_duration_seconds", map[string]string{"outcome": "ok"})
	if pub.GetSampleCount() != 1 || pub.GetSampleSum() != 0.25 {
		t.Errorf("publish duration: count %d sum %v, want 1 and 0.25", pub.GetSampleCount(), pub.GetSampleSum())
	}
	// Confirmed 0.25 s after the clock's start: lags 100.25, 40.25, 0.25.
	lag := got.histogram(t, "zulip_bridge_message_lag_seconds", nil)
	if lag.GetSampleCount() != 3 || lag.GetSampleSum() != 140.75 {
		t.Errorf("message lag: count %d sum %v, want 3 and 140.75", lag.GetSampleCount(), lag.GetSampleSum())
	}
	if n := cumulative(t, lag, 0.5); n != 1 {
		t.Errorf("message lag: %d samples <= 0.5 s, want 1", n)
	}
	if n := cumulative(t, lag, 60); n != 2 {
		t.Errorf("message lag: %d samples <= 60 s, want 2", n)
	}
	okBatch := got.histogram(t, "zulip_bridge_batch_duration_seconds", map[string]string{"outcome": "ok"})
	if okBatch.GetSampleCount() != 1 || okBatch.GetSampleSum() != 0.3 {
		t.Errorf("batch duration ok: count %d sum %v, want 1 and 0.3", okBatch.GetSampleCount(), okBatch.GetSampleSum())
	}
	if n := got.histogram(t, "zulip_bridge_batch_duration_seconds", map[string]string{"outcome": "error"}).GetSampleCount(); n != 1 {
		t.Errorf("batch duration error: count %d, want 1", n)
	}

	// The resource is target_info, not labels on every series.
	target := got.series(t, "target_info", map[string]string{"service_name": "bridge-under-test", "service_version": "1.2.3"})
	if target.GetGauge().GetValue() != 1 {
		t.Errorf("target_info = %v, want 1", target.GetGauge().GetValue())
	}
	for _, label := range []string{"otel_scope_name", "service_name"} {
		if vals := got.labelValues("zulip_bridge_events_received_total", label); len(vals) != 0 {
			t.Errorf("zulip_bridge_events_received_total has label %s=%v; scope and resource belong in target_info only", label, vals)
		}
	}
}

// cumulative is the number of samples of h at or below the bucket bound upper.
func cumulative(t *testing.T, h *dto.Histogram, upper float64) uint64 {
	t.Helper()
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == upper {
			return b.GetCumulativeCount()
		}
	}
	t.Fatalf("histogram has no bucket with upper bound %v", upper)
	return 0
}

// TestPublishOutcomes checks that only what the broker confirmed counts as
// published, and how each failure is counted.
func TestPublishOutcomes(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		wantPublished float64 // messages of the five-message batch
		wantKind      string  // "" for success
	}{
		{"confirmed", nil, 5, ""},
		{"partial", &sink.PublishError{Failed: []int{1, 3, 4}, Err: errors.New("stream full")}, 2, "partial"},
		{"partial, wrapped and unsorted", fmt.Errorf("publish: %w", &sink.PublishError{Failed: []int{4, 1}, Err: errors.New("x")}), 3, "partial"},
		{"nothing confirmed", errors.New("connection refused"), 0, "error"},
		{"timeout", fmt.Errorf("await acks: %w", context.DeadlineExceeded), 0, "timeout"},
		{"canceled", fmt.Errorf("publish: %w", context.Canceled), 0, "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tel, fc := newTelemetry(t, Config{})
			broker := &memorySink{clock: fc, latency: time.Second}
			s, obs := tel.WrapSink(broker), tel.Observer()
			batch := []*mapping.Message{
				messageEvent(1, 11, epoch.Unix()), messageEvent(2, 12, epoch.Unix()),
				otherEvent(3, "typing", "start"), messageEvent(4, 13, epoch.Unix()),
				otherEvent(5, "typing", "stop"),
			}
			broker.failNext(tt.err)
			err := s.Publish(t.Context(), batch)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Publish returned %v, want the sink's error %v unchanged", err, tt.err)
			}
			obs.Published(batch, err, time.Second)

			got := scrapeMetrics(t, tel)
			var published float64
			for _, typ := range got.labelValues("zulip_bridge_events_published_total", "type") {
				published += got.counter(t, "zulip_bridge_events_published_total", map[string]string{"type": typ})
			}
			if published != tt.wantPublished {
				t.Errorf("events published = %v, want %v", published, tt.wantPublished)
			}
			for _, kind := range publishErrorKinds {
				want := 0.0
				if kind == tt.wantKind {
					want = 1
				}
				if v := got.counter(t, "zulip_bridge_publish_errors_total", map[string]string{"kind": kind}); v != want {
					t.Errorf("publish errors {kind=%s} = %v, want %v", kind, v, want)
				}
			}
			outcome := "ok"
			if tt.err != nil {
				outcome = "error"
			}
			h := got.histogram(t, "zulip_bridge_publish_duration_seconds", map[string]string{"outcome": outcome})
			if h.GetSampleCount() != 1 || h.GetSampleSum() != 1 {
				t.Errorf("publish duration {outcome=%s}: count %d sum %v, want 1 and 1", outcome, h.GetSampleCount(), h.GetSampleSum())
			}
		})
	}
}

// TestLabelsStayBounded feeds the hooks with values no allow-list holds
// and checks that they collapse into "other" and that nothing from the
// events (stream names, site, queue id) or the request (credentials,
// query) reaches /metrics.
func TestLabelsStayBounded(t *testing.T) {
	tel, _ := newTelemetry(t, Config{})
	obs := tel.Observer()
	for i := range 500 {
		obs.Received(fmt.Sprintf("type_%d", i))
		obs.Skipped(fmt.Sprintf("type_%d", i), fmt.Sprintf("reason_%d", i))
	}
	for _, typ := range eventTypes {
		obs.Received(typ)
	}
	batch := []*mapping.Message{messageEvent(1, 1, epoch.Unix()), otherEvent(2, "Denmark stream", "x")}
	obs.Published(batch, nil, 0)

	got := scrapeMetrics(t, tel)
	types := got.labelValues("zulip_bridge_events_received_total", "type")
	if want := len(eventTypes) + 1; len(types) != want {
		t.Errorf("received: %d type values, want %d (the allow-list and other): %v", len(types), want, types)
	}
	if !slices.Contains(types, "other") {
		t.Errorf("received: no type=other among %v", types)
	}
	// The known reasons exist from the start; every unknown one is other.
	if reasons := got.labelValues("zulip_bridge_events_skipped_total", "reason"); !slices.Equal(reasons, []string{"duplicate", "heartbeat", "other"}) {
		t.Errorf("skipped: reasons %v, want [duplicate heartbeat other]", reasons)
	}
	for _, leak := range []string{"Denmark", "zulip.example.com", "1700000000:4242", "type_1"} {
		if strings.Contains(got.body, leak) {
			t.Errorf("/metrics contains %q", leak)
		}
	}
}

func TestRuntimeAndProcessCollectors(t *testing.T) {
	tel, _ := newTelemetry(t, Config{})
	got := scrapeMetrics(t, tel)
	want := []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "promhttp_metric_handler_requests_total"}
	if runtime.GOOS == "linux" {
		want = append(want, "process_cpu_seconds_total", "process_resident_memory_bytes")
	}
	for _, name := range want {
		if _, ok := got.families[name]; !ok {
			t.Errorf("%s not exposed", name)
		}
	}
	// Each Telemetry has its own registry: a second one must not collide
	// with the first, nor see its series.
	other, _ := newTelemetry(t, Config{})
	other.Observer().Received("message")
	if strings.Contains(scrapeMetrics(t, tel).body, `zulip_bridge_events_received_total{type="message"}`) {
		t.Error("a second Telemetry's metric appears in the first one's /metrics")
	}
}

// TestSkippedSeriesExistAtStart scrapes a Telemetry nothing has observed
// yet: each skip reason already has its series at 0, so that
// rate(zulip_bridge_events_skipped_total{reason="duplicate"}[5m]) is 0
// rather than empty until the first skip.
func TestSkippedSeriesExistAtStart(t *testing.T) {
	tel, _ := newTelemetry(t, Config{})
	got := scrapeMetrics(t, tel)
	for _, reason := range skipReasons {
		var n int
		for _, m := range got.families["zulip_bridge_events_skipped_total"].GetMetric() {
			if hasLabels(m, map[string]string{"reason": reason}) {
				n++
				if v := m.GetCounter().GetValue(); v != 0 {
					t.Errorf("skipped{reason=%q} = %v at start, want 0", reason, v)
				}
			}
		}
		if n == 0 {
			t.Errorf("no zulip_bridge_events_skipped_total{reason=%q} series at start:\n%s", reason, got.body)
		}
	}
	if c := got.counter(t, "zulip_bridge_events_skipped_total", map[string]string{"type": "heartbeat", "reason": "heartbeat"}); c != 0 {
		t.Errorf("skipped{type=heartbeat,reason=heartbeat} = %v", c)
	}
	if c := got.counter(t, "zulip_bridge_events_skipped_total", map[string]string{"type": "message", "reason": "duplicate"}); c != 0 {
		t.Errorf("skipped{type=message,reason=duplicate} = %v", c)
	}
}
