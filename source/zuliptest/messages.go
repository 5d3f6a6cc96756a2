package zuliptest

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"slices"
	"strconv"
	"strings"
)

// Message is a message in the simulator's store, as Messages returns it.
type Message struct {
	ID int64
	// Type is "stream" or "private", the spelling messages still use.
	Type        string
	SenderID    int64
	SenderEmail string
	// StreamID and Stream name the stream; zero and empty for direct
	// messages.
	StreamID int64
	Stream   string
	Topic    string
	// Content is the Markdown source as sent.
	Content string
	// RecipientIDs lists a direct message's participants, sender
	// included, ascending; nil for stream messages.
	RecipientIDs []int64
	// Timestamp is the Unix time of sending on the server clock.
	Timestamp int64
}

// SendRequest is a message to send with SendMessage; its fields take the
// same values as POST /api/v1/messages parameters.
type SendRequest struct {
	// Sender is the sender's email, any realm user; default the first
	// configured bot.
	Sender string
	// Type is "stream", "channel", "private" or "direct"; default
	// "stream".
	Type string
	// To is a stream name or id, or for a direct message a JSON list of
	// emails or user ids, or a comma-separated list of emails.
	To string
	// Topic is the stream message's topic.
	Topic string
	// Content is the Markdown content.
	Content string
}

type storedMessage struct {
	id          int64
	senderID    int64
	streamID    int64 // 0: direct message
	topic       string
	content     string
	recipients  []int64 // direct messages: participants, ascending
	recipientID int64   // Zulip's Recipient row id
	timestamp   int64
	client      string
}

// maxMessagesPerFetch is upstream's MAX_MESSAGES_PER_FETCH.
const maxMessagesPerFetch = 5000

// largerThanMaxMessageID is upstream's LARGER_THAN_MAX_MESSAGE_ID, the
// anchor reported for anchor=newest.
const largerThanMaxMessageID = 10000000000000000

// Recipient ids mimic Zulip's Recipient table: one row per stream, per
// user (one-to-one messages) and per group of participants.
const (
	recipientBaseUser   = 1000
	recipientBaseStream = 100000
	recipientBaseGroup  = 200000
)

// Messages returns the message store in id order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.messages))
	for _, m := range s.messages {
		out = append(out, s.exportMessage(m))
	}
	return out
}

func (s *Server) exportMessage(m *storedMessage) Message {
	out := Message{
		ID: m.id, Type: "stream", SenderID: m.senderID, StreamID: m.streamID,
		Topic: m.topic, Content: m.content, Timestamp: m.timestamp,
		RecipientIDs: slices.Clone(m.recipients),
	}
	if u := s.realm.usersByID[m.senderID]; u != nil {
		out.SenderEmail = u.Email
	}
	if m.streamID == 0 {
		out.Type = "private"
	} else {
		out.Stream = s.realm.streamsByID[m.streamID].Name
	}
	return out
}

// SendMessage sends a message as POST /messages does: it is stored with
// the next message id and fanned out as a message event to every queue
// that may see it and whose filters accept it.
func (s *Server) SendMessage(req SendRequest) (int64, error) {
	sender := s.realm.userByEmail(req.Sender)
	if req.Sender == "" {
		sender = s.realm.userByEmail(s.cfg.Bots[0].Email)
	}
	if sender == nil {
		return 0, fmt.Errorf("zuliptest: send message: sender %q is not a realm user", req.Sender)
	}
	if req.Type == "" {
		req.Type = "stream"
	}
	id, err := s.sendMessage(sender, req, "zuliptest")
	if err != nil {
		return 0, fmt.Errorf("zuliptest: send message: %s", err.msg)
	}
	return id, nil
}

// handleSendMessage is POST /api/v1/messages.
func (s *Server) handleSendMessage(c *call) {
	typ, ok := c.p.lookup("type")
	if !ok {
		c.fail(missingArgument("type"))
		return
	}
	to, ok := c.p.lookup("to")
	if !ok {
		c.fail(missingArgument("to"))
		return
	}
	content, ok := c.p.lookup("content")
	if !ok {
		c.fail(missingArgument("content"))
		return
	}
	topic, ok := c.p.lookup("topic")
	if !ok {
		topic = c.p.str("subject")
	}
	client := c.p.str("client")
	if client == "" {
		client, _, _ = strings.Cut(c.r.UserAgent(), "/")
	}
	if client == "" {
		client = "API"
	}
	id, err := s.sendMessage(c.user, SendRequest{Type: typ, To: to, Topic: topic, Content: content}, client)
	if err != nil {
		c.fail(err)
		return
	}
	c.ok(object{{"id", id}})
}

func (s *Server) sendMessage(sender *User, req SendRequest, client string) (int64, *apiError) {
	m := &storedMessage{senderID: sender.ID, content: req.Content, client: client}
	if strings.TrimSpace(req.Content) == "" {
		return 0, badRequest("Message must not be empty")
	}
	switch req.Type {
	case "stream", "channel":
		st, err := s.resolveStream(req.To)
		if err != nil {
			return 0, err
		}
		if st.InviteOnly && !st.subscribed(sender.ID) {
			return 0, badRequest("Not authorized to send to channel '%s'", st.Name)
		}
		topic := strings.TrimSpace(req.Topic)
		if topic == "" {
			return 0, badRequest("Missing topic")
		}
		m.streamID, m.topic, m.recipientID = st.ID, topic, recipientBaseStream+st.ID
	case "private", "direct":
		ids, err := s.resolveRecipients(req.To)
		if err != nil {
			return 0, err
		}
		ids = append(ids, sender.ID)
		slices.Sort(ids)
		m.recipients = slices.Compact(ids)
	default:
		return 0, invalidArgument("type", "must be one of stream, channel, private, direct")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.gcLocked()
	if m.streamID == 0 {
		m.recipientID = s.directRecipientIDLocked(sender.ID, m.recipients)
	}
	m.id = 1
	if n := len(s.messages); n > 0 {
		m.id = s.messages[n-1].id + 1
	}
	m.timestamp = s.clock.Now().Unix()
	s.messages = append(s.messages, m)
	s.fanOutLocked(m)
	return m.id, nil
}

// directRecipientIDLocked gives the Recipient id of a direct message: the
// other user's for a one-to-one (or self) message, a group's otherwise.
func (s *Server) directRecipientIDLocked(sender int64, participants []int64) int64 {
	switch len(participants) {
	case 1:
		return recipientBaseUser + participants[0]
	case 2:
		other := participants[0]
		if other == sender {
			other = participants[1]
		}
		return recipientBaseUser + other
	}
	key := fmt.Sprint(participants)
	id, ok := s.huddles[key]
	if !ok {
		id = recipientBaseGroup + int64(len(s.huddles)) + 1
		s.huddles[key] = id
	}
	return id
}

// resolveStream reads `to` as upstream's extract_stream_indicator does:
// JSON (an id, a name, or a one-element list of either) or a bare name.
func (s *Server) resolveStream(to string) (*Stream, *apiError) {
	var v any
	if err := json.Unmarshal([]byte(to), &v); err != nil {
		v = to
	}
	if list, ok := v.([]any); ok {
		if len(list) != 1 {
			return nil, badRequest("Expected exactly one channel")
		}
		v = list[0]
	}
	switch x := v.(type) {
	case float64:
		id := int64(x)
		st := s.realm.streamsByID[id]
		if st == nil {
			return nil, streamIDNotExist(id)
		}
		return st, nil
	case string:
		st := s.realm.streamByName(strings.TrimSpace(x))
		if st == nil {
			return nil, streamNotExist(x)
		}
		return st, nil
	}
	return nil, badRequest("Invalid data type for channel")
}

// resolveRecipients reads `to` as extract_private_recipients does: a JSON
// list of ids or of emails, or comma-separated emails.
func (s *Server) resolveRecipients(to string) ([]int64, *apiError) {
	var list []any
	if err := json.Unmarshal([]byte(to), &list); err != nil {
		var single any
		if json.Unmarshal([]byte(to), &single) == nil {
			list = []any{single}
		} else {
			for _, e := range strings.Split(to, ",") {
				if e = strings.TrimSpace(e); e != "" {
					list = append(list, e)
				}
			}
		}
	}
	if len(list) == 0 {
		return nil, badRequest("Message must have recipients")
	}
	ids := make([]int64, 0, len(list))
	for _, e := range list {
		switch x := e.(type) {
		case float64:
			u := s.realm.usersByID[int64(x)]
			if u == nil {
				return nil, badRequest("Invalid user ID %d", int64(x))
			}
			ids = append(ids, u.ID)
		case string:
			u := s.realm.userByEmail(x)
			if u == nil {
				return nil, badRequest("Invalid email '%s'", x)
			}
			ids = append(ids, u.ID)
		default:
			return nil, badRequest("Recipient lists may contain emails or user IDs, but not both.")
		}
	}
	return ids, nil
}

// canSee reports whether the user may read the message.
func (s *Server) canSee(userID int64, m *storedMessage) bool {
	if m.streamID == 0 {
		return slices.Contains(m.recipients, userID)
	}
	return s.realm.streamsByID[m.streamID].canRead(userID)
}

// flagsFor are the user's message flags: a sender has read their own
// message; a mention of the user's name is "mentioned".
func (s *Server) flagsFor(userID int64, m *storedMessage) []string {
	flags := []string{}
	if m.senderID == userID {
		flags = append(flags, "read")
	}
	if u := s.realm.usersByID[userID]; u != nil && strings.Contains(m.content, "@**"+u.FullName+"**") {
		flags = append(flags, "mentioned")
	}
	return flags
}

// fanOutLocked delivers the message event to every queue that should get
// it, as process_message_event does: the recipients' queues (stream
// subscribers, direct message participants), plus, for public streams,
// queues registered with all_public_streams or a narrow.
func (s *Server) fanOutLocked(m *storedMessage) {
	for _, q := range s.queues {
		if q.eventTypes != nil && !slices.Contains(q.eventTypes, "message") {
			continue
		}
		if m.streamID != 0 {
			st := s.realm.streamsByID[m.streamID]
			reach := st.subscribed(q.user.ID) || ((q.allPublicStreams || len(q.narrow) > 0) && !st.InviteOnly)
			if !reach {
				continue
			}
		} else if !slices.Contains(m.recipients, q.user.ID) {
			continue
		}
		flags := s.flagsFor(q.user.ID, m)
		msg := s.messageObject(m, q.applyMarkdown, q.clientGravatar)
		msgRaw, err := marshal(msg)
		if err != nil {
			panic(fmt.Sprintf("zuliptest: encode message: %v", err))
		}
		var head eventMessage
		_ = json.Unmarshal(msgRaw, &head)
		if !matchEventsNarrow(q.narrow, head, flags) {
			continue
		}
		ev, err := marshal(object{{"type", "message"}, {"message", json.RawMessage(msgRaw)}, {"flags", flags}})
		if err != nil {
			panic(fmt.Sprintf("zuliptest: encode message event: %v", err))
		}
		s.pushLocked(q, "message", ev)
	}
}

// messageObject renders the message as upstream's MessageDict does for a
// client with the given apply_markdown and client_gravatar.
func (s *Server) messageObject(m *storedMessage, applyMarkdown, clientGravatar bool) object {
	sender := s.realm.usersByID[m.senderID]
	var avatar any
	if !clientGravatar {
		avatar = gravatarURL(sender.Email)
	}
	content, contentType := m.content, "text/x-markdown"
	if applyMarkdown {
		content, contentType = renderMarkdown(m.content), "text/html"
	}
	var displayRecipient any
	typ := "private"
	if m.streamID != 0 {
		typ = "stream"
		displayRecipient = s.realm.streamsByID[m.streamID].Name
	} else {
		list := make([]object, 0, len(m.recipients))
		for _, id := range m.recipients {
			u := s.realm.usersByID[id]
			list = append(list, object{{"email", u.Email}, {"full_name", u.FullName}, {"id", u.ID}, {"is_mirror_dummy", false}})
		}
		displayRecipient = list
	}
	o := object{
		{"avatar_url", avatar},
		{"client", m.client},
		{"content", content},
		{"content_type", contentType},
		{"display_recipient", displayRecipient},
		{"id", m.id},
		{"is_me_message", strings.HasPrefix(m.content, "/me ")},
		{"reactions", []any{}},
		{"recipient_id", m.recipientID},
		{"sender_email", sender.Email},
		{"sender_full_name", sender.FullName},
		{"sender_id", sender.ID},
		{"sender_realm_str", s.realm.StringID},
	}
	if m.streamID != 0 {
		o = o.with("stream_id", m.streamID)
	}
	return append(o,
		field{"subject", m.topic},
		field{"submessages", []any{}},
		field{"timestamp", m.timestamp},
		field{"topic_links", []any{}},
		field{"type", typ},
	)
}

func gravatarURL(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(email)))
	return "https://secure.gravatar.com/avatar/" + hex.EncodeToString(sum[:]) + "?d=identicon&version=1"
}

// renderMarkdown is a small stand-in for Zulip's Markdown processor:
// paragraphs and line breaks, everything else escaped as text.
func renderMarkdown(src string) string {
	var b strings.Builder
	for i, para := range strings.Split(strings.TrimSpace(src), "\n\n") {
		if i > 0 {
			b.WriteString("\n")
		}
		lines := strings.Split(strings.TrimSpace(para), "\n")
		for j := range lines {
			lines[j] = html.EscapeString(lines[j])
		}
		b.WriteString("<p>" + strings.Join(lines, "<br>\n") + "</p>")
	}
	return b.String()
}

// handleGetMessages is GET /api/v1/messages: get_messages_backend with
// upstream's anchor and found_* semantics.
func (s *Server) handleGetMessages(c *call) {
	anchorRaw, ok := c.p.lookup("anchor")
	if !ok {
		c.fail(missingArgument("anchor"))
		return
	}
	numBefore, hasBefore, err := c.p.integer("num_before")
	if err == nil && !hasBefore {
		err = missingArgument("num_before")
	}
	if err != nil {
		c.fail(err)
		return
	}
	numAfter, hasAfter, err := c.p.integer("num_after")
	if err == nil && !hasAfter {
		err = missingArgument("num_after")
	}
	if err != nil {
		c.fail(err)
		return
	}
	if numBefore < 0 || numAfter < 0 {
		c.fail(invalidArgument("num_before/num_after", "must be non-negative"))
		return
	}
	if numBefore+numAfter > maxMessagesPerFetch {
		c.fail(badRequest("Too many messages requested (maximum %d).", maxMessagesPerFetch))
		return
	}
	includeAnchor, err := c.p.boolean("include_anchor", true)
	if err != nil {
		c.fail(err)
		return
	}
	applyMarkdown, err := c.p.boolean("apply_markdown", true)
	if err != nil {
		c.fail(err)
		return
	}
	clientGravatar, err := c.p.boolean("client_gravatar", true)
	if err != nil {
		c.fail(err)
		return
	}
	var terms []NarrowTerm
	if raw, ok := c.p.lookup("narrow"); ok {
		t, perr := parseNarrow(json.RawMessage(raw))
		if perr != nil {
			c.fail(badNarrow("Invalid narrow: %v", perr))
			return
		}
		terms = t
	}
	filter, aerr := s.compileMessagesNarrow(terms, c.user)
	if aerr != nil {
		c.fail(aerr)
		return
	}

	s.mu.Lock()
	var visible []*storedMessage
	for _, m := range s.messages {
		if s.canSee(c.user.ID, m) && filter(m) {
			visible = append(visible, m)
		}
	}
	var anchor int64
	var toLeft, toRight bool
	switch strings.Trim(anchorRaw, `"`) {
	case "newest":
		anchor, toRight = largerThanMaxMessageID, true
	case "oldest":
		anchor, toLeft = 0, true
	case "first_unread":
		anchor, toRight = largerThanMaxMessageID, true
		for _, m := range visible {
			if m.senderID != c.user.ID {
				anchor, toRight = m.id, false
				break
			}
		}
	default:
		n, perr := strconv.ParseInt(anchorRaw, 10, 64)
		if perr != nil {
			s.mu.Unlock()
			c.fail(badRequest("Invalid anchor"))
			return
		}
		anchor = n
	}
	var before, anchorRows, after []*storedMessage
	if toRight {
		before = visible
		numAfter = 0
	} else {
		for _, m := range visible {
			switch {
			case m.id < anchor:
				before = append(before, m)
			case m.id == anchor && includeAnchor:
				anchorRows = append(anchorRows, m)
			case m.id > anchor:
				after = append(after, m)
			}
		}
	}
	before = before[max(len(before)-int(numBefore), 0):]
	after = after[:min(len(after), int(numAfter))]
	rows := append(append(append([]*storedMessage{}, before...), anchorRows...), after...)
	list := make([]object, 0, len(rows))
	for _, m := range rows {
		list = append(list, s.messageObject(m, applyMarkdown, clientGravatar).with("flags", s.flagsFor(c.user.ID, m)))
	}
	s.mu.Unlock()

	c.ok(object{
		{"messages", list},
		{"found_anchor", len(anchorRows) == 1},
		{"found_oldest", toLeft || int64(len(before)) < numBefore},
		{"found_newest", toRight || int64(len(after)) < numAfter},
		{"history_limited", false},
		{"anchor", anchor},
	})
}

// handleServerSettings is GET /api/v1/server_settings, served without
// authentication.
func (s *Server) handleServerSettings(c *call) {
	url := s.baseURL(c.r)
	c.ok(object{
		{"authentication_methods", object{
			{"password", true}, {"dev", false}, {"email", true}, {"ldap", false}, {"remoteuser", false},
			{"github", false}, {"azuread", false}, {"gitlab", false}, {"apple", false}, {"google", false},
			{"saml", false}, {"openid connect", false},
		}},
		{"external_authentication_methods", []any{}},
		{"zulip_feature_level", s.cfg.FeatureLevel},
		{"zulip_version", s.cfg.ZulipVersion},
		{"zulip_merge_base", s.cfg.MergeBase},
		{"push_notifications_enabled", false},
		{"is_incompatible", false},
		{"email_auth_enabled", true},
		{"require_email_format_usernames", true},
		{"realm_uri", url},
		{"realm_url", url},
		{"realm_name", s.realm.Name},
		{"realm_icon", url + "/static/images/logo/zulip-icon-128x128.png"},
		{"realm_description", "<p>The Zulip simulator.</p>"},
		{"realm_web_public_access_enabled", false},
	})
}
