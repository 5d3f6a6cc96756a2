package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Event is one event of a queue.
type Event struct {
	// ID is the event's id in its queue: increasing, with gaps, starting over
	// in every new queue. Not a message id.
	ID   int64
	Type string
	// Raw is the event's JSON object exactly as the server sent it.
	Raw json.RawMessage
	// Heartbeat marks the server's keep-alive events: they carry nothing
	// but must be acknowledged like any event.
	Heartbeat bool
	// MessageID is message.id of a message event; zero for other types.
	MessageID int64
	// Size is the length of the event's JSON in bytes.
	Size int
	// Oversized marks an event larger than Config.MaxResponseBytes: it was
	// read through but not kept, so Raw is nil; ID, Type, MessageID and
	// Size are set, so that it can still be acknowledged and reported.
	Oversized bool
	// Skipped locates, in increasing order, the values inside Raw that
	// the stream scanned and found well formed without reading them
	// (members of the event, and of its message object, other than the
	// ids and the type; only those of SkipMin bytes or more): a later
	// reader of Raw can step over them instead of scanning them again
	// (mapping does). Nil when Raw is.
	Skipped []Span
}

// Span is the byte range [Start, End) of one JSON value in Event.Raw.
type Span struct{ Start, End int32 }

// SkipMin is the shortest value Event.Skipped lists: stepping over a
// shorter one saves less than listing it costs.
const SkipMin = 24

// messageOf extracts the message of a message event, with the flags that
// the event carries beside it.
func messageOf(ev Event) (Message, error) {
	var e struct {
		Message json.RawMessage `json:"message"`
		Flags   []string        `json:"flags"`
	}
	if err := json.Unmarshal(ev.Raw, &e); err != nil || len(e.Message) == 0 {
		return Message{}, fmt.Errorf("event %d: no message object", ev.ID)
	}
	return Message{ID: ev.MessageID, Raw: e.Message, Flags: e.Flags}, nil
}

// parseMessages decodes a GET /messages response in one pass (the event
// stream's scanner, reading each message's id and flags on the way):
// every message an object with an id above the previous one, the first
// above anchor.
func parseMessages(body []byte, anchor int64) ([]Message, bool, error) {
	return readMessages(bytes.NewReader(body), anchor, len(body))
}

// readMessages is parseMessages of the response r reads, whose messages
// are at most maxMessage bytes each (a larger one is an error).
func readMessages(r io.Reader, anchor int64, maxMessage int) ([]Message, bool, error) {
	s := newEventStream(r, anchor, maxMessage)
	s.list = "messages"
	var out []Message
	for {
		ev, err := s.next()
		if errors.Is(err, io.EOF) {
			return out, s.foundNewest, nil
		}
		if err != nil {
			return nil, false, err
		}
		if ev.Oversized {
			return nil, false, fmt.Errorf("message %d is over %d bytes", ev.ID, maxMessage)
		}
		out = append(out, Message{ID: ev.ID, Raw: ev.Raw, Flags: s.flags, Skipped: ev.Skipped})
	}
}
