package consumer

import (
	"strconv"
	"strings"
)

// Header names the bridge sets (docs/names.md). The package defines them
// itself so that a service imports nothing else of the bridge; a test holds
// them equal to the bridge's own.
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
	HeaderBackfill    = "Zulip-Backfill"
	HeaderContentType = "Content-Type"
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
	// HeaderNatsMsgID is JetStream's deduplication header; the bridge sets
	// it to the dedup key.
	HeaderNatsMsgID = "Nats-Msg-Id"
)

// ControlType is the Zulip-Event-Type of the bridge's own control events;
// their Zulip-Event-Op is one of the Control* kinds.
const ControlType = "bridge"

// Control event kinds (Zulip-Event-Op of a ControlType event).
const (
	ControlResync  = "resync"
	ControlState   = "state"
	ControlInvalid = "invalid"
)

// Metadata is what the headers and the broker say about one message.
type Metadata struct {
	// EventType and EventOp are Zulip-Event-Type and Zulip-Event-Op ("bridge"
	// and the kind for control events).
	EventType, EventOp string
	// EventID is Zulip-Event-Id, the event's id in its queue; -1 when absent
	// (backfilled messages, control events).
	EventID int64
	// QueueID is Zulip-Queue-Id, Site Zulip-Site (the site host).
	QueueID, Site string
	// DedupKey is Zulip-Dedup-Key: the same key for the same event however
	// often it is delivered (for messages, across queues too).
	DedupKey string
	// StreamID (0 when absent), StreamName and TopicName are Zulip-Stream-Id,
	// Zulip-Stream and Zulip-Topic, when the event concerns one stream.
	StreamID   int64
	StreamName string
	TopicName  string
	// MessageID is Zulip-Message-Id; 0 when absent.
	MessageID int64
	// Backfill is true on messages recovered with GET /messages after a
	// queue loss (Zulip-Backfill: true).
	Backfill bool
	// ContentType is Content-Type (or the Kafka CloudEvents binding's
	// content-type).
	ContentType string
	// Traceparent and Tracestate are the W3C trace context, when tracing is on.
	Traceparent, Tracestate string
	// Headers holds every header, first value of each.
	Headers map[string]string

	// Subject and Sequence are the NATS subject and the JetStream stream
	// sequence (JetStream only).
	Subject  string
	Sequence uint64
	// KafkaTopic, Partition, Offset and Key locate a Kafka record (Kafka
	// only); Key is empty for events of no conversation.
	KafkaTopic string
	Partition  int
	Offset     int64
	Key        string
	// Attempt counts deliveries of this message to this consumer, from 1.
	Attempt int
}

// IsControl reports whether the message is one of the bridge's control
// events.
func (m Metadata) IsControl() bool { return m.EventType == ControlType }

// ParseHeaders reads the bridge's headers from h, keyed by header name
// (each name's first value counts; names match regardless of case when
// there is no exact match). It fills the Zulip fields of Metadata, not the
// broker's.
func ParseHeaders(h map[string][]string) Metadata {
	flat := make(map[string]string, len(h))
	for k, v := range h {
		if len(v) > 0 {
			flat[k] = v[0]
		}
	}
	return metadataFrom(flat)
}

func metadataFrom(h map[string]string) Metadata {
	get := func(key string) string {
		if v, ok := h[key]; ok {
			return v
		}
		for k, v := range h {
			if strings.EqualFold(k, key) {
				return v
			}
		}
		return ""
	}
	m := Metadata{
		EventType:   get(HeaderEventType),
		EventOp:     get(HeaderEventOp),
		EventID:     -1,
		QueueID:     get(HeaderQueueID),
		Site:        get(HeaderSite),
		DedupKey:    get(HeaderDedupKey),
		StreamName:  get(HeaderStream),
		TopicName:   get(HeaderTopic),
		Backfill:    get(HeaderBackfill) == "true",
		ContentType: get(HeaderContentType),
		Traceparent: get(HeaderTraceparent),
		Tracestate:  get(HeaderTracestate),
		Headers:     h,
	}
	if v, err := strconv.ParseInt(get(HeaderEventID), 10, 64); err == nil {
		m.EventID = v
	}
	m.StreamID, _ = strconv.ParseInt(get(HeaderStreamID), 10, 64)
	m.MessageID, _ = strconv.ParseInt(get(HeaderMessageID), 10, 64)
	return m
}
