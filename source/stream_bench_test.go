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
	examples := exampleEvents(b)
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

// BenchmarkParseMessages decodes a GET /messages page of 1000 messages of
// Zulip's example events' message objects, as a backfill does.
func BenchmarkParseMessages(b *testing.B) {
	examples := exampleEvents(b)
	var msgs []map[string]any
	for _, ev := range examples {
		if m, ok := ev["message"].(map[string]any); ok && ev["type"] == "message" {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		b.Fatal("no message events among the examples")
	}
	var body bytes.Buffer
	body.WriteString(`{"result":"success","msg":"","anchor":0,"found_anchor":false,"found_oldest":true,"found_newest":false,"history_limited":false,"messages":[`)
	const n = 1000
	for i := range n {
		m := msgs[i%len(msgs)]
		m["id"] = i + 1
		m["flags"] = []string{"read"}
		e, _ := json.Marshal(m)
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(e)
	}
	body.WriteString(`]}`)
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		got, _, err := parseMessages(body.Bytes(), 0)
		if err != nil || len(got) != n {
			b.Fatalf("%d messages, %v", len(got), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/message")
}

// exampleEvents is Zulip's example events, decoded.
func exampleEvents(b *testing.B) []map[string]any {
	raw, err := os.ReadFile("zuliptest/testdata/zulip/example-events.json")
	if err != nil {
		b.Fatal(err)
	}
	var examples []map[string]any
	if err := json.Unmarshal(raw, &examples); err != nil {
		b.Fatal(err)
	}
	return examples
}
