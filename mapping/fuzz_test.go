package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
)

// FuzzMap maps arbitrary input with a template that substitutes stream
// and topic and with structured CloudEvents, and checks what must hold
// whatever the input: no panic, an error that wraps a sentinel, or a
// message with valid names and clean headers, whose payload embeds the
// input byte for byte, that agrees with encoding/json and with peek, and
// that is the same on a second call. Its seed corpus is the 71 documented
// events and a few hostile ones, which plain go test runs too.
func FuzzMap(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(ex.raw)
		f.Add(ex.event)
	}
	for _, s := range []string{
		`{"type":"message","id":1,"message":{"id":2,"type":"private","display_recipient":[{"id":3},{"id":1}],"flags":["read"]}}`,
		`{"type":"typing","op":"start","id":1,"message_type":"stream","stream_id":1,"topic":"a\u0000b"}`,
		`{"typ\u0065":"x","id":1,"id":2}`,
		"{\"type\":\"x\",\"id\":1,\"stream_id\":1,\"stream_name\":\"\xff\"}",
		`[[[[[[`,
	} {
		f.Add([]byte(s))
	}
	m, err := New(Config{SubjectTemplate: "{prefix}.{type}.{op}.{scope}.{stream}.{topic}", TopicTemplate: "{prefix}.{type}.{stream}"}, mustSite(testSite))
	if err != nil {
		f.Fatal(err)
	}
	ce := newMapper(f, Config{CloudEvents: CloudEventsStructured, Sink: SinkKafka})

	f.Fuzz(func(t *testing.T, raw []byte) {
		in := bytes.Clone(raw)
		msg, err := m.Map(raw, testQueue)
		if !bytes.Equal(raw, in) {
			t.Fatal("Map modified its input")
		}
		info, peekErr := peek(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			if errors.Is(err, ErrInvalidEvent) && peekErr == nil {
				t.Fatalf("peek accepts what Map rejects: %v", err)
			}
			return
		}
		checkMessage(t, msg)
		if &msg.Payload[0] != &raw[0] || len(msg.Payload) != len(raw) {
			t.Fatal("payload is not the input")
		}
		if !json.Valid(raw) {
			t.Fatal("Map accepted invalid JSON")
		}
		if peekErr != nil || info != msg.Event {
			t.Fatalf("peek = %+v, %v; Map said %+v", info, peekErr, msg.Event)
		}
		agreeWithEncodingJSON(t, raw, msg)
		again, err := m.Map(raw, testQueue)
		if err != nil || !reflect.DeepEqual(again, msg) {
			t.Fatalf("second Map differs: %v", err)
		}

		env, err := ce.Map(raw, testQueue)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("structured mode: %v", err)
			}
		} else if !json.Valid(env.Payload) || !bytes.Contains(env.Payload, raw) {
			t.Fatalf("structured mode: bad envelope %q", env.Payload)
		}

		if msg.Event.Type == "message" {
			// The message object alone, as GET /messages returns it.
			var ev map[string]json.RawMessage
			if json.Unmarshal(raw, &ev) == nil && ev["message"] != nil {
				back, err := m.MapBackfilled(ev["message"], testQueue)
				if err != nil {
					if !errors.Is(err, ErrInvalidEvent) && !errors.Is(err, ErrInvalidName) {
						t.Fatalf("MapBackfilled: %v", err)
					}
					return
				}
				if back.DedupKey != msg.DedupKey || !json.Valid(back.Payload) {
					t.Fatalf("backfilled %q %q, live %q", back.DedupKey, back.Payload, msg.DedupKey)
				}
			}
		}
	})
}

// agreeWithEncodingJSON: type, op and id are what encoding/json reads.
func agreeWithEncodingJSON(t *testing.T, raw []byte, msg *Message) {
	t.Helper()
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	var typ, op string
	var id int64
	if err := json.Unmarshal(ev["type"], &typ); err != nil || typ != msg.Event.Type {
		t.Fatalf("encoding/json reads type %q (%v), Map %q", typ, err, msg.Event.Type)
	}
	if err := json.Unmarshal(ev["id"], &id); err != nil || id != msg.Event.ID {
		t.Fatalf("encoding/json reads id %d (%v), Map %d", id, err, msg.Event.ID)
	}
	if ev["op"] != nil && json.Unmarshal(ev["op"], &op) == nil && op != msg.Event.Op {
		t.Fatalf("encoding/json reads op %q, Map %q", op, msg.Event.Op)
	}
	if msg.Event.Type == "message" {
		var m struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(ev["message"], &m); err != nil || m.ID != msg.Event.MessageID {
			t.Fatalf("encoding/json reads message id %d (%v), Map %d", m.ID, err, msg.Event.MessageID)
		}
		// The timestamp: a non-negative integer literal, else 0.
		var members map[string]json.RawMessage
		if err := json.Unmarshal(ev["message"], &members); err != nil {
			t.Fatalf("encoding/json: message: %v", err)
		}
		var want int64
		if n, err := strconv.ParseInt(string(members["timestamp"]), 10, 64); err == nil && n >= 0 {
			want = n
		}
		if msg.Event.Timestamp != want {
			t.Fatalf("encoding/json reads message timestamp %s (%d), Map %d", members["timestamp"], want, msg.Event.Timestamp)
		}
	} else if msg.Event.Timestamp != 0 {
		t.Fatalf("%s event with timestamp %d", msg.Event.Type, msg.Event.Timestamp)
	}
}
