package mapping

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkMap maps the 71 documented events round robin with the default
// configuration. Besides ns/op (one event per op) it reports events/s and
// how many times faster it is than the baseline, decoding the same events
// with json.Unmarshal into map[string]any, measured in the same run. Run
// it on one core: go test ./mapping -run '^$' -bench Map -cpu 1
func BenchmarkMap(b *testing.B) {
	events := benchEvents(b)
	m := newMapper(b, Config{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := m.Map(events[i%len(events)], testQueue); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportRate(b, i)
}

// BenchmarkMapCloudEventsStructured is BenchmarkMap with the most
// expensive mode, which builds a new payload per event.
func BenchmarkMapCloudEventsStructured(b *testing.B) {
	events := benchEvents(b)
	m := newMapper(b, Config{CloudEvents: CloudEventsStructured, Sink: SinkKafka})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := m.Map(events[i%len(events)], testQueue); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportRate(b, i)
}

// BenchmarkPeek reads only what the bridge needs to acknowledge an event.
func BenchmarkPeek(b *testing.B) {
	events := benchEvents(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := Peek(events[i%len(events)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportRate(b, i)
}

// BenchmarkUnmarshalBaseline is the baseline on its own.
func BenchmarkUnmarshalBaseline(b *testing.B) {
	events := benchEvents(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		unmarshalOne(b, events[i%len(events)])
		i++
	}
	reportRate(b, i)
}

func benchEvents(b *testing.B) [][]byte {
	b.Helper()
	var events [][]byte
	for _, ex := range loadExamples(b) {
		events = append(events, ex.event)
	}
	return events
}

func unmarshalOne(b *testing.B, raw []byte) {
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		b.Fatal(err)
	}
}

var (
	baselineOnce sync.Once
	baselineNs   float64
)

// reportRate reports events/s and, for the mapper benchmarks, the speedup
// over the json.Unmarshal baseline, which it times once per run (about
// half a second) after the benchmark loop has stopped the timer.
func reportRate(b *testing.B, n int) {
	if n == 0 || b.Elapsed() == 0 {
		return
	}
	ns := float64(b.Elapsed().Nanoseconds()) / float64(n)
	b.ReportMetric(1e9/ns, "events/s")
	if strings.HasPrefix(b.Name(), "BenchmarkUnmarshalBaseline") {
		return
	}
	baselineOnce.Do(func() {
		events := benchEvents(b)
		start := time.Now()
		n := 0
		for time.Since(start) < 500*time.Millisecond {
			for _, ev := range events {
				unmarshalOne(b, ev)
			}
			n += len(events)
		}
		baselineNs = float64(time.Since(start).Nanoseconds()) / float64(n)
	})
	b.ReportMetric(baselineNs/ns, "x-vs-unmarshal")
}
