package mapping

// Message is one Zulip event turned into a broker message: everything a sink
// needs to publish it, and nothing it would have to work out for itself.
// Sinks treat a Message as read-only.
type Message struct {
	// Subject is the NATS subject (docs/names.md).
	Subject string
	// Topic is the Kafka topic (docs/names.md).
	Topic string
	// Key is the Kafka record key that keeps one conversation in order;
	// nil when the event belongs to no conversation.
	Key []byte
	// Headers are the message headers in a fixed order, values free of
	// control characters.
	Headers []Header
	// Payload is the event's JSON object exactly as the server sent it.
	Payload []byte
	// DedupKey identifies the event across restarts (and, for messages,
	// across queues): it becomes Nats-Msg-Id and the Zulip-Dedup-Key header.
	// <site host>/message/<message id> for message events, live or
	// backfilled; <site host>/<queue id>/<event id> for other events;
	// <site host>/<queue id>/bridge.<kind> for control events.
	DedupKey string
	// Event is what the mapper read from the event (id, type, op, message
	// id and timestamp); the pipeline and the sinks do not use it, the
	// bridge's telemetry takes the message timestamp from it.
	Event EventInfo
}

// Header is one message header. Headers are kept as an ordered slice, not a
// map, so that what a consumer sees is deterministic.
type Header struct {
	Key   string
	Value string
}

// Header names of docs/names.md.
const (
	HeaderEventType   = "Zulip-Event-Type"
	HeaderEventOp     = "Zulip-Event-Op"
	HeaderEventID     = "Zulip-Event-Id"
	HeaderQueueID     = "Zulip-Queue-Id"
	HeaderSite        = "Zulip-Site"
	HeaderDedupKey    = "Zulip-Dedup-Key"
	HeaderStreamID    = "Zulip-Stream-Id"
	HeaderStream      = "Zulip-Stream"
	HeaderTopic       = "Zulip-Topic"
	HeaderMessageID   = "Zulip-Message-Id"
	HeaderContentType = "Content-Type"
	// HeaderBackfill is "true" on messages that MapBackfilled recovered
	// with GET /messages after a queue was lost; live events lack it.
	HeaderBackfill = "Zulip-Backfill"
)

// Get returns the value of the first header named key, and whether there is one.
func (m *Message) Get(key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}
