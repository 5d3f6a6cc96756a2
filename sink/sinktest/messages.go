package sinktest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/zulip-bridge/zulip-bridge/mapping"
)

const (
	// Prefix is the first token of every subject and topic the suite
	// publishes to; a NATS harness creates its stream on Prefix + ".>".
	Prefix = "zulip"
	// Site is the Zulip site the suite's messages claim to come from.
	Site = "zulip.example.com"
	// QueueID is the Zulip event queue the suite's events claim to come from.
	QueueID = "1700000000:4242"
	// LargePayloadSize is the payload size of the large-message subtest:
	// about 1 MB, under the 1 MiB default limits of NATS and Kafka once the
	// headers are added.
	LargePayloadSize = 1_000_000
)

// Topics returns the Kafka topics the suite publishes to, for harnesses that
// create topics up front.
func Topics() []string {
	return []string{Prefix + ".message", Prefix + ".typing", Prefix + ".realm_user"}
}

// conversation is one ordering scope of the suite's messages: the events
// that must stay in order share one of these.
type conversation struct {
	eventType, op string
	subject       string
	topic         string
	key           string // empty: the event belongs to no conversation
	streamID      int
	stream        string
	zulipTopic    string
	dm            bool
}

// conversations mixes stream messages (two Zulip topics on one stream share
// a NATS subject but not a Kafka key), a direct-message conversation,
// typing, and an event with no key at all.
var conversations = []conversation{
	{eventType: "message", subject: "zulip.message.stream.12", topic: "zulip.message", key: "stream:12:greetings", streamID: 12, stream: "Denmark", zulipTopic: "greetings"},
	{eventType: "message", subject: "zulip.message.stream.12", topic: "zulip.message", key: "stream:12:lunch plans 🍕", streamID: 12, stream: "Denmark", zulipTopic: "lunch plans 🍕"},
	{eventType: "message", subject: "zulip.message.stream.7", topic: "zulip.message", key: "stream:7:logo", streamID: 7, stream: "design & ux", zulipTopic: "logo"},
	{eventType: "message", subject: "zulip.message.direct", topic: "zulip.message", key: "dm:3,9", dm: true},
	{eventType: "typing", op: "start", subject: "zulip.typing.start.stream.12", topic: "zulip.typing", key: "stream:12", streamID: 12, stream: "Denmark", zulipTopic: "greetings"},
	{eventType: "realm_user", op: "update", subject: "zulip.realm_user.update", topic: "zulip.realm_user"},
}

// Generator builds messages the way the mapping would: subjects, topics,
// keys, the headers of docs/names.md, a JSON payload and a dedup key that
// is unique across everything one Generator returns. The zero value starts
// at event id 1 and message id 1.
type Generator struct {
	eventID   int
	messageID int
	n         int
}

// Batch returns n messages spread over several conversations, interleaved
// so that every conversation has messages before and after the others'.
func (g *Generator) Batch(n int) []*mapping.Message {
	out := make([]*mapping.Message, n)
	for i := range out {
		out[i] = g.next(conversations[(g.n*5+g.n/len(conversations))%len(conversations)], "")
		g.n++
	}
	return out
}

// Large returns one stream message whose payload is exactly size bytes.
func (g *Generator) Large(size int) *mapping.Message {
	m := g.next(conversations[0], "")
	pad := size - len(g.payload(conversations[0], m, ""))
	if pad < 0 {
		panic(fmt.Sprintf("sinktest: a payload of %d bytes is smaller than an empty message", size))
	}
	m.Payload = g.payload(conversations[0], m, strings.Repeat("x", pad))
	if len(m.Payload) != size {
		panic(fmt.Sprintf("sinktest: large payload is %d bytes, want %d", len(m.Payload), size))
	}
	return m
}

func (g *Generator) next(c conversation, content string) *mapping.Message {
	g.eventID++
	m := &mapping.Message{Subject: c.subject, Topic: c.topic}
	if c.key != "" {
		m.Key = []byte(c.key)
	}
	eventID := strconv.Itoa(g.eventID)
	m.DedupKey = Site + "/" + QueueID + "/" + eventID
	var messageID string
	if c.eventType == "message" {
		g.messageID++
		messageID = strconv.Itoa(g.messageID)
		m.DedupKey = Site + "/message/" + messageID
	}
	h := []mapping.Header{{Key: mapping.HeaderEventType, Value: c.eventType}}
	if c.op != "" {
		h = append(h, mapping.Header{Key: mapping.HeaderEventOp, Value: c.op})
	}
	h = append(h,
		mapping.Header{Key: mapping.HeaderEventID, Value: eventID},
		mapping.Header{Key: mapping.HeaderQueueID, Value: QueueID},
		mapping.Header{Key: mapping.HeaderSite, Value: Site},
		mapping.Header{Key: mapping.HeaderDedupKey, Value: m.DedupKey},
	)
	if c.streamID != 0 {
		h = append(h,
			mapping.Header{Key: mapping.HeaderStreamID, Value: strconv.Itoa(c.streamID)},
			mapping.Header{Key: mapping.HeaderStream, Value: c.stream},
			mapping.Header{Key: mapping.HeaderTopic, Value: c.zulipTopic},
		)
	}
	if messageID != "" {
		h = append(h, mapping.Header{Key: mapping.HeaderMessageID, Value: messageID})
	}
	m.Headers = append(h, mapping.Header{Key: mapping.HeaderContentType, Value: "application/json"})
	if content == "" {
		content = fmt.Sprintf(`h\u00e9llo  <b>w\u00f6rld</b> \"%d\" ✓`, g.eventID)
	}
	m.Payload = g.payload(c, m, content)
	return m
}

// payload renders the event's JSON the way a Zulip server would send it,
// with escapes, non-ASCII text and spacing that a sink must not touch.
func (g *Generator) payload(c conversation, m *mapping.Message, content string) []byte {
	switch c.eventType {
	case "message":
		to := fmt.Sprintf(`"stream_id": %d, "subject": %q`, c.streamID, c.zulipTopic)
		if c.dm {
			to = `"display_recipient": [{"id": 3}, {"id": 9}]`
		}
		return fmt.Appendf(nil, `{"type": "message", "id": %d, "message": {"id": %d, "type": %q, %s, "content": "%s"}, "flags": []}`,
			g.eventID, g.messageID, map[bool]string{true: "private", false: "stream"}[c.dm], to, content)
	case "typing":
		return fmt.Appendf(nil, `{"type":"typing","op":"start","message_type":"stream","stream_id":%d,"topic":%q,"sender":{"user_id":9},"id":%d,"note":"%s"}`,
			c.streamID, c.zulipTopic, g.eventID, content)
	default:
		return fmt.Appendf(nil, `{"type":%q,"op":%q,"person":{"user_id":3,"full_name":"%s"},"id":%d}`,
			c.eventType, c.op, content, g.eventID)
	}
}
