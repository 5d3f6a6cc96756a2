package mapping

import (
	"errors"
	"strings"
	"testing"
)

func TestControl(t *testing.T) {
	m := newMapper(t, Config{SubjectPrefix: "acme.zulip", SubjectTemplate: "x.{type}"})
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
