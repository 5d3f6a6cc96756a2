package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// epoch is where the tests' fake clocks start: a whole second, so that
// lags against whole-second Zulip timestamps are exact.
var epoch = time.Unix(1_700_000_100, 0)

func newTelemetry(t *testing.T, cfg Config, opts ...Option) (*Telemetry, *clockwork.FakeClock) {
	t.Helper()
	fc := clockwork.NewFakeClockAt(epoch)
	tel, err := New(t.Context(), cfg, slog.New(slog.DiscardHandler), append([]Option{WithClock(fc)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return tel, fc
}

// scrape is what GET /metrics served.
type scrape struct {
	body     string
	families map[string]*dto.MetricFamily
}

func scrapeMetrics(t *testing.T, tel *Telemetry) scrape {
	t.Helper()
	srv := httptest.NewServer(tel.MetricsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s: %s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics Content-Type = %q, want Prometheus text", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return scrape{body: string(body), families: fams}
}

// series returns the samples of family name whose labels include want,
// failing the test unless there is exactly one.
func (s scrape) series(t *testing.T, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f, ok := s.families[name]
	if !ok {
		t.Fatalf("metric %s not exposed; have %v", name, s.names())
	}
	var found []*dto.Metric
	for _, m := range f.GetMetric() {
		if hasLabels(m, want) {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series match, want 1; all: %v", name, want, len(found), labelSets(f))
	}
	return found[0]
}

func (s scrape) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return s.series(t, name, labels).GetCounter().GetValue()
}

func (s scrape) gauge(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return s.series(t, name, labels).GetGauge().GetValue()
}

func (s scrape) histogram(t *testing.T, name string, labels map[string]string) *dto.Histogram {
	t.Helper()
	return s.series(t, name, labels).GetHistogram()
}

// labelValues returns every value label takes in family name.
func (s scrape) labelValues(name, label string) []string {
	var out []string
	for _, m := range s.families[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && !slices.Contains(out, l.GetValue()) {
				out = append(out, l.GetValue())
			}
		}
	}
	sort.Strings(out)
	return out
}

func (s scrape) names() []string {
	var out []string
	for n := range s.families {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func labelSets(f *dto.MetricFamily) []string {
	var out []string
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		out = append(out, "{"+strings.Join(ls, ",")+"}")
	}
	return out
}

// memorySink is the broker the wrapped sink publishes to: it keeps what it
// was handed, can fail the next call with a given error, and moves the
// fake clock by latency per call, as a broker's round trip would.
type memorySink struct {
	clock   *clockwork.FakeClock
	latency time.Duration

	mu      sync.Mutex
	batches [][]*mapping.Message
	fail    error
	closed  bool
}

func (s *memorySink) Publish(ctx context.Context, msgs []*mapping.Message) error {
	if s.clock != nil {
		s.clock.Advance(s.latency)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory sink: %w", err)
	}
	s.batches = append(s.batches, msgs)
	err := s.fail
	s.fail = nil
	return err
}

func (s *memorySink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *memorySink) failNext(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *memorySink) last() []*mapping.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.batches) == 0 {
		return nil
	}
	return s.batches[len(s.batches)-1]
}

// recoveringSink adds sink.Recoverer, readySink sink.ReadyChecker.
type recoveringSink struct{ *memorySink }

func (recoveringSink) Position(context.Context) (json.RawMessage, error) {
	return json.RawMessage(`{"seq":7}`), nil
}

func (recoveringSink) PublishedSince(_ context.Context, pos json.RawMessage) (map[string]struct{}, error) {
	return map[string]struct{}{"since:" + string(pos): {}}, nil
}

type readySink struct{ *memorySink }

var errNotReady = fmt.Errorf("broker unreachable")

func (readySink) Ready(context.Context) error { return errNotReady }

type fullSink struct {
	recoveringSink
	readySink
}

// Publish and Close are ambiguous between the two embedded sinks.
func (s fullSink) Publish(ctx context.Context, msgs []*mapping.Message) error {
	return s.recoveringSink.Publish(ctx, msgs)
}

func (s fullSink) Close(ctx context.Context) error { return s.recoveringSink.Close(ctx) }

var (
	_ sink.Recoverer    = recoveringSink{}
	_ sink.ReadyChecker = readySink{}
)

// messageEvent returns the message a mapping would make of a stream
// message event sent at ts (Unix seconds).
func messageEvent(eventID, messageID int, ts int64) *mapping.Message {
	key := fmt.Sprintf("zulip.example.com/message/%d", messageID)
	return &mapping.Message{
		Subject: "zulip.message.stream.12",
		Topic:   "zulip.message",
		Key:     []byte("stream:12:greetings"),
		Headers: []mapping.Header{
			{Key: mapping.HeaderEventType, Value: "message"},
			{Key: mapping.HeaderEventID, Value: fmt.Sprint(eventID)},
			{Key: mapping.HeaderQueueID, Value: "1700000000:4242"},
			{Key: mapping.HeaderSite, Value: "zulip.example.com"},
			{Key: mapping.HeaderDedupKey, Value: key},
			{Key: mapping.HeaderStreamID, Value: "12"},
			{Key: mapping.HeaderStream, Value: "Denmark"},
			{Key: mapping.HeaderTopic, Value: "greetings"},
			{Key: mapping.HeaderMessageID, Value: fmt.Sprint(messageID)},
			{Key: mapping.HeaderContentType, Value: "application/json"},
		},
		Payload: fmt.Appendf(nil, `{"type":"message","id":%d,"flags":[],"message":{"id":%d,"type":"stream","stream_id":12,"display_recipient":"Denmark","subject":"greetings","timestamp":%d,"content":"<p>hi</p>"}}`,
			eventID, messageID, ts),
		DedupKey: key,
		Event:    mapping.EventInfo{ID: int64(eventID), Type: "message", MessageID: int64(messageID), Timestamp: ts},
	}
}

// otherEvent returns the message of a non-message event.
func otherEvent(eventID int, eventType, op string) *mapping.Message {
	key := fmt.Sprintf("zulip.example.com/1700000000:4242/%d", eventID)
	return &mapping.Message{
		Subject: "zulip." + eventType + "." + op,
		Topic:   "zulip." + eventType,
		Headers: []mapping.Header{
			{Key: mapping.HeaderEventType, Value: eventType},
			{Key: mapping.HeaderEventOp, Value: op},
			{Key: mapping.HeaderEventID, Value: fmt.Sprint(eventID)},
			{Key: mapping.HeaderDedupKey, Value: key},
			{Key: mapping.HeaderContentType, Value: "application/json"},
		},
		Payload:  fmt.Appendf(nil, `{"type":%q,"op":%q,"id":%d,"timestamp":1}`, eventType, op, eventID),
		DedupKey: key,
		Event:    mapping.EventInfo{ID: int64(eventID), Type: eventType, Op: op},
	}
}

// cloneMessages deep-copies msgs, to check later that nothing changed them.
func cloneMessages(msgs []*mapping.Message) []*mapping.Message {
	out := make([]*mapping.Message, len(msgs))
	for i, m := range msgs {
		c := *m
		c.Key = slices.Clone(m.Key)
		c.Headers = slices.Clone(m.Headers)
		c.Payload = slices.Clone(m.Payload)
		out[i] = &c
	}
	return out
}
