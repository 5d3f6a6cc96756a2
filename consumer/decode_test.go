package consumer_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/consumer"
	"github.com/zulip-bridge/zulip-bridge/mapping"
)

// exampleFiles are the copies of Zulip's example events in the project
// (Apache-2.0, LICENSE and NOTICE beside each).
var exampleFiles = []string{
	"../mapping/testdata/zulip/example-events.json",
	"../source/zuliptest/testdata/zulip/example-events.json",
}

// typedAs is the Go type Decode must give each typed kind.
var typedAs = map[string]reflect.Type{
	"message":              reflect.TypeFor[*consumer.MessageEvent](),
	"reaction":             reflect.TypeFor[*consumer.ReactionEvent](),
	"update_message":       reflect.TypeFor[*consumer.UpdateMessageEvent](),
	"delete_message":       reflect.TypeFor[*consumer.DeleteMessageEvent](),
	"typing":               reflect.TypeFor[*consumer.TypingEvent](),
	"subscription":         reflect.TypeFor[*consumer.SubscriptionEvent](),
	"stream":               reflect.TypeFor[*consumer.StreamEvent](),
	"realm_user":           reflect.TypeFor[*consumer.RealmUserEvent](),
	"presence":             reflect.TypeFor[*consumer.PresenceEvent](),
	"update_message_flags": reflect.TypeFor[*consumer.UpdateMessageFlagsEvent](),
	"submessage":           reflect.TypeFor[*consumer.SubmessageEvent](),
}

func loadExamples(t *testing.T, path string) []json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var events []json.RawMessage
	if err := json.Unmarshal(b, &events); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(events) < 71 {
		t.Fatalf("%s: %d events, want Zulip's 71 examples", path, len(events))
	}
	return events
}

// TestDecodeExamples: every example event of the project's testdata
// decodes without error, to its typed value where one exists and to
// *Generic otherwise, with its type, op and raw JSON; and each typed kind
// is met by at least one example.
func TestDecodeExamples(t *testing.T) {
	for _, path := range exampleFiles {
		met := map[string]bool{}
		for i, raw := range loadExamples(t, path) {
			var head struct{ Type, Op string }
			if err := json.Unmarshal(raw, &head); err != nil {
				t.Fatal(err)
			}
			ev, err := consumer.Decode(raw)
			if err != nil {
				t.Errorf("%s #%d (%s): %v", path, i, raw, err)
				continue
			}
			want, typed := typedAs[head.Type]
			if !typed {
				want = reflect.TypeFor[*consumer.Generic]()
			}
			if got := reflect.TypeOf(ev); got != want {
				t.Errorf("%s #%d: %s decodes as %v, want %v", path, i, head.Type, got, want)
			}
			met[head.Type] = true
			if ev.EventType() != head.Type || ev.EventOp() != head.Op {
				t.Errorf("%s #%d: type/op %q/%q, want %q/%q", path, i, ev.EventType(), ev.EventOp(), head.Type, head.Op)
			}
			if !bytes.Equal(ev.Raw(), raw) {
				t.Errorf("%s #%d: Raw is not the payload", path, i)
			}
		}
		for typ := range typedAs {
			if !met[typ] {
				t.Errorf("%s: no example of typed kind %s", path, typ)
			}
		}
	}
}

// TestDecodeTypedMembers checks the members of typed events against the
// examples' values, read independently with maps.
func TestDecodeTypedMembers(t *testing.T) {
	for _, raw := range loadExamples(t, exampleFiles[0]) {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		ev, err := consumer.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		num := func(k string) int64 { f, _ := m[k].(float64); return int64(f) }
		switch e := ev.(type) {
		case *consumer.MessageEvent:
			msg := m["message"].(map[string]any)
			if e.Message.ID != int64(msg["id"].(float64)) || e.Message.Subject != msg["subject"] || e.Message.StreamName() != msg["display_recipient"] || !e.Message.IsStream() || e.Message.Topic() != msg["subject"] {
				t.Errorf("message %+v from %s", e.Message, raw)
			}
		case *consumer.ReactionEvent:
			if e.MessageID != num("message_id") || e.EmojiName != m["emoji_name"] || e.User == nil || e.User.UserID != num("user_id") {
				t.Errorf("reaction %+v from %s", e, raw)
			}
		case *consumer.UpdateMessageEvent:
			if e.MessageID != num("message_id") || len(e.MessageIDs) != 2 || e.StreamName != m["stream_name"] || e.OrigSubject != m["orig_subject"] || e.Content == nil || *e.Content != m["content"] {
				t.Errorf("update_message %+v from %s", e, raw)
			}
		case *consumer.DeleteMessageEvent:
			if len(e.IDs()) == 0 || e.IDs()[0] != num("message_id") || e.MessageType != m["message_type"] {
				t.Errorf("delete_message %+v from %s", e, raw)
			}
		case *consumer.TypingEvent:
			if e.Sender.UserID == 0 || len(e.Recipients) != len(m["recipients"].([]any)) {
				t.Errorf("typing %+v from %s", e, raw)
			}
		case *consumer.PresenceEvent:
			if e.UserID != num("user_id") || e.Presence["website"].Status != "idle" || e.ServerTimestamp != m["server_timestamp"] {
				t.Errorf("presence %+v from %s", e, raw)
			}
		case *consumer.RealmUserEvent:
			p := m["person"].(map[string]any)
			if e.Person.UserID != int64(p["user_id"].(float64)) || !bytes.Contains(raw, e.PersonRaw) {
				t.Errorf("realm_user %+v from %s", e, raw)
			}
		case *consumer.SubmessageEvent:
			if e.MessageID != num("message_id") || e.Content != m["content"] || e.MsgType != "widget" {
				t.Errorf("submessage %+v from %s", e, raw)
			}
		case *consumer.UpdateMessageFlagsEvent:
			if e.Flag != m["flag"] || len(e.Messages) != 1 {
				t.Errorf("update_message_flags %+v from %s", e, raw)
			}
		case *consumer.SubscriptionEvent:
			if subs, ok := m["subscriptions"].([]any); ok && (len(e.Subscriptions) != len(subs) || e.Subscriptions[0].StreamID == 0 || len(e.Subscriptions[0].Raw) == 0) {
				t.Errorf("subscription %+v from %s", e, raw)
			}
		case *consumer.StreamEvent:
			if streams, ok := m["streams"].([]any); ok && (len(e.Streams) != len(streams) || e.Streams[0].Name == "") {
				t.Errorf("stream %+v from %s", e, raw)
			}
			if m["op"] == "update" && (e.StreamID != num("stream_id") || e.Property != m["property"]) {
				t.Errorf("stream update %+v from %s", e, raw)
			}
		}
	}
}

func TestDecodeDirectMessage(t *testing.T) {
	raw := []byte(`{"type":"message","id":3,"flags":["read"],"message":{"id":9,"type":"private","sender_id":8,"display_recipient":[{"id":8,"user_id":8,"email":"a@x","full_name":"A"},{"user_id":10,"email":"b@x","full_name":"B"}],"subject":"","content":"hi","timestamp":1}}`)
	ev, err := consumer.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	m := ev.(*consumer.MessageEvent)
	rs := m.Message.DirectRecipients()
	if !m.Message.IsDirect() || m.Message.StreamName() != "" || len(rs) != 2 || rs[1].UserID != 10 || rs[1].FullName != "B" {
		t.Errorf("direct message %+v, recipients %+v", m.Message, rs)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		generic  bool // a *Generic comes with the error
	}{
		{"not JSON", `nope`, false},
		{"array", `[{"type":"message"}]`, false},
		{"no type", `{"id":1}`, false},
		{"type not a string", `{"type":7}`, false},
		{"typed kind with a wrong member", `{"type":"reaction","id":4,"op":"add","message_id":"x"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := consumer.Decode([]byte(tc.in))
			if err == nil {
				t.Fatalf("Decode(%s) = %T, want an error", tc.in, ev)
			}
			if !tc.generic {
				if !errors.Is(err, consumer.ErrNotEvent) || ev != nil {
					t.Errorf("Decode(%s) = %v, %v; want nil, ErrNotEvent", tc.in, ev, err)
				}
				return
			}
			var te *consumer.TypeError
			g, ok := ev.(*consumer.Generic)
			if !errors.As(err, &te) || !ok || g.ID != 4 || g.EventOp() != "add" || string(g.Raw()) != tc.in {
				t.Errorf("Decode(%s) = %#v, %v; want a *Generic and a *TypeError", tc.in, ev, err)
			}
		})
	}
	// Any other type with unusual members is simply generic.
	ev, err := consumer.Decode([]byte(`{"type":"future_thing","id":"odd","op":3}`))
	if _, ok := ev.(*consumer.Generic); err != nil || !ok || ev.EventType() != "future_thing" {
		t.Errorf("unknown type: %#v, %v", ev, err)
	}
}

// TestHeaderNames holds the package's header names equal to the bridge's.
func TestHeaderNames(t *testing.T) {
	for ours, theirs := range map[string]string{
		consumer.HeaderEventType:   mapping.HeaderEventType,
		consumer.HeaderEventOp:     mapping.HeaderEventOp,
		consumer.HeaderEventID:     mapping.HeaderEventID,
		consumer.HeaderQueueID:     mapping.HeaderQueueID,
		consumer.HeaderSite:        mapping.HeaderSite,
		consumer.HeaderDedupKey:    mapping.HeaderDedupKey,
		consumer.HeaderStreamID:    mapping.HeaderStreamID,
		consumer.HeaderStream:      mapping.HeaderStream,
		consumer.HeaderTopic:       mapping.HeaderTopic,
		consumer.HeaderMessageID:   mapping.HeaderMessageID,
		consumer.HeaderBackfill:    mapping.HeaderBackfill,
		consumer.HeaderContentType: mapping.HeaderContentType,
	} {
		if ours != theirs {
			t.Errorf("consumer has header %q where mapping has %q", ours, theirs)
		}
	}
}

// TestParseHeadersGolden reads the headers of the mapping's golden files
// (what the bridge publishes for each example) into Metadata.
func TestParseHeadersGolden(t *testing.T) {
	files, err := os.ReadDir("../mapping/testdata/golden")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile("../mapping/testdata/golden/" + f.Name())
		if err != nil {
			t.Fatal(err)
		}
		var g struct {
			DedupKey string   `json:"dedup_key"`
			Headers  []string `json:"headers"`
			Event    struct {
				ID        int64
				Type, Op  string
				MessageID int64 `json:"message_id"`
			} `json:"event"`
		}
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		h := map[string][]string{}
		for _, line := range g.Headers {
			k, v, _ := strings.Cut(line, ": ")
			h[k] = append(h[k], v)
		}
		m := consumer.ParseHeaders(h)
		n++
		if m.DedupKey != g.DedupKey || m.EventType != g.Event.Type || m.EventOp != g.Event.Op || m.EventID != g.Event.ID || (g.Event.MessageID != 0 && m.MessageID != g.Event.MessageID) || m.Site != "chat.example.com" || m.ContentType != "application/json" || m.Backfill {
			t.Errorf("%s: metadata %+v", f.Name(), m)
		}
		if sid := h[consumer.HeaderStreamID]; len(sid) == 1 && (m.StreamID == 0 || m.StreamName == "" && h[consumer.HeaderStream] != nil) {
			t.Errorf("%s: stream in metadata %+v", f.Name(), m)
		}
	}
	if n < 71 {
		t.Errorf("%d golden files, want 71", n)
	}
}

func TestDecodeMessageControl(t *testing.T) {
	meta := func(op string) consumer.Metadata { return consumer.Metadata{EventType: "bridge", EventOp: op} }
	ev, err := consumer.DecodeMessage(meta("resync"), []byte(`{"type":"resync","old_queue_id":"q1","new_queue_id":"q2","messages_backfilled":3,"detected_at":"2026-01-01T00:00:00Z","unrecoverable":"typing"}`))
	if r, ok := ev.(*consumer.Resync); err != nil || !ok || r.OldQueueID != "q1" || r.MessagesBackfilled != 3 || r.DetectedAt.IsZero() || r.Unrecoverable != "typing" || r.EventType() != "bridge" || r.EventOp() != "resync" {
		t.Errorf("resync: %#v, %v", ev, err)
	}
	ev, err = consumer.DecodeMessage(meta("state"), []byte(`{"result":"success","queue_id":"q2","last_event_id":-1,"max_message_id":40,"realm_users":[{"user_id":1}]}`))
	s, ok := ev.(*consumer.State)
	var rest struct {
		RealmUsers []struct {
			UserID int64 `json:"user_id"`
		} `json:"realm_users"`
	}
	if err != nil || !ok || s.QueueID != "q2" || s.LastEventID != -1 || s.MaxMessageID != 40 || s.Unmarshal(&rest) != nil || len(rest.RealmUsers) != 1 {
		t.Errorf("state: %#v, %v", ev, err)
	}
	ev, err = consumer.DecodeMessage(meta("invalid"), []byte(`{"reason":"bad","id":"7","event":{"type":"x y"}}`))
	if i, ok := ev.(*consumer.Invalid); err != nil || !ok || i.ID != "7" || string(i.Event) != `{"type":"x y"}` {
		t.Errorf("invalid: %#v, %v", ev, err)
	}
	ev, err = consumer.DecodeMessage(meta("future"), []byte(`{"what":1}`))
	if g, ok := ev.(*consumer.Generic); err != nil || !ok || g.EventType() != "bridge" || g.EventOp() != "future" {
		t.Errorf("unknown kind: %#v, %v", ev, err)
	}
	if ev, err := consumer.DecodeMessage(meta("resync"), []byte(`[]`)); err == nil {
		t.Errorf("resync that is no object: %#v", ev)
	}
	// Without the control headers, a payload is a Zulip event.
	if ev, err := consumer.DecodeMessage(consumer.Metadata{}, []byte(`{"type":"heartbeat","id":3}`)); err != nil || ev.EventType() != "heartbeat" {
		t.Errorf("heartbeat: %#v, %v", ev, err)
	}
}
