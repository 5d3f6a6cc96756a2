package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// golden is what a golden file records of one message.
type golden struct {
	Subject  string      `json:"subject"`
	Topic    string      `json:"topic"`
	Key      string      `json:"key"`
	DedupKey string      `json:"dedup_key"`
	Event    goldenEvent `json:"event"`
	Headers  []string    `json:"headers"` // "Key: Value"
	// Payload is recorded only where the mapper builds it (structured
	// CloudEvents); elsewhere it is the input, checked byte for byte.
	Payload json.RawMessage `json:"payload,omitempty"`
}

type goldenEvent struct {
	ID        int64  `json:"id"`
	Type      string `json:"type"`
	Op        string `json:"op,omitempty"`
	MessageID int64  `json:"message_id,omitempty"`
	Timestamp int64  `json:"timestamp,omitempty"`
}

func toGolden(msg *Message, withPayload bool) golden {
	g := golden{
		Subject:  msg.Subject,
		Topic:    msg.Topic,
		Key:      string(msg.Key),
		DedupKey: msg.DedupKey,
		Event:    goldenEvent(msg.Event),
	}
	for _, h := range msg.Headers {
		g.Headers = append(g.Headers, h.Key+": "+h.Value)
	}
	if withPayload {
		g.Payload = msg.Payload
	}
	return g
}

func checkGolden(t *testing.T, path string, got golden) {
	t.Helper()
	data, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, '\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./mapping -update to create it)", err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("%s differs (run go test ./mapping -update and review the diff):\ngot:\n%s\nwant:\n%s", path, data, want)
	}
}

// TestGoldenExamples maps every documented Zulip event with the default
// configuration and compares subject, topic, key, dedup key and headers
// with testdata/golden.
func TestGoldenExamples(t *testing.T) {
	m := newMapper(t, Config{})
	for _, ex := range loadExamples(t) {
		t.Run(ex.name, func(t *testing.T) {
			msg, err := m.Map(ex.event, testQueue)
			if err != nil {
				t.Fatal(err)
			}
			checkMessage(t, msg)
			if !bytes.Equal(msg.Payload, ex.event) || &msg.Payload[0] != &ex.event[0] {
				t.Error("payload is not the event itself")
			}
			checkGolden(t, filepath.Join("testdata", "golden", ex.name+".json"), toGolden(msg, false))
		})
	}
}

// TestExamplesWithoutID: the documented events that lack an id are
// rejected as they are: an event without an id cannot be acknowledged.
func TestExamplesWithoutID(t *testing.T) {
	m := newMapper(t, Config{})
	n := 0
	for _, ex := range loadExamples(t) {
		if bytes.Equal(ex.raw, ex.event) {
			continue
		}
		n++
		if _, err := m.Map(ex.raw, testQueue); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: Map without id: err = %v, want ErrInvalidEvent", ex.name, err)
		}
		if _, err := peek(ex.raw); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: peek without id: err = %v, want ErrInvalidEvent", ex.name, err)
		}
	}
	if n != 6 {
		t.Errorf("%d examples lack an id, want 6", n)
	}
}

// TestGoldenCloudEvents records both CloudEvents modes for both sinks on
// events with and without a time.
func TestGoldenCloudEvents(t *testing.T) {
	examples := loadExamples(t)
	for _, mode := range []string{CloudEventsBinary, CloudEventsStructured} {
		for _, sink := range []string{SinkNATS, SinkKafka} {
			m := newMapper(t, Config{CloudEvents: mode, Sink: sink})
			for _, i := range []int{10, 33, 35, 36} {
				ex := examples[i]
				t.Run(mode+"-"+sink+"-"+ex.name, func(t *testing.T) {
					msg, err := m.Map(ex.event, testQueue)
					if err != nil {
						t.Fatal(err)
					}
					checkMessage(t, msg)
					structured := mode == CloudEventsStructured
					if !structured && !bytes.Equal(msg.Payload, ex.event) {
						t.Error("binary mode changed the payload")
					}
					path := filepath.Join("testdata", "golden", "cloudevents", mode+"-"+sink+"-"+ex.name+".json")
					checkGolden(t, path, toGolden(msg, structured))
				})
			}
		}
	}
}
