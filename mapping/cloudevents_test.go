package mapping

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestCloudEventsAllExamples checks both modes and both bindings on every
// documented event against the CloudEvents NATS and Kafka bindings.
func TestCloudEventsAllExamples(t *testing.T) {
	examples := loadExamples(t)
	for _, mode := range []string{CloudEventsBinary, CloudEventsStructured} {
		for _, sink := range []string{SinkNATS, SinkKafka} {
			m := newMapper(t, Config{CloudEvents: mode, Sink: sink})
			for _, ex := range examples {
				msg, err := m.Map(ex.event, testQueue)
				if err != nil {
					t.Fatalf("%s: %v", ex.name, err)
				}
				checkMessage(t, msg)
				ceType := "org.zulip.event." + msg.Event.Type
				if msg.Event.Op != "" {
					ceType += "." + msg.Event.Op
				}
				checkCloudEvent(t, mode+"/"+sink+"/"+ex.name, msg, mode, sink, ex.event, ceType)
			}
		}
	}
}

// TestCloudEventsEncoding: attribute values that need escaping are
// percent-encoded for NATS, raw UTF-8 for Kafka, JSON-escaped in the
// envelope.
func TestCloudEventsEncoding(t *testing.T) {
	const queue = `q"%1`
	ev := []byte(`{"type":"heartbeat","id":3}`)
	wantID := testHost + "/" + queue + "/3"
	for _, mode := range []string{CloudEventsBinary, CloudEventsStructured} {
		for _, sink := range []string{SinkNATS, SinkKafka} {
			m := newMapper(t, Config{CloudEvents: mode, Sink: sink})
			msg, err := m.Map(ev, queue)
			if err != nil {
				t.Fatal(err)
			}
			if msg.DedupKey != wantID {
				t.Fatalf("dedup key %q", msg.DedupKey)
			}
			checkCloudEvent(t, mode+"/"+sink, msg, mode, sink, ev, "org.zulip.event.heartbeat")
		}
	}
	nats := newMapper(t, Config{CloudEvents: CloudEventsBinary})
	msg, err := nats.Map(ev, queue)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := msg.Get("ce-id"); v != testHost+"/q%22%251/3" {
		t.Errorf("ce-id %q", v)
	}
}

func checkCloudEvent(t *testing.T, name string, msg *Message, mode, sink string, event []byte, ceType string) {
	t.Helper()
	var ceTime string
	if ts := messageTime(t, event); ts != "" {
		ceTime = ts
	}
	want := map[string]string{
		"specversion": "1.0",
		"id":          msg.DedupKey,
		"source":      testSite,
		"type":        ceType,
		"time":        ceTime,
	}
	contentType := HeaderContentType
	if sink == SinkKafka {
		contentType = "content-type"
		if _, ok := msg.Get(HeaderContentType); ok {
			t.Errorf("%s: Kafka record has both Content-Type and content-type", name)
		}
	}
	ceHeaders := map[string]string{}
	for _, h := range msg.Headers {
		if k, ok := strings.CutPrefix(h.Key, "ce-"); ok {
			ceHeaders[k] = h.Value
		}
		if k, ok := strings.CutPrefix(h.Key, "ce_"); ok {
			ceHeaders[k] = h.Value
		}
	}

	switch mode {
	case CloudEventsBinary:
		if !bytes.Equal(msg.Payload, event) {
			t.Errorf("%s: binary mode changed the payload", name)
		}
		if v, _ := msg.Get(contentType); v != "application/json" {
			t.Errorf("%s: %s = %q", name, contentType, v)
		}
		prefix := "ce-"
		if sink == SinkKafka {
			prefix = "ce_"
		} else {
			want["datacontenttype"] = "application/json"
		}
		for attr, v := range want {
			got, ok := msg.Get(prefix + attr)
			if v == "" {
				if ok {
					t.Errorf("%s: %s%s = %q, want none", name, prefix, attr, got)
				}
				continue
			}
			if sink == SinkNATS {
				// The NATS binding percent-encodes values; decoding
				// must give the attribute back.
				dec, err := url.PathUnescape(got)
				if err != nil {
					t.Errorf("%s: %s%s = %q: %v", name, prefix, attr, got, err)
				}
				got = dec
			}
			if got != v {
				t.Errorf("%s: %s%s = %q, want %q", name, prefix, attr, got, v)
			}
		}
		if len(ceHeaders) != len(nonEmpty(want)) {
			t.Errorf("%s: CloudEvents headers %v, want %v", name, ceHeaders, want)
		}
	case CloudEventsStructured:
		if v, _ := msg.Get(contentType); v != "application/cloudevents+json; charset=UTF-8" {
			t.Errorf("%s: %s = %q", name, contentType, v)
		}
		if len(ceHeaders) != 0 {
			t.Errorf("%s: structured mode has attribute headers %v", name, ceHeaders)
		}
		var env map[string]json.RawMessage
		if err := json.Unmarshal(msg.Payload, &env); err != nil {
			t.Fatalf("%s: envelope: %v", name, err)
		}
		want["datacontenttype"] = "application/json"
		for attr, v := range want {
			raw, ok := env[attr]
			if v == "" {
				if ok {
					t.Errorf("%s: envelope has %s", name, attr)
				}
				continue
			}
			var got string
			if err := json.Unmarshal(raw, &got); err != nil || got != v {
				t.Errorf("%s: envelope %s = %s, want %q", name, attr, raw, v)
			}
		}
		if len(env) != len(nonEmpty(want))+1 {
			t.Errorf("%s: envelope members %d", name, len(env))
		}
		if !bytes.HasSuffix(msg.Payload, append(append([]byte(`"data":`), event...), '}')) {
			t.Errorf("%s: envelope does not end with the event byte for byte", name)
		}
	}
}

func nonEmpty(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// messageTime is the time the mapper should give an event: the message's
// timestamp, or an edit's edit_timestamp.
func messageTime(t *testing.T, event []byte) string {
	var ev struct {
		Type    string `json:"type"`
		Edit    *int64 `json:"edit_timestamp"`
		Message struct {
			Timestamp *int64 `json:"timestamp"`
		} `json:"message"`
	}
	if err := json.Unmarshal(event, &ev); err != nil {
		t.Fatal(err)
	}
	var ts *int64
	switch ev.Type {
	case "message":
		ts = ev.Message.Timestamp
	case "update_message":
		ts = ev.Edit
	}
	if ts == nil {
		return ""
	}
	return unixRFC3339(*ts)
}
