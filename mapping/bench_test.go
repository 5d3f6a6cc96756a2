package mapping

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkMap measures the mapper over the 71 documented events, one
// event per op, on one core: go test ./mapping -run '^$' -bench Map -cpu 1
//
//   - default, structured: Map with the default configuration and with
//     structured CloudEvents, which builds a new payload per event;
//   - peek: what the bridge reads to acknowledge an event;
//   - unmarshal: the baseline, json.Unmarshal of the same events into
//     map[string]any;
//   - paired: alternates one pass of Map and one of the baseline over all
//     71 events per iteration and reports both rates and their ratio. Load
//     from other processes hits both halves alike, so this is the figure
//     to quote.
func BenchmarkMap(b *testing.B) {
	events := benchEvents(b)
	m := newMapper(b, Config{})
	structured := newMapper(b, Config{CloudEvents: CloudEventsStructured, Sink: SinkKafka})

	perEvent := func(name string, one func(b *testing.B, raw []byte)) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				one(b, events[i%len(events)])
				i++
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
		})
	}
	perEvent("default", func(b *testing.B, raw []byte) { mapOne(b, m, raw) })
	perEvent("structured", func(b *testing.B, raw []byte) { mapOne(b, structured, raw) })
	perEvent("peek", func(b *testing.B, raw []byte) {
		if _, err := peek(raw); err != nil {
			b.Fatal(err)
		}
	})
	perEvent("unmarshal", unmarshalOne)

	b.Run("paired", func(b *testing.B) {
		var mapTime, baseTime time.Duration
		n := 0
		for b.Loop() {
			start := time.Now()
			for _, raw := range events {
				mapOne(b, m, raw)
			}
			mid := time.Now()
			for _, raw := range events {
				unmarshalOne(b, raw)
			}
			mapTime += mid.Sub(start)
			baseTime += time.Since(mid)
			n += len(events)
		}
		b.ReportMetric(float64(mapTime.Nanoseconds())/float64(n), "map-ns/event")
		b.ReportMetric(float64(n)/mapTime.Seconds(), "map-events/s")
		b.ReportMetric(float64(baseTime.Nanoseconds())/float64(n), "unmarshal-ns/event")
		b.ReportMetric(baseTime.Seconds()/mapTime.Seconds(), "x-vs-unmarshal")
	})
}

func benchEvents(b *testing.B) [][]byte {
	b.Helper()
	var events [][]byte
	for _, ex := range loadExamples(b) {
		events = append(events, ex.event)
	}
	return events
}

func mapOne(b *testing.B, m *Mapper, raw []byte) {
	if _, err := m.Map(raw, testQueue); err != nil {
		b.Fatal(err)
	}
}

func unmarshalOne(b *testing.B, raw []byte) {
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		b.Fatal(err)
	}
}
