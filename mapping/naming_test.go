package mapping

import (
	"strings"
	"testing"
)

// TestDecisionTable covers the rows of classify's table that the
// documented examples do not: direct messages, stream typing and deletes,
// update_message without a stream, lists of more than one stream, old and
// new spellings.
func TestDecisionTable(t *testing.T) {
	const none = "<none>"
	m := newMapper(t, Config{})
	tests := []struct {
		name    string
		event   string
		subject string
		key     string
		headers map[string]string // value none: the header must be absent
	}{
		{
			name:    "direct message, ids sorted as numbers and deduplicated",
			event:   `{"type":"message","id":5,"message":{"id":77,"type":"private","display_recipient":[{"id":10,"email":"a@x"},{"id":8},{"id":10}],"subject":"","timestamp":1}}`,
			subject: "zulip.message.direct",
			key:     "dm:8,10",
			headers: map[string]string{HeaderMessageID: "77", HeaderStreamID: none, HeaderStream: none, HeaderTopic: none},
		},
		{
			name:    "direct message with the newer spelling",
			event:   `{"type":"message","id":5,"message":{"id":77,"type":"direct","display_recipient":[{"id":3}]}}`,
			subject: "zulip.message.direct",
			key:     "dm:3",
		},
		{
			name:    "direct message without recipient ids has no key",
			event:   `{"type":"message","id":5,"message":{"id":77,"type":"private","display_recipient":"oops"}}`,
			subject: "zulip.message.direct",
		},
		{
			name:    "stream message with the newer spelling and topic member",
			event:   `{"type":"message","id":5,"message":{"id":78,"type":"channel","stream_id":12,"display_recipient":"Denmark","topic":"lunch"}}`,
			subject: "zulip.message.stream.12",
			key:     "stream:12:lunch",
			headers: map[string]string{HeaderStreamID: "12", HeaderStream: "Denmark", HeaderTopic: "lunch"},
		},
		{
			name:    "stream message with an empty topic",
			event:   `{"type":"message","id":5,"message":{"id":78,"type":"stream","stream_id":12,"display_recipient":"Denmark","subject":""}}`,
			subject: "zulip.message.stream.12",
			key:     "stream:12:",
			headers: map[string]string{HeaderTopic: ""},
		},
		{
			name:    "stream message without a topic is keyed by stream",
			event:   `{"type":"message","id":5,"message":{"id":78,"type":"stream","stream_id":12}}`,
			subject: "zulip.message.stream.12",
			key:     "stream:12",
		},
		{
			name:    "stream message with escaped strings",
			event:   `{"type":"messag\u0065","id":5,"message":{"id":78,"type":"str\u0065am","stream_id":12,"display_recipient":"D\u00e9n\nmark","subject":"\ud83c\udf55 \"x\""}}`,
			subject: "zulip.message.stream.12",
			key:     "stream:12:🍕 \"x\"",
			headers: map[string]string{HeaderStream: "Dénmark", HeaderTopic: "🍕 \"x\""},
		},
		{
			name:    "stream message without stream id falls back to no scope",
			event:   `{"type":"message","id":5,"message":{"id":78,"type":"stream","stream_id":"12","subject":"t"}}`,
			subject: "zulip.message",
			headers: map[string]string{HeaderStreamID: none, HeaderTopic: none},
		},
		{
			name:    "typing in a stream",
			event:   `{"type":"typing","op":"start","id":1,"message_type":"stream","stream_id":12,"topic":"lunch","sender":{"user_id":9}}`,
			subject: "zulip.typing.start.stream.12",
			key:     "stream:12",
			headers: map[string]string{HeaderStreamID: "12", HeaderTopic: "lunch", HeaderStream: none},
		},
		{
			name:    "typing before feature level 58 is direct",
			event:   `{"type":"typing","op":"stop","id":1,"recipients":[{"user_id":3}],"sender":{"user_id":3}}`,
			subject: "zulip.typing.stop.direct",
		},
		{
			name:    "typing with the old private spelling",
			event:   `{"type":"typing","op":"start","id":1,"message_type":"private"}`,
			subject: "zulip.typing.start.direct",
		},
		{
			name:    "delete of a stream message",
			event:   `{"type":"delete_message","id":2,"message_type":"stream","stream_id":12,"topic":"lunch","message_ids":[1,2]}`,
			subject: "zulip.delete_message.stream.12",
			key:     "stream:12",
			headers: map[string]string{HeaderTopic: "lunch", HeaderMessageID: none},
		},
		{
			name:    "update_message without stream: direct message or rendering update",
			event:   `{"type":"update_message","id":3,"message_id":58,"rendering_only":true,"user_id":null}`,
			subject: "zulip.update_message",
			headers: map[string]string{HeaderMessageID: "58", HeaderStreamID: none},
		},
		{
			name:    "update_message content edit of a stream message",
			event:   `{"type":"update_message","id":3,"message_id":58,"stream_id":5,"stream_name":"Verona","content":"x"}`,
			subject: "zulip.update_message.stream.5",
			key:     "stream:5",
			headers: map[string]string{HeaderStream: "Verona", HeaderTopic: none},
		},
		{
			name:    "stream create of two streams concerns neither",
			event:   `{"type":"stream","op":"create","id":4,"streams":[{"stream_id":1,"name":"a"},{"stream_id":2,"name":"b"}]}`,
			subject: "zulip.stream.create",
		},
		{
			name:    "subscription add of two streams concerns neither",
			event:   `{"type":"subscription","op":"add","id":4,"subscriptions":[{"stream_id":1,"name":"a"},{"stream_id":2,"name":"b"}]}`,
			subject: "zulip.subscription.add",
		},
		{
			name:    "peer_add on two streams concerns neither",
			event:   `{"type":"subscription","op":"peer_add","id":4,"stream_ids":[1,2],"user_ids":[3]}`,
			subject: "zulip.subscription.peer_add",
		},
		{
			name:    "unknown event type with a stream_id",
			event:   `{"type":"channel_folder","op":"update","id":4,"stream_id":7}`,
			subject: "zulip.channel_folder.update.stream.7",
			key:     "stream:7",
		},
		{
			name:    "reaction names a message, not a stream",
			event:   `{"type":"reaction","op":"add","id":4,"message_id":9}`,
			subject: "zulip.reaction.add",
			headers: map[string]string{HeaderMessageID: "9"},
		},
		{
			name:    "empty op counts as none",
			event:   `{"type":"realm","op":"","id":4}`,
			subject: "zulip.realm",
			headers: map[string]string{HeaderEventOp: none},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := m.Map([]byte(tt.event), testQueue)
			if err != nil {
				t.Fatal(err)
			}
			checkMessage(t, msg)
			if msg.Subject != tt.subject {
				t.Errorf("subject %q, want %q", msg.Subject, tt.subject)
			}
			if string(msg.Key) != tt.key {
				t.Errorf("key %q, want %q", msg.Key, tt.key)
			}
			wantTopic := "zulip." + strings.Split(tt.subject, ".")[1]
			if msg.Topic != wantTopic {
				t.Errorf("topic %q, want %q", msg.Topic, wantTopic)
			}
			for k, want := range tt.headers {
				got, ok := msg.Get(k)
				switch {
				case want == none && ok:
					t.Errorf("header %s = %q, want none", k, got)
				case want != none && (!ok || got != want):
					t.Errorf("header %s = %q (present %v), want %q", k, got, ok, want)
				}
			}
		})
	}
}

// TestDedupKeys: message events are keyed by message across queues, other
// events by queue and event id.
func TestDedupKeys(t *testing.T) {
	m := newMapper(t, Config{})
	msgEvent := []byte(`{"type":"message","id":5,"message":{"id":77,"type":"private","display_recipient":[{"id":1}]}}`)
	a, err := m.Map(msgEvent, "queue-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Map(msgEvent, "queue-b")
	if err != nil {
		t.Fatal(err)
	}
	if a.DedupKey != testHost+"/message/77" || b.DedupKey != a.DedupKey {
		t.Errorf("message dedup keys %q and %q, want both %q", a.DedupKey, b.DedupKey, testHost+"/message/77")
	}
	other, err := m.Map([]byte(`{"type":"heartbeat","id":42}`), "queue-a")
	if err != nil {
		t.Fatal(err)
	}
	if other.DedupKey != testHost+"/queue-a/42" {
		t.Errorf("heartbeat dedup key %q, want %q", other.DedupKey, testHost+"/queue-a/42")
	}
	if a.Event != (EventInfo{ID: 5, Type: "message", MessageID: 77}) {
		t.Errorf("event info %+v", a.Event)
	}
	if other.Event != (EventInfo{ID: 42, Type: "heartbeat"}) {
		t.Errorf("event info %+v", other.Event)
	}
}
