package source

import (
	"bytes"
	"encoding/json"
	"fmt"
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
}

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

// parseMessages decodes a GET /messages response.
func parseMessages(body []byte, anchor int64) ([]Message, bool, error) {
	var r struct {
		Result      string            `json:"result"`
		Messages    []json.RawMessage `json:"messages"`
		FoundNewest bool              `json:"found_newest"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, false, err
	}
	if r.Result != "success" {
		return nil, false, fmt.Errorf("result %q, want success", r.Result)
	}
	out := make([]Message, 0, len(r.Messages))
	prev := anchor
	for i, raw := range r.Messages {
		var m struct {
			ID    *int64   `json:"id"`
			Flags []string `json:"flags"`
		}
		if err := json.Unmarshal(raw, &m); err != nil || !bytes.HasPrefix(raw, []byte("{")) {
			return nil, false, fmt.Errorf("message %d is not an object", i)
		}
		if m.ID == nil || *m.ID <= prev {
			return nil, false, fmt.Errorf("message %d: id missing or not above %d", i, prev)
		}
		prev = *m.ID
		out = append(out, Message{ID: *m.ID, Raw: raw, Flags: m.Flags})
	}
	return out, r.FoundNewest, nil
}
