package consumer

import "encoding/json"

// Event is one decoded event: a typed value (*MessageEvent, *ReactionEvent,
// ..., the control events *Resync, *State, *Invalid) or, for every other
// type, *Generic. Every Event keeps the payload it was decoded from.
type Event interface {
	// EventType is the event's "type" ("message", "reaction", ...), as
	// Zulip-Event-Type says; "bridge" for control events.
	EventType() string
	// EventOp is the event's "op", empty when it has none; the kind
	// ("resync", "state", "invalid") for control events.
	EventOp() string
	// Raw is the payload exactly as published, the event's JSON object.
	Raw() json.RawMessage
}

// Base holds what every Zulip event has; the typed events embed it.
type Base struct {
	// ID is the event's id in its queue; 0 for backfilled messages, which
	// no queue delivered (their Metadata.Backfill is true).
	ID   int64  `json:"id"`
	Type string `json:"type"`
	Op   string `json:"op,omitempty"`
	raw  json.RawMessage
}

func (b *Base) EventType() string    { return b.Type }
func (b *Base) EventOp() string      { return b.Op }
func (b *Base) Raw() json.RawMessage { return b.raw }

// Generic is an event of a type without a typed value here (or one whose
// members did not have the types Zulip documents): Raw has all of it.
type Generic struct {
	Base
}

// Unmarshal decodes the event's JSON into v, for the members a service
// needs of a type this package does not model.
func (g *Generic) Unmarshal(v any) error { return json.Unmarshal(g.raw, v) }

// UserRef names a user, as events carry them (sender, recipients, user).
type UserRef struct {
	UserID   int64  `json:"user_id"`
	Email    string `json:"email"`
	FullName string `json:"full_name,omitempty"`
}

// MessageEvent is a new message (type "message"), live or backfilled.
type MessageEvent struct {
	Base
	Message Message `json:"message"`
	// Flags are the bot's flags on the message (read, mentioned, ...).
	Flags []string `json:"flags"`
}

// Message is Zulip's message object.
type Message struct {
	ID             int64  `json:"id"`
	SenderID       int64  `json:"sender_id"`
	SenderEmail    string `json:"sender_email"`
	SenderFullName string `json:"sender_full_name"`
	// Type is "stream" (or "channel") for a stream message, "private" (or
	// "direct") for a direct message.
	Type        string `json:"type"`
	StreamID    int64  `json:"stream_id,omitempty"`
	RecipientID int64  `json:"recipient_id"`
	// Subject is the topic of a stream message ("" for direct messages).
	Subject string `json:"subject"`
	// Content is Markdown, or HTML when the bridge registered with
	// apply_markdown (ContentType says which).
	Content     string `json:"content"`
	ContentType string `json:"content_type,omitempty"`
	Timestamp   int64  `json:"timestamp"`
	Client      string `json:"client,omitempty"`
	IsMeMessage bool   `json:"is_me_message,omitempty"`
	// DisplayRecipient is the stream's name (a JSON string) for stream
	// messages and the list of participants for direct messages: see
	// StreamName and DirectRecipients.
	DisplayRecipient json.RawMessage   `json:"display_recipient"`
	Reactions        []json.RawMessage `json:"reactions,omitempty"`
	Submessages      []json.RawMessage `json:"submessages,omitempty"`
	AvatarURL        *string           `json:"avatar_url,omitempty"`
}

// IsStream reports whether the message went to a stream (channel).
func (m *Message) IsStream() bool { return m.Type == "stream" || m.Type == "channel" }

// IsDirect reports whether the message is a direct (private) message.
func (m *Message) IsDirect() bool { return m.Type == "private" || m.Type == "direct" }

// Topic is the topic of a stream message.
func (m *Message) Topic() string { return m.Subject }

// StreamName is the stream's name for a stream message, else "".
func (m *Message) StreamName() string {
	var s string
	if m.IsStream() && json.Unmarshal(m.DisplayRecipient, &s) == nil {
		return s
	}
	return ""
}

// DirectRecipients are the participants of a direct message (the sender
// included), else nil.
func (m *Message) DirectRecipients() []UserRef {
	var rs []UserRef
	if m.IsDirect() && json.Unmarshal(m.DisplayRecipient, &rs) == nil {
		return rs
	}
	return nil
}

// ReactionEvent is an emoji reaction added or removed (op "add", "remove").
type ReactionEvent struct {
	Base
	MessageID    int64    `json:"message_id"`
	UserID       int64    `json:"user_id"`
	User         *UserRef `json:"user,omitempty"`
	EmojiName    string   `json:"emoji_name"`
	EmojiCode    string   `json:"emoji_code"`
	ReactionType string   `json:"reaction_type"`
}

// UpdateMessageEvent is a message edited, moved or re-rendered.
type UpdateMessageEvent struct {
	Base
	UserID        *int64   `json:"user_id,omitempty"` // absent for rendering-only updates
	RenderingOnly bool     `json:"rendering_only"`
	MessageID     int64    `json:"message_id"`
	MessageIDs    []int64  `json:"message_ids"`
	Flags         []string `json:"flags"`
	EditTimestamp int64    `json:"edit_timestamp"`
	// StreamID and StreamName are the stream before a move.
	StreamID      int64  `json:"stream_id,omitempty"`
	StreamName    string `json:"stream_name,omitempty"`
	NewStreamID   int64  `json:"new_stream_id,omitempty"`
	PropagateMode string `json:"propagate_mode,omitempty"`
	// OrigSubject is the topic before a move, Subject the new one.
	OrigSubject         string  `json:"orig_subject,omitempty"`
	Subject             string  `json:"subject,omitempty"`
	OrigContent         *string `json:"orig_content,omitempty"`
	OrigRenderedContent *string `json:"orig_rendered_content,omitempty"`
	Content             *string `json:"content,omitempty"`
	RenderedContent     *string `json:"rendered_content,omitempty"`
	IsMeMessage         bool    `json:"is_me_message,omitempty"`
}

// DeleteMessageEvent is one or more messages deleted.
type DeleteMessageEvent struct {
	Base
	// MessageID is set for a client without bulk_message_deletion,
	// MessageIDs for one with it.
	MessageID   int64   `json:"message_id,omitempty"`
	MessageIDs  []int64 `json:"message_ids,omitempty"`
	MessageType string  `json:"message_type"`
	StreamID    int64   `json:"stream_id,omitempty"`
	Topic       string  `json:"topic,omitempty"`
}

// IDs returns the deleted message ids, whichever member carries them.
func (e *DeleteMessageEvent) IDs() []int64 {
	if len(e.MessageIDs) > 0 {
		return e.MessageIDs
	}
	if e.MessageID != 0 {
		return []int64{e.MessageID}
	}
	return nil
}

// TypingEvent is someone starting or stopping to type (op "start", "stop").
type TypingEvent struct {
	Base
	// MessageType is "stream" or "direct" ("private" before feature level 58).
	MessageType string    `json:"message_type"`
	Sender      UserRef   `json:"sender"`
	Recipients  []UserRef `json:"recipients,omitempty"`
	StreamID    int64     `json:"stream_id,omitempty"`
	Topic       string    `json:"topic,omitempty"`
}

// SubscriptionEvent is a change of the bot's subscriptions (op "add",
// "remove", "update") or of another user's (op "peer_add", "peer_remove").
type SubscriptionEvent struct {
	Base
	// Subscriptions: add and remove.
	Subscriptions []Subscription `json:"subscriptions,omitempty"`
	// StreamID, Property, Value: update.
	StreamID int64           `json:"stream_id,omitempty"`
	Property string          `json:"property,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`
	// StreamIDs, UserIDs: peer_add and peer_remove.
	StreamIDs []int64 `json:"stream_ids,omitempty"`
	UserIDs   []int64 `json:"user_ids,omitempty"`
}

// Subscription is a stream subscription's main members; Raw has the rest.
type Subscription struct {
	StreamID    int64           `json:"stream_id"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InviteOnly  bool            `json:"invite_only,omitempty"`
	Color       string          `json:"color,omitempty"`
	IsMuted     bool            `json:"is_muted,omitempty"`
	Subscribers []int64         `json:"subscribers,omitempty"`
	Raw         json.RawMessage `json:"-"`
}

func (s *Subscription) UnmarshalJSON(b []byte) error {
	type plain Subscription
	if err := json.Unmarshal(b, (*plain)(s)); err != nil {
		return err
	}
	s.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// StreamEvent is a stream created, deleted (op "create", "delete", with
// Streams) or changed (op "update", with StreamID, Name, Property, Value).
type StreamEvent struct {
	Base
	Streams  []Stream        `json:"streams,omitempty"`
	StreamID int64           `json:"stream_id,omitempty"`
	Name     string          `json:"name,omitempty"`
	Property string          `json:"property,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`
}

// Stream is a stream's main members; Raw has the rest.
type Stream struct {
	StreamID    int64           `json:"stream_id"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InviteOnly  bool            `json:"invite_only,omitempty"`
	IsWebPublic bool            `json:"is_web_public,omitempty"`
	Raw         json.RawMessage `json:"-"`
}

func (s *Stream) UnmarshalJSON(b []byte) error {
	type plain Stream
	if err := json.Unmarshal(b, (*plain)(s)); err != nil {
		return err
	}
	s.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// RealmUserEvent is a user added, removed or changed (op "add", "remove",
// "update"). Person holds the user's id and whichever members the op
// carries; PersonRaw all of them.
type RealmUserEvent struct {
	Base
	Person    Person          `json:"-"`
	PersonRaw json.RawMessage `json:"person"`
}

// Person is the members of a realm_user event's person that most services
// use; members the event does not carry are zero.
type Person struct {
	UserID   int64  `json:"user_id"`
	Email    string `json:"email,omitempty"`
	FullName string `json:"full_name,omitempty"`
	IsBot    bool   `json:"is_bot,omitempty"`
	IsActive *bool  `json:"is_active,omitempty"`
	Role     int    `json:"role,omitempty"`
	Timezone string `json:"timezone,omitempty"`
}

// PresenceEvent is a user's presence changing.
type PresenceEvent struct {
	Base
	UserID          int64   `json:"user_id"`
	Email           string  `json:"email"`
	ServerTimestamp float64 `json:"server_timestamp"`
	// Presence maps each client ("website", ...) to its state.
	Presence map[string]PresenceClient `json:"presence"`
}

// PresenceClient is one client's presence.
type PresenceClient struct {
	Client    string `json:"client"`
	Status    string `json:"status"` // "active" or "idle"
	Timestamp int64  `json:"timestamp"`
	Pushable  bool   `json:"pushable"`
}

// UpdateMessageFlagsEvent is a flag (read, starred, ...) set or cleared on
// messages (op "add", "remove").
type UpdateMessageFlagsEvent struct {
	Base
	Flag     string  `json:"flag"`
	Messages []int64 `json:"messages"`
	All      bool    `json:"all"`
	// MessageDetails (op "remove" of "read") describes each message, keyed
	// by message id.
	MessageDetails map[string]json.RawMessage `json:"message_details,omitempty"`
}

// SubmessageEvent is a widget's submessage (a poll's vote, a todo item).
type SubmessageEvent struct {
	Base
	MessageID    int64  `json:"message_id"`
	SubmessageID int64  `json:"submessage_id"`
	SenderID     int64  `json:"sender_id"`
	MsgType      string `json:"msg_type"`
	// Content is the widget's own JSON, as a string.
	Content string `json:"content"`
}
