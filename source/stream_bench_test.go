package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"
)

// BenchmarkEventStream decodes a response of Zulip's example events, as
// the queue does, and reports the rate in bytes and events.
func BenchmarkEventStream(b *testing.B) {
	raw, err := os.ReadFile("zuliptest/testdata/zulip/example-events.json")
	if err != nil {
		b.Fatal(err)
	}
	var examples []map[string]any
	if err := json.Unmarshal(raw, &examples); err != nil {
		b.Fatal(err)
	}
	var body bytes.Buffer
	body.WriteString(`{"result":"success","msg":"","events":[`)
	const n = 5000
	for i := range n {
		ev := examples[i%len(examples)]
		ev["id"] = i
		e, _ := json.Marshal(ev)
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(e)
	}
	body.WriteString(`],"queue_id":"q"}`)
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		s := newEventStream(bytes.NewReader(body.Bytes()), -1, 1<<20)
		got := 0
		for {
			_, err := s.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			got++
		}
		if got != n {
			b.Fatalf("%d events", got)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}
