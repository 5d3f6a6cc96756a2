package mapping

import (
	"errors"
	"strings"
	"testing"
)

func TestControl(t *testing.T) {
	m := newMapper(t, Config{SubjectPrefix: "acme.zulip", SubjectTemplate: "{prefix}.x.{type}"})
	payload := []byte(`{"old_queue_id":"a","new_queue_id":"b","backfilled":3}`)
	msg, err := m.Control("resync", "b", payload)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, msg)
	if msg.Subject != "acme.zulip.bridge.resync" || msg.Topic != "acme.zulip.bridge" || msg.Key != nil {
		t.Errorf("subject %q topic %q key %q", msg.Subject, msg.Topic, msg.Key)
	}
	if msg.DedupKey != testHost+"/b/bridge.resync" {
		t.Errorf("dedup key %q", msg.DedupKey)
	}
	if string(msg.Payload) != string(payload) {
		t.Errorf("payload %s", msg.Payload)
	}
	want := []Header{
		{HeaderEventType, "bridge"},
		{HeaderEventOp, "resync"},
		{HeaderQueueID, "b"},
		{HeaderSite, testHost},
		{HeaderDedupKey, testHost + "/b/bridge.resync"},
		{HeaderContentType, "application/json"},
	}
	if len(msg.Headers) != len(want) {
		t.Fatalf("headers %v, want %v", msg.Headers, want)
	}
	for i := range want {
		if msg.Headers[i] != want[i] {
			t.Errorf("header %d = %v, want %v", i, msg.Headers[i], want[i])
		}
	}
	if msg.Event != (EventInfo{ID: -1, Type: "bridge", Op: "resync"}) {
		t.Errorf("event info %+v", msg.Event)
	}

	ce := newMapper(t, Config{CloudEvents: CloudEventsBinary})
	msg, err = ce.Control("state", "b", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := msg.Get("ce-type"); v != "com.github.zulip-bridge.state" {
		t.Errorf("ce-type %q", v)
	}

	for _, tt := range []struct {
		kind, queue, payload string
		err                  error
		msg                  string
	}{
		{kind: "re.sync", queue: "b", payload: `{}`, msg: "control kind"},
		{kind: "", queue: "b", payload: `{}`, msg: "control kind"},
		{kind: "resync", queue: "", payload: `{}`, err: ErrInvalidQueueID},
		{kind: "resync", queue: "b", payload: `[]`, msg: "must be a JSON object"},
		{kind: "resync", queue: "b", payload: `{"a":}`, err: ErrInvalidEvent},
		{kind: "resync", queue: "b", payload: `{} {}`, err: ErrInvalidEvent},
		{kind: strings.Repeat("k", 101), queue: "b", payload: `{}`, msg: "the limit is 100"},
	} {
		_, err := m.Control(tt.kind, tt.queue, []byte(tt.payload))
		if err == nil || tt.err != nil && !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Control(%q, %q, %q) = %v, want %v containing %q", tt.kind, tt.queue, tt.payload, err, tt.err, tt.msg)
		}
	}
}

// TestControlWithID: an event the bridge could not map is published as a
// control event under the dedup key the event would have had.
func TestControlWithID(t *testing.T) {
	m := newMapper(t, Config{})
	if m.Prefix() != "zulip" {
		t.Errorf("Prefix() = %q", m.Prefix())
	}
	payload := []byte(`{"reason":"x","id":"7","event":{}}`)
	for _, tt := range []struct{ id, key string }{
		{"7", testHost + "/q/7"},
		{"0", testHost + "/q/0"},
		{"007", testHost + "/q/7"},
		{"message/31", testHost + "/message/31"},
	} {
		msg, err := m.ControlWithID("invalid", "q", tt.id, payload)
		if err != nil {
			t.Fatalf("%q: %v", tt.id, err)
		}
		checkMessage(t, msg)
		if msg.DedupKey != tt.key || msg.Subject != "zulip.bridge.invalid" || msg.Topic != "zulip.bridge" {
			t.Errorf("%q: dedup key %q subject %q topic %q, want key %q", tt.id, msg.DedupKey, msg.Subject, msg.Topic, tt.key)
		}
	}
	// The same keys as the events themselves.
	ev, err := m.Map([]byte(`{"type":"heartbeat","id":7}`), "q")
	if err != nil {
		t.Fatal(err)
	}
	back, err := m.MapBackfilled([]byte(`{"id":31,"type":"private"}`), "q")
	if err != nil {
		t.Fatal(err)
	}
	if ev.DedupKey != testHost+"/q/7" || back.DedupKey != testHost+"/message/31" {
		t.Errorf("event keys %q %q", ev.DedupKey, back.DedupKey)
	}
	for _, id := range []string{"", "-1", "+1", "1.5", "x", "message/", "message/x", "message/-1", "message/message/1", "99999999999999999999"} {
		if _, err := m.ControlWithID("invalid", "q", id, payload); err == nil {
			t.Errorf("ControlWithID accepted id %q", id)
		}
	}
	if _, err := m.ControlWithID("invalid", "", "1", payload); !errors.Is(err, ErrInvalidQueueID) {
		t.Errorf("empty queue id: %v", err)
	}
}
