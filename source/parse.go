package source

import (
	"bytes"
	"encoding/json"
	"errors"
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
}

// parseEvents decodes a GET /events response. Every event must be an object
// with an integer id and a type, ids strictly increasing and above after
// (the last_event_id asked with); a message event must carry message.id.
// Anything else is an error, never a panic: the fuzz test holds it to that.
func parseEvents(body []byte, after int64) ([]Event, error) {
	var r struct {
		Result string             `json:"result"`
		Events *[]json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	if r.Result != "success" {
		return nil, fmt.Errorf("result %q, want success", r.Result)
	}
	if r.Events == nil {
		return nil, errors.New("no events field")
	}
	out := make([]Event, 0, len(*r.Events))
	prev := after
	for i, raw := range *r.Events {
		var h struct {
			ID      *int64          `json:"id"`
			Type    *string         `json:"type"`
			Message json.RawMessage `json:"message"`
		}
		if len(raw) == 0 || raw[0] != '{' {
			return nil, fmt.Errorf("event %d is not an object", i)
		}
		if err := json.Unmarshal(raw, &h); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		switch {
		case h.ID == nil:
			return nil, fmt.Errorf("event %d has no id", i)
		case h.Type == nil || *h.Type == "":
			return nil, fmt.Errorf("event %d (id %d) has no type", i, *h.ID)
		case *h.ID <= prev:
			return nil, fmt.Errorf("event %d has id %d, not above %d", i, *h.ID, prev)
		}
		ev := Event{ID: *h.ID, Type: *h.Type, Raw: raw, Heartbeat: *h.Type == "heartbeat"}
		if ev.Type == "message" {
			var m struct {
				ID *int64 `json:"id"`
			}
			if err := json.Unmarshal(h.Message, &m); err != nil || m.ID == nil || *m.ID <= 0 {
				return nil, fmt.Errorf("message event %d has no message.id", ev.ID)
			}
			ev.MessageID = *m.ID
		}
		prev = ev.ID
		out = append(out, ev)
	}
	return out, nil
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
