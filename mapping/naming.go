package mapping

import (
	"slices"
	"strconv"
)

// scope is what an event concerns, for the last tokens of its default
// subject: one stream (".stream.<id>"), a direct-message conversation
// (".direct"), or neither.
type scope uint8

const (
	scopeNone scope = iota
	scopeStream
	scopeDirect
)

// keyKind is the shape of an event's Kafka key (docs/names.md).
type keyKind uint8

const (
	keyNone        keyKind = iota
	keyStreamTopic         // stream:<id>:<topic>
	keyStream              // stream:<id>
	keyDirect              // dm:<sorted user ids>
)

// naming is what an event's names, key and headers are derived from.
type naming struct {
	scope     scope
	streamID  int64
	stream    str // stream name, when the event says it
	topic     str // Zulip topic, when the event concerns one
	messageID num // the message the event is about (Zulip-Message-Id)
	key       keyKind
	userIDs   []int64 // sorted, distinct: the direct-message conversation
	time      num     // Unix seconds, when the event says when it happened
}

// classify decides what an event concerns. The decision table, per event
// type (every type of Zulip's API; docs/names.md fixes the shape):
//
//	type                    | scope                              | stream name      | topic
//	message                 | message.type stream: its stream_id | display_recipient| subject
//	                        | message.type private: direct       |                  |
//	typing                  | message_type stream: stream_id     |                  | topic
//	                        | direct/private or absent: direct   |                  |
//	delete_message          | message_type stream: stream_id     |                  | topic
//	                        | private: direct                    |                  |
//	update_message          | stream_id (the stream before a     | stream_name      | orig_subject
//	                        | move) when present; else none: it  |                  | (before a move)
//	                        | is a direct message or a rendering |                  |
//	                        | update, the event does not say     |                  |
//	stream create/delete    | streams[0].stream_id if exactly one| streams[0].name  |
//	stream update           | stream_id                          | name             |
//	subscription add/remove | subscriptions[0] if exactly one    | its name         |
//	subscription update     | stream_id                          |                  |
//	subscription peer_*     | stream_ids[0] if exactly one       |                  |
//	user_topic              | stream_id                          |                  | topic_name
//	any other type          | stream_id when present, else none  |                  |
//
// reaction, submessage and update_message_flags name messages but not
// their stream, so they concern no stream. "channel" and "direct" are
// accepted wherever Zulip says "stream" and "private". A stream id that is
// not a non-negative integer counts as absent.
//
// typ is the event's decoded type.
func classify(ev *event, typ string) naming {
	var n naming
	if typ == "message" {
		m := &ev.msg
		n.messageID = m.id
		n.time = m.timestamp
		switch recipientKind(m.typ) {
		case scopeStream:
			if m.streamID.ok {
				n.scope, n.streamID = scopeStream, m.streamID.v
				n.stream = m.recipient
				n.topic = m.subject
				if !n.topic.ok {
					n.topic = m.topic
				}
				n.key = keyStream
				if n.topic.ok {
					n.key = keyStreamTopic
				}
			}
		case scopeDirect:
			n.scope = scopeDirect
			if len(m.recipientIDs) > 0 {
				n.key = keyDirect
				n.userIDs = slices.Compact(slices.Sorted(slices.Values(m.recipientIDs)))
			}
		}
		return n
	}

	n.messageID = ev.messageID
	if typ == "update_message" {
		n.time = ev.editTimestamp
	}
	switch {
	case ev.messageType.ok:
		switch recipientKind(ev.messageType) {
		case scopeStream:
			n.streamFrom(ev.streamID, str{})
		case scopeDirect:
			n.scope = scopeDirect
		}
	case typ == "typing":
		// Before feature level 58 every typing event was about a direct
		// message and had no message_type.
		n.scope = scopeDirect
	case ev.streamID.ok:
		name := ev.streamName
		if typ == "stream" {
			name = ev.name
		}
		n.streamFrom(ev.streamID, name)
	case typ == "stream" && ev.streams.n == 1:
		n.streamFrom(ev.streams.streamID, ev.streams.name)
	case typ == "subscription" && ev.subscriptions.n == 1:
		n.streamFrom(ev.subscriptions.streamID, ev.subscriptions.name)
	case typ == "subscription" && ev.streamIDs.n == 1:
		n.streamFrom(ev.streamIDs.streamID, str{})
	}
	if n.scope == scopeStream {
		for _, t := range []str{ev.topic, ev.topicName, ev.origSubject} {
			if t.ok {
				n.topic = t
				break
			}
		}
	}
	return n
}

// streamFrom sets a stream scope when id is valid.
func (n *naming) streamFrom(id num, name str) {
	if id.ok {
		n.scope, n.streamID, n.stream, n.key = scopeStream, id.v, name, keyStream
	}
}

// recipientKind reads a message type or typing/delete message_type.
func recipientKind(s str) scope {
	switch {
	case s.is("stream"), s.is("channel"):
		return scopeStream
	case s.is("private"), s.is("direct"):
		return scopeDirect
	}
	return scopeNone
}

// appendKey appends the Kafka key of docs/names.md.
func (n *naming) appendKey(dst []byte) []byte {
	switch n.key {
	case keyStreamTopic:
		dst = strconv.AppendInt(append(dst, "stream:"...), n.streamID, 10)
		return n.topic.appendTo(append(dst, ':'))
	case keyStream:
		return strconv.AppendInt(append(dst, "stream:"...), n.streamID, 10)
	case keyDirect:
		dst = append(dst, "dm:"...)
		for i, id := range n.userIDs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, id, 10)
		}
	}
	return dst
}
