package mapping

import "github.com/zulip-bridge/zulip-bridge/source"

// event holds the members of a Zulip event that the mapper uses. Members
// of the wrong JSON type are treated as absent (the event is still
// published, under a less specific name), except type and id, without
// which there is nothing to publish.
type event struct {
	typ, op       str
	id            num
	messageType   str // typing, delete_message: "stream"/"channel" or "direct"/"private"
	streamID      num
	streamIDs     firstOf
	streams       firstOf // stream create/delete
	subscriptions firstOf // subscription add/remove
	topic         str     // typing, delete_message
	origSubject   str     // update_message: topic before a move
	topicName     str     // user_topic
	streamName    str     // update_message
	name          str     // stream update
	messageID     num
	editTimestamp num
	msg           message
}

// firstOf describes a JSON array by its length and, when its first
// element is an object naming a stream, that stream.
type firstOf struct {
	n        int
	streamID num
	name     str
}

// message holds the members of a Zulip message object: the "message" of a
// message event, or one message of GET /messages.
type message struct {
	id           num
	typ          str // "stream"/"channel" or "private"/"direct"
	streamID     num
	recipient    str     // display_recipient of a stream message: the stream name
	recipientIDs []int64 // display_recipient of a direct message: user ids
	subject      str
	topic        str // newer servers may say topic instead of subject
	timestamp    num
	flags        []byte // raw "flags" value
	// flagsCut is the byte range to delete to remove the "flags" member
	// from the object, separator included; flagsCut[1] == 0 when absent.
	flagsCut [2]int
}

// member bits, to reject an event that names a member twice: parsers
// disagree on which copy wins, so a consumer could read a different type
// or id than the one the event was published under.
const (
	bitType uint32 = 1 << iota
	bitOp
	bitID
	bitMessageType
	bitStreamID
	bitStreamIDs
	bitStreams
	bitSubscriptions
	bitTopic
	bitSubject
	bitOrigSubject
	bitTopicName
	bitStreamName
	bitName
	bitMessageID
	bitEditTimestamp
	bitMessage
	bitFlags
	bitDisplayRecipient
	bitTimestamp
)

// parseEvent reads one event object into ev. It validates the whole input
// as JSON, except the values listed in jumps (see scanner), which it steps
// over.
func parseEvent(raw []byte, jumps []source.Span, ev *event) error {
	s := &scanner{data: raw, jumps: jumps}
	if s.peek() != '{' {
		return s.errorf("an event must be a JSON object")
	}
	var seen uint32
	err := s.object(0, func(key []byte) error {
		var bit uint32
		var err error
		switch string(key) {
		case "type":
			bit, err = bitType, s.readStr(1, &ev.typ)
		case "op":
			bit, err = bitOp, s.readStr(1, &ev.op)
		case "id":
			bit, err = bitID, s.readNum(1, &ev.id)
		case "message_type":
			bit, err = bitMessageType, s.readStr(1, &ev.messageType)
		case "stream_id":
			bit, err = bitStreamID, s.readNum(1, &ev.streamID)
		case "stream_ids":
			bit, err = bitStreamIDs, s.streamIDList(1, &ev.streamIDs)
		case "streams":
			bit, err = bitStreams, s.streamList(1, &ev.streams)
		case "subscriptions":
			bit, err = bitSubscriptions, s.streamList(1, &ev.subscriptions)
		case "topic":
			bit, err = bitTopic, s.readStr(1, &ev.topic)
		case "orig_subject":
			bit, err = bitOrigSubject, s.readStr(1, &ev.origSubject)
		case "topic_name":
			bit, err = bitTopicName, s.readStr(1, &ev.topicName)
		case "stream_name":
			bit, err = bitStreamName, s.readStr(1, &ev.streamName)
		case "name":
			bit, err = bitName, s.readStr(1, &ev.name)
		case "message_id":
			bit, err = bitMessageID, s.readNum(1, &ev.messageID)
		case "edit_timestamp":
			bit, err = bitEditTimestamp, s.readNum(1, &ev.editTimestamp)
		case "message":
			bit = bitMessage
			if s.peek() == '{' {
				err = s.message(1, &ev.msg)
			} else {
				err = s.skip(1)
			}
		default:
			return s.skip(1)
		}
		if seen&bit != 0 {
			return s.errorf("member %q appears twice", string(key))
		}
		seen |= bit
		return err
	})
	if err != nil {
		return err
	}
	return s.end()
}

// parseMessage reads one message object, as GET /messages returns it,
// stepping over the values listed in jumps. It is read at depth 1, as the
// message member of the event MapBackfilled makes of it, so that nothing
// in it may nest deeper than it could in that event.
func parseMessage(raw []byte, jumps []source.Span, m *message) error {
	s := &scanner{data: raw, jumps: jumps}
	if s.peek() != '{' {
		return s.errorf("a message must be a JSON object")
	}
	if err := s.message(1, m); err != nil {
		return err
	}
	return s.end()
}

func (s *scanner) message(depth int, m *message) error {
	var seen uint32
	prevEnd := -1 // end of the previous member's value
	cutPending := false
	return s.object(depth, func(key []byte) error {
		if cutPending {
			// The member after a leading "flags": cut up to its name.
			m.flagsCut[1] = s.member
			cutPending = false
		}
		keyStart := s.member
		var bit uint32
		var err error
		switch string(key) {
		case "id":
			bit, err = bitID, s.readNum(depth+1, &m.id)
		case "type":
			bit, err = bitType, s.readStr(depth+1, &m.typ)
		case "stream_id":
			bit, err = bitStreamID, s.readNum(depth+1, &m.streamID)
		case "subject":
			bit, err = bitSubject, s.readStr(depth+1, &m.subject)
		case "topic":
			bit, err = bitTopic, s.readStr(depth+1, &m.topic)
		case "timestamp":
			bit, err = bitTimestamp, s.readNum(depth+1, &m.timestamp)
		case "display_recipient":
			bit, err = bitDisplayRecipient, s.recipients(depth+1, m)
		case "flags":
			bit = bitFlags
			s.ws()
			start := s.pos
			if err = s.skip(depth + 1); err == nil {
				m.flags = s.data[start:s.pos]
				if prevEnd >= 0 {
					// Not the first member: cut from the end of the
					// previous value, taking the comma before "flags".
					m.flagsCut = [2]int{prevEnd, s.pos}
				} else {
					// The first member: cut up to the next key, taking
					// the comma after it, or to the closing brace.
					m.flagsCut = [2]int{keyStart, s.pos}
					cutPending = true
				}
			}
		default:
			err = s.skip(depth + 1)
		}
		prevEnd = s.pos
		if bit != 0 {
			if seen&bit != 0 {
				return s.errorf("member %q of the message appears twice", string(key))
			}
			seen |= bit
		}
		return err
	})
}

// recipients reads display_recipient: a stream name for stream messages, a
// list of users for direct messages.
func (s *scanner) recipients(depth int, m *message) error {
	switch s.peek() {
	case '"':
		return s.readStr(depth, &m.recipient)
	case '[':
		return s.array(depth, func(int) error {
			if s.peek() != '{' {
				return s.skip(depth + 1)
			}
			return s.object(depth+1, func(key []byte) error {
				if string(key) != "id" {
					return s.skip(depth + 2)
				}
				var id num
				if err := s.readNum(depth+2, &id); err != nil {
					return err
				}
				if id.ok {
					m.recipientIDs = append(m.recipientIDs, id.v)
				}
				return nil
			})
		})
	default:
		return s.skip(depth)
	}
}

// streamIDList reads an array of stream ids, keeping its length and first id.
func (s *scanner) streamIDList(depth int, dst *firstOf) error {
	*dst = firstOf{}
	if s.peek() != '[' {
		return s.skip(depth)
	}
	return s.array(depth, func(i int) error {
		dst.n++
		if i == 0 {
			return s.readNum(depth+1, &dst.streamID)
		}
		return s.skip(depth + 1)
	})
}

// streamList reads an array of stream or subscription objects, keeping its
// length and the first one's stream_id and name.
func (s *scanner) streamList(depth int, dst *firstOf) error {
	*dst = firstOf{}
	if s.peek() != '[' {
		return s.skip(depth)
	}
	return s.array(depth, func(i int) error {
		dst.n++
		if i != 0 || s.peek() != '{' {
			return s.skip(depth + 1)
		}
		var seen uint32
		return s.object(depth+1, func(key []byte) error {
			var bit uint32
			var err error
			switch string(key) {
			case "stream_id":
				bit, err = bitStreamID, s.readNum(depth+2, &dst.streamID)
			case "name":
				bit, err = bitName, s.readStr(depth+2, &dst.name)
			default:
				return s.skip(depth + 2)
			}
			if seen&bit != 0 {
				return s.errorf("member %q appears twice", string(key))
			}
			seen |= bit
			return err
		})
	})
}
