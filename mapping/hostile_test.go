package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestHostileInput feeds events no Zulip server should send. Each gives a
// valid message or an error that says what is wrong, never a panic.
func TestHostileInput(t *testing.T) {
	streamMsg := func(stream, topic string) string {
		return fmt.Sprintf(`{"type":"message","id":1,"message":{"id":2,"type":"stream","stream_id":3,"display_recipient":%s,"subject":%s}}`,
			appendJSONString(nil, stream), appendJSONString(nil, topic))
	}
	tests := []struct {
		name  string
		event string
		queue string
		err   error  // nil: a valid message
		msg   string // in the error
		check func(t *testing.T, msg *Message)
	}{
		{name: "stream name with dots", event: streamMsg("a.b.c", "t"), check: headerIs(HeaderStream, "a.b.c")},
		{name: "stream name with spaces", event: streamMsg("design team", "t"), check: headerIs(HeaderStream, "design team")},
		{name: "stream name with wildcards", event: streamMsg("*>", "t"), check: headerIs(HeaderStream, "*>")},
		{name: "unicode stream name", event: streamMsg("日本語 🎉", "t"), check: headerIs(HeaderStream, "日本語 🎉")},
		{name: "empty stream name", event: streamMsg("", "t"), check: headerIs(HeaderStream, "")},
		{name: "topic with newlines", event: streamMsg("s", "a\r\nb\n"), check: headerIs(HeaderTopic, "ab")},
		{name: "topic with control characters", event: streamMsg("s", "a\x00\x07\x1b[31m\x7fb\u0085c"), check: headerIs(HeaderTopic, "a[31mbc")},
		{name: "topic of 60k characters", event: streamMsg("s", strings.Repeat("x", 60000)), check: func(t *testing.T, msg *Message) {
			if msg.Subject != "zulip.message.stream.3" {
				t.Errorf("subject %q", msg.Subject)
			}
			if v, _ := msg.Get(HeaderTopic); len(v) != 60000 {
				t.Errorf("Zulip-Topic has %d characters, want 60000", len(v))
			}
			if len(msg.Key) != len("stream:3:")+60000 {
				t.Errorf("key has %d bytes", len(msg.Key))
			}
		}},
		{name: "invalid UTF-8 in topic", event: streamMsg("s", "a\xffb\xc3"), check: headerIs(HeaderTopic, "a\uFFFDb\uFFFD")},
		{name: "lone surrogate escape in topic", event: `{"type":"message","id":1,"message":{"id":2,"type":"stream","stream_id":3,"subject":"a\ud800b"}}`, check: headerIs(HeaderTopic, "a\uFFFDb")},
		{name: "C1 control as escape", event: `{"type":"message","id":1,"message":{"id":2,"type":"stream","stream_id":3,"subject":"a\u0085b\u2028"}}`, check: headerIs(HeaderTopic, "ab\u2028")},
		{name: "stream id of the wrong type", event: `{"type":"stream","op":"update","id":1,"stream_id":"3"}`, check: subjectIs("zulip.stream.update")},
		{name: "negative stream id", event: `{"type":"stream","op":"update","id":1,"stream_id":-3}`, check: subjectIs("zulip.stream.update")},
		{name: "fractional stream id", event: `{"type":"stream","op":"update","id":1,"stream_id":3.5}`, check: subjectIs("zulip.stream.update")},
		{name: "streams is an object", event: `{"type":"stream","op":"create","id":1,"streams":{"stream_id":3}}`, check: subjectIs("zulip.stream.create")},
		{name: "display_recipient is a number", event: `{"type":"message","id":1,"message":{"id":2,"type":"private","display_recipient":7}}`, check: subjectIs("zulip.message.direct")},
		{name: "message type unknown", event: `{"type":"message","id":1,"message":{"id":2,"type":"carrier pigeon"}}`, check: subjectIs("zulip.message")},
		{name: "member name escaped", event: `{"typ\u0065":"heartbeat","\u0069d":4}`, check: subjectIs("zulip.heartbeat")},
		{name: "whitespace around", event: " \n\t{ \"type\" : \"heartbeat\" , \"id\" : 4 }\r\n", check: subjectIs("zulip.heartbeat")},
		{name: "id zero", event: `{"type":"heartbeat","id":0}`, check: headerIs(HeaderEventID, "0")},
		{name: "id at int64 max", event: `{"type":"heartbeat","id":9223372036854775807}`, check: headerIs(HeaderEventID, "9223372036854775807")},

		{name: "empty input", event: ``, err: ErrInvalidEvent, msg: "must be a JSON object"},
		{name: "array", event: `[{"type":"heartbeat","id":1}]`, err: ErrInvalidEvent, msg: "must be a JSON object"},
		{name: "null", event: `null`, err: ErrInvalidEvent, msg: "must be a JSON object"},
		{name: "truncated", event: `{"type":"heartbeat","id":1`, err: ErrInvalidEvent, msg: "want ',' or '}'"},
		{name: "trailing data", event: `{"type":"heartbeat","id":1} {}`, err: ErrInvalidEvent, msg: "after the top-level value"},
		{name: "no type", event: `{"id":1}`, err: ErrInvalidEvent, msg: `no string member "type"`},
		{name: "type is a number", event: `{"type":5,"id":1}`, err: ErrInvalidEvent, msg: `no string member "type"`},
		{name: "empty type", event: `{"type":"","id":1}`, err: ErrInvalidEvent, msg: "type: empty"},
		{name: "type with a dot", event: `{"type":"a.b","id":1}`, err: ErrInvalidEvent, msg: "not a letter"},
		{name: "type with invalid UTF-8", event: "{\"type\":\"a\xff\",\"id\":1}", err: ErrInvalidEvent, msg: "not a letter"},
		{name: "op with a wildcard", event: `{"type":"realm","op":">","id":1}`, err: ErrInvalidEvent, msg: "op:"},
		{name: "no id", event: `{"type":"heartbeat"}`, err: ErrInvalidEvent, msg: `"id" is missing`},
		{name: "id is a string", event: `{"type":"heartbeat","id":"1"}`, err: ErrInvalidEvent, msg: `"id" is missing`},
		{name: "id is negative", event: `{"type":"heartbeat","id":-1}`, err: ErrInvalidEvent, msg: `"id" is missing`},
		{name: "id is fractional", event: `{"type":"heartbeat","id":1.0}`, err: ErrInvalidEvent, msg: `"id" is missing`},
		{name: "id overflows", event: `{"type":"heartbeat","id":9223372036854775808}`, err: ErrInvalidEvent, msg: `"id" is missing`},
		{name: "message event without message", event: `{"type":"message","id":1}`, err: ErrInvalidEvent, msg: `no non-negative integer "id"`},
		{name: "message is an array", event: `{"type":"message","id":1,"message":[]}`, err: ErrInvalidEvent, msg: `no non-negative integer "id"`},
		{name: "duplicate type", event: `{"type":"heartbeat","type":"message","id":1}`, err: ErrInvalidEvent, msg: `"type" appears twice`},
		{name: "duplicate escaped id", event: `{"type":"heartbeat","id":1,"\u0069d":2}`, err: ErrInvalidEvent, msg: `"id" appears twice`},
		{name: "duplicate message id", event: `{"type":"message","id":1,"message":{"id":2,"id":3}}`, err: ErrInvalidEvent, msg: `"id" of the message appears twice`},
		{name: "raw control character in string", event: "{\"type\":\"heartbeat\",\"id\":1,\"x\":\"a\nb\"}", err: ErrInvalidEvent, msg: "control character"},
		{name: "bad escape", event: `{"type":"heartbeat","id":1,"x":"\q"}`, err: ErrInvalidEvent, msg: "invalid escape"},
		{name: "bad unicode escape", event: `{"type":"heartbeat","id":1,"x":"\u12"}`, err: ErrInvalidEvent, msg: `invalid \u escape`},
		{name: "bad number", event: `{"type":"heartbeat","id":01}`, err: ErrInvalidEvent, msg: "want ',' or '}'"},
		{name: "bad literal", event: `{"type":"heartbeat","id":1,"x":tru}`, err: ErrInvalidEvent, msg: "invalid literal"},
		{name: "NaN", event: `{"type":"heartbeat","id":1,"x":NaN}`, err: ErrInvalidEvent, msg: "want a value"},
		{name: "nested too deep", event: `{"type":"heartbeat","id":1,"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, err: ErrInvalidEvent, msg: "nested deeper than 10000"},

		{name: "empty queue id", event: `{"type":"heartbeat","id":1}`, queue: "-", err: ErrInvalidQueueID, msg: "empty"},
		{name: "queue id with a space", event: `{"type":"heartbeat","id":1}`, queue: "a b", err: ErrInvalidQueueID, msg: "printable ASCII"},
		{name: "queue id with a slash", event: `{"type":"heartbeat","id":1}`, queue: "a/b", err: ErrInvalidQueueID, msg: "printable ASCII"},
		{name: "queue id message", event: `{"type":"heartbeat","id":1}`, queue: "message", err: ErrInvalidQueueID, msg: "reserved"},
	}
	// Every case runs with the default names and with stream and topic
	// substituted into the subject, where a name may also be too long.
	withNames := newMapper(t, Config{SubjectTemplate: "{prefix}.{type}.{op}.{scope}.{stream}.{topic}"})
	byDefault := newMapper(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			queue := tt.queue
			switch queue {
			case "":
				queue = testQueue
			case "-":
				queue = ""
			}
			msg, err := byDefault.Map([]byte(tt.event), queue)
			named, namedErr := withNames.Map([]byte(tt.event), queue)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("err = %v, want %v containing %q", err, tt.err, tt.msg)
				}
				if namedErr == nil || namedErr.Error() != err.Error() {
					t.Errorf("with a template: %v, want %v", namedErr, err)
				}
				if tt.err == ErrInvalidEvent {
					if _, err := peek([]byte(tt.event)); !errors.Is(err, ErrInvalidEvent) {
						t.Errorf("peek accepted what Map rejects: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkMessage(t, msg)
			if !bytes.Equal(msg.Payload, []byte(tt.event)) {
				t.Error("payload changed")
			}
			info, err := peek([]byte(tt.event))
			if err != nil || info != msg.Event {
				t.Errorf("peek = %+v, %v; Map said %+v", info, err, msg.Event)
			}
			if tt.check != nil {
				tt.check(t, msg)
			}
			switch {
			case namedErr == nil:
				checkMessage(t, named)
			case !errors.Is(namedErr, ErrInvalidName):
				t.Errorf("with a template: %v", namedErr)
			}
		})
	}
}

func headerIs(key, want string) func(*testing.T, *Message) {
	return func(t *testing.T, msg *Message) {
		t.Helper()
		if got, ok := msg.Get(key); !ok || got != want {
			t.Errorf("header %s = %q (present %v), want %q", key, got, ok, want)
		}
	}
}

func subjectIs(want string) func(*testing.T, *Message) {
	return func(t *testing.T, msg *Message) {
		t.Helper()
		if msg.Subject != want {
			t.Errorf("subject %q, want %q", msg.Subject, want)
		}
	}
}

// TestHugeEvent maps a 10 MB message event and a 10 MB run of '['.
func TestHugeEvent(t *testing.T) {
	m := newMapper(t, Config{CloudEvents: CloudEventsStructured})
	content := strings.Repeat(`<p>déjà \"vu\"</p>\n`, 10<<20/20)
	ev := []byte(`{"type":"message","id":1,"message":{"id":2,"type":"stream","stream_id":3,"subject":"t","content":"` + content + `"},"flags":[]}`)
	if len(ev) < 10<<20 {
		t.Fatalf("event is %d bytes", len(ev))
	}
	msg, err := m.Map(ev, testQueue)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, msg)
	if !bytes.Contains(msg.Payload, ev) {
		t.Error("the envelope does not hold the event byte for byte")
	}

	deep := bytes.Repeat([]byte("["), 10<<20)
	if _, err := m.Map(deep, testQueue); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("10 MB of '[': %v", err)
	}
	deep = append([]byte(`{"type":"heartbeat","id":1,"x":`), deep...)
	if _, err := m.Map(deep, testQueue); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("10 MB of '[' in a member: %v", err)
	}
}
