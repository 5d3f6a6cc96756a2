package consumer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrNotEvent is returned by Decode for a payload that is not a JSON object
// with a string "type" member.
var ErrNotEvent = errors.New("consumer: not a Zulip event: want a JSON object with a string \"type\"")

// TypeError is returned, with a *Generic holding the whole event, when an
// event of a typed kind has a member of another JSON type than Zulip
// documents: the event is not lost, only its typed view.
type TypeError struct {
	Type string
	Err  error
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("consumer: %s event does not decode as documented: %v", e.Type, e.Err)
}

func (e *TypeError) Unwrap() error { return e.Err }

// Decode decodes one Zulip event (a message's payload) into its typed value
// (*MessageEvent, *ReactionEvent, *UpdateMessageEvent, *DeleteMessageEvent,
// *TypingEvent, *SubscriptionEvent, *StreamEvent, *RealmUserEvent,
// *PresenceEvent, *UpdateMessageFlagsEvent, *SubmessageEvent), or into a
// *Generic for any other type. The Event keeps payload as its Raw (the
// slice itself, not a copy).
//
// The error is ErrNotEvent for a payload that is no event, and a
// *TypeError (with a *Generic Event) for a typed kind whose members do not
// have their documented JSON types. Control events are told apart by their
// headers, not their payload: use DecodeMessage for everything a broker
// delivers.
func Decode(payload []byte) (Event, error) {
	var head struct {
		Type *string `json:"type"`
		Op   any     `json:"op"`
	}
	if !isObject(payload) || json.Unmarshal(payload, &head) != nil || head.Type == nil {
		return nil, ErrNotEvent
	}
	var (
		ev   Event
		base *Base
	)
	switch *head.Type {
	case "message":
		e := &MessageEvent{}
		ev, base = e, &e.Base
	case "reaction":
		e := &ReactionEvent{}
		ev, base = e, &e.Base
	case "update_message":
		e := &UpdateMessageEvent{}
		ev, base = e, &e.Base
	case "delete_message":
		e := &DeleteMessageEvent{}
		ev, base = e, &e.Base
	case "typing":
		e := &TypingEvent{}
		ev, base = e, &e.Base
	case "subscription":
		e := &SubscriptionEvent{}
		ev, base = e, &e.Base
	case "stream":
		e := &StreamEvent{}
		ev, base = e, &e.Base
	case "realm_user":
		e := &RealmUserEvent{}
		ev, base = e, &e.Base
	case "presence":
		e := &PresenceEvent{}
		ev, base = e, &e.Base
	case "update_message_flags":
		e := &UpdateMessageFlagsEvent{}
		ev, base = e, &e.Base
	case "submessage":
		e := &SubmessageEvent{}
		ev, base = e, &e.Base
	}
	if ev != nil {
		err := json.Unmarshal(payload, ev)
		if err == nil {
			if e, ok := ev.(*RealmUserEvent); ok && len(e.PersonRaw) > 0 {
				err = json.Unmarshal(e.PersonRaw, &e.Person)
			}
		}
		if err == nil {
			base.raw = payload
			return ev, nil
		}
		g := generic(payload)
		return g, &TypeError{Type: *head.Type, Err: err}
	}
	return generic(payload), nil
}

// generic decodes what every event has, leniently: members of unexpected
// JSON types are left zero.
func generic(payload []byte) *Generic {
	g := &Generic{}
	var head struct {
		ID   json.RawMessage `json:"id"`
		Type string          `json:"type"`
		Op   json.RawMessage `json:"op"`
	}
	_ = json.Unmarshal(payload, &head)
	g.Type = head.Type
	_ = json.Unmarshal(head.ID, &g.ID)
	_ = json.Unmarshal(head.Op, &g.Op)
	g.raw = payload
	return g
}

func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// DecodeMessage decodes what a broker delivered: a control event (by its
// headers, meta.EventType "bridge") into *Resync, *State or *Invalid, any
// other payload with Decode.
func DecodeMessage(meta Metadata, payload []byte) (Event, error) {
	if !meta.IsControl() {
		return Decode(payload)
	}
	if !isObject(payload) {
		return nil, fmt.Errorf("consumer: bridge.%s control event: payload is not a JSON object", meta.EventOp)
	}
	var (
		ev  Event
		err error
	)
	switch meta.EventOp {
	case ControlResync:
		e := &Resync{}
		err = json.Unmarshal(payload, e)
		e.raw, ev = payload, e
	case ControlState:
		e := &State{}
		err = json.Unmarshal(payload, e)
		e.raw, ev = payload, e
	case ControlInvalid:
		e := &Invalid{}
		err = json.Unmarshal(payload, e)
		e.raw, ev = payload, e
	default:
		// A kind of a later bridge: generic, typed by its kind.
		g := generic(payload)
		g.Type, g.Op = ControlType, meta.EventOp
		return g, nil
	}
	if err != nil {
		return nil, fmt.Errorf("consumer: bridge.%s control event: %w", meta.EventOp, err)
	}
	return ev, nil
}

// Resync is the payload of <prefix>.bridge.resync: the bridge's Zulip queue
// was lost, a new one registered, and the messages of the gap backfilled.
// Everything else of the gap (Unrecoverable says what) is gone from Zulip's
// events API: resynchronise it from the new queue's State (published with
// BRIDGE_PUBLISH_INITIAL_STATE=true) or Zulip's REST API.
type Resync struct {
	Type           string `json:"type"` // "resync"
	Site           string `json:"site"` // the site URL
	OldQueueID     string `json:"old_queue_id"`
	OldLastEventID int64  `json:"old_last_event_id"`
	NewQueueID     string `json:"new_queue_id"`
	// LastSuccessAt is the old queue's last good poll; zero when the loss
	// was found on the first poll after a restart.
	LastSuccessAt time.Time `json:"last_success_at"`
	DetectedAt    time.Time `json:"detected_at"`
	RegisteredAt  time.Time `json:"registered_at"`
	// The messages with ids in (FromMessageID, ToMessageID] were published
	// again (Metadata.Backfill), MessagesBackfilled of them new.
	FromMessageID      int64  `json:"from_message_id"`
	ToMessageID        int64  `json:"to_message_id"`
	MessagesBackfilled int    `json:"messages_backfilled"`
	Unrecoverable      string `json:"unrecoverable"`
	raw                json.RawMessage
}

func (*Resync) EventType() string      { return ControlType }
func (*Resync) EventOp() string        { return ControlResync }
func (r *Resync) Raw() json.RawMessage { return r.raw }

// State is the payload of <prefix>.bridge.state: Zulip's register response
// (the initial state) of a new queue, byte for byte. The members here are
// those every response has; Unmarshal reads the rest (what
// BRIDGE_ZULIP_FETCH_EVENT_TYPES asked for: subscriptions, realm_users ...).
type State struct {
	QueueID           string `json:"queue_id"`
	LastEventID       int64  `json:"last_event_id"`
	MaxMessageID      int64  `json:"max_message_id"`
	ZulipFeatureLevel int    `json:"zulip_feature_level"`
	ZulipVersion      string `json:"zulip_version"`
	raw               json.RawMessage
}

func (*State) EventType() string      { return ControlType }
func (*State) EventOp() string        { return ControlState }
func (s *State) Raw() json.RawMessage { return s.raw }

// Unmarshal decodes the whole register response into v.
func (s *State) Unmarshal(v any) error { return json.Unmarshal(s.raw, v) }

// Invalid is the payload of <prefix>.bridge.invalid: an event the bridge
// could not publish as it is, in its place (under its dedup key). Either
// it could not be mapped (Event holds it, Reason says why), or it is larger
// than the broker or BRIDGE_ZULIP_MAX_RESPONSE_BYTES takes (Type, Bytes and
// Limit say what; the event stays in Zulip, a message can be fetched by
// its id).
type Invalid struct {
	Reason string `json:"reason"`
	// ID is the event id, or "message/<id>" for a message.
	ID    string          `json:"id"`
	Event json.RawMessage `json:"event,omitempty"`
	// Type of the set-aside event, its DedupKey, Subject and Topic (too
	// large only).
	Type     string `json:"type,omitempty"`
	DedupKey string `json:"dedup_key,omitempty"`
	Subject  string `json:"subject,omitempty"`
	Topic    string `json:"topic,omitempty"`
	Bytes    int    `json:"bytes,omitempty"`
	Limit    int    `json:"limit,omitempty"`
	raw      json.RawMessage
}

func (*Invalid) EventType() string      { return ControlType }
func (*Invalid) EventOp() string        { return ControlInvalid }
func (i *Invalid) Raw() json.RawMessage { return i.raw }
