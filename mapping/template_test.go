package mapping

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestTemplateErrors(t *testing.T) {
	tests := []struct {
		subject, topic string
		want           string // in the error
	}{
		{subject: "{prefix}..{type}", want: "segment 2 is empty"},
		{subject: ".{type}", want: "must start with the segment {prefix}"},
		{subject: "{type}.{prefix}", want: "must start with the segment {prefix}"},
		{subject: "x{prefix}.{type}", want: "must start with the segment {prefix}"},
		{subject: "{prefix}.{type}.", want: "segment 3 is empty"},
		{subject: "{prefix}.{stream_name}", want: "unknown placeholder {stream_name}"},
		{subject: "{prefix}.{type", want: "'{' without '}'"},
		{subject: "{prefix}.type}", want: "'}' without '{'"},
		{subject: "{prefix}.{stream}{topic}", want: "at most one placeholder per segment"},
		{subject: "{prefix}.{stream}-{topic}", want: "at most one placeholder per segment"},
		{subject: "{prefix}.a b", want: "not allowed in a NATS subject"},
		{subject: "{prefix}.*", want: "not allowed in a NATS subject"},
		{subject: "{prefix}.x>", want: "not allowed in a NATS subject"},
		{subject: "{prefix}.é", want: "not allowed in a NATS subject"},
		{subject: "{op}.{scope}", want: "must start with the segment {prefix}"},
		{subject: strings.Repeat("a", 1001), want: "the limit is 1000"},
		{topic: "{prefix}.x:{type}", want: "not allowed in a Kafka topic"},
		{topic: "{prefix}.{type}/x", want: "not allowed in a Kafka topic"},
		{topic: "{topic}", want: "must start with the segment {prefix}"},
	}
	for _, tt := range tests {
		cfg := Config{SubjectTemplate: tt.subject, TopicTemplate: tt.topic}
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", cfg, err, tt.want)
			continue
		}
		variable := "BRIDGE_SUBJECT_TEMPLATE"
		if tt.topic != "" {
			variable = "BRIDGE_TOPIC_TEMPLATE"
		}
		if !strings.Contains(err.Error(), variable) || !strings.Contains(err.Error(), "example: "+variable+"=") {
			t.Errorf("error %q does not name %s and give an example", err, variable)
		}
		if _, err := New(cfg, mustSite(testSite)); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}

func TestTemplateRender(t *testing.T) {
	stream := []byte(`{"type":"message","id":5,"message":{"id":78,"type":"stream","stream_id":12,"display_recipient":"design team","subject":"v1.2 > v1.1"}}`)
	direct := []byte(`{"type":"message","id":6,"message":{"id":79,"type":"private","display_recipient":[{"id":1}]}}`)
	typing := []byte(`{"type":"typing","op":"start","id":7,"message_type":"stream","stream_id":12,"topic":""}`)
	heartbeat := []byte(`{"type":"heartbeat","id":8}`)
	tests := []struct {
		subject, topic string
		prefix         string
		want           [4][2]string // subject and topic for the four events
	}{
		{
			want: [4][2]string{
				{"zulip.message.stream.12", "zulip.message"},
				{"zulip.message.direct", "zulip.message"},
				{"zulip.typing.start.stream.12", "zulip.typing"},
				{"zulip.heartbeat", "zulip.heartbeat"},
			},
		},
		{
			prefix:  "acme.zulip",
			subject: "{prefix}.{type}.{op}.{scope}.{topic}",
			topic:   "{prefix}.{type}.{op}",
			want: [4][2]string{
				{"acme.zulip.message.stream.12.v1_2E2_20_3E_20v1_2E1", "acme.zulip.message"},
				{"acme.zulip.message.direct", "acme.zulip.message"},
				{"acme.zulip.typing.start.stream.12._", "acme.zulip.typing.start"},
				{"acme.zulip.heartbeat", "acme.zulip.heartbeat"},
			},
		},
		{
			subject: "{prefix}.{site}.s{stream_id}.{stream}.t-{topic}",
			topic:   "{prefix}.site-{site}.{type}.s{stream_id}",
			want: [4][2]string{
				{"zulip.chat_2Eexample_2Ecom.s12.design_20team.t-v1_2E2_20_3E_20v1_2E1", "zulip.site-chat_2Eexample_2Ecom.message.s12"},
				{"zulip.chat_2Eexample_2Ecom.s.t-", "zulip.site-chat_2Eexample_2Ecom.message.s"},
				{"zulip.chat_2Eexample_2Ecom.s12.t-_", "zulip.site-chat_2Eexample_2Ecom.typing.s12"},
				{"zulip.chat_2Eexample_2Ecom.s.t-", "zulip.site-chat_2Eexample_2Ecom.heartbeat.s"},
			},
		},
	}
	for _, tt := range tests {
		m := newMapper(t, Config{SubjectPrefix: tt.prefix, SubjectTemplate: tt.subject, TopicTemplate: tt.topic})
		for i, ev := range [][]byte{stream, direct, typing, heartbeat} {
			msg, err := m.Map(ev, testQueue)
			if err != nil {
				t.Fatalf("%q: %v", tt.subject, err)
			}
			checkMessage(t, msg)
			if got := [2]string{msg.Subject, msg.Topic}; got != tt.want[i] {
				t.Errorf("templates %q / %q, event %d: got %q, want %q", tt.subject, tt.topic, i, got, tt.want[i])
			}
		}
	}
}

// TestNamesInjective: with stream names and topics substituted into names,
// two events that differ in either never share a subject or a topic.
func TestNamesInjective(t *testing.T) {
	m := newMapper(t, Config{
		SubjectTemplate: "{prefix}.{stream}.{topic}",
		TopicTemplate:   "{prefix}.s-{stream}.{topic}",
	})
	const alphabet = "ab._-_2E %*>\x00\xc3\xa9"
	rng := rand.New(rand.NewPCG(3, 4))
	word := func() string {
		var b strings.Builder
		for range rng.IntN(5) {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	subjects := make(map[string][2]string)
	topics := make(map[string][2]string)
	for range 50000 {
		pair := [2]string{word(), word()}
		// appendJSONString keeps invalid UTF-8 as it is, which
		// encoding/json would turn into U+FFFD and so merge strings.
		ev := fmt.Appendf(nil, `{"type":"message","id":1,"message":{"id":2,"type":"stream","stream_id":3,"display_recipient":%s,"subject":%s}}`,
			appendJSONString(nil, pair[0]), appendJSONString(nil, pair[1]))
		msg, err := m.Map(ev, testQueue)
		if err != nil {
			if errors.Is(err, ErrInvalidName) {
				continue // a Kafka topic over 249 characters
			}
			t.Fatalf("%s: %v", ev, err)
		}
		if prev, ok := subjects[msg.Subject]; ok && prev != pair {
			t.Fatalf("stream/topic %q and %q share the subject %q", prev, pair, msg.Subject)
		}
		subjects[msg.Subject] = pair
		if prev, ok := topics[msg.Topic]; ok && prev != pair {
			t.Fatalf("stream/topic %q and %q share the Kafka topic %q", prev, pair, msg.Topic)
		}
		topics[msg.Topic] = pair
	}
}

func TestRenderedNameTooLong(t *testing.T) {
	m := newMapper(t, Config{SubjectTemplate: "{prefix}.{topic}", TopicTemplate: "{prefix}.{topic}"})
	long := strings.Repeat("é", 100) // 200 bytes, 600 escaped
	ev := fmt.Appendf(nil, `{"type":"message","id":1,"message":{"id":2,"type":"stream","stream_id":3,"subject":%q}}`, long)
	if _, err := m.Map(ev, testQueue); !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), "the limit is 249") {
		t.Errorf("Map = %v, want ErrInvalidName about the 249 limit", err)
	}
	m = newMapper(t, Config{SubjectTemplate: "{prefix}.{topic}"})
	ev = fmt.Appendf(nil, `{"type":"message","id":1,"message":{"id":2,"type":"stream","stream_id":3,"subject":%q}}`, strings.Repeat("é", 400))
	if _, err := m.Map(ev, testQueue); !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), "the limit is 2048") {
		t.Errorf("Map = %v, want ErrInvalidName about the 2048 limit", err)
	}
}
