package zuliptest

import (
	"cmp"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
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

// messageStore holds the messages in id order (ids only grow, so appending
// keeps every list sorted) with the indexes GET /messages narrows walk:
// per stream, per sender, and the direct messages.
type messageStore struct {
	all      []*storedMessage
	byStream map[int64][]*storedMessage
	bySender map[int64][]*storedMessage
	direct   []*storedMessage
}

// add appends m, whose id is above every stored one.
func (ms *messageStore) add(m *storedMessage) {
	if ms.byStream == nil {
		ms.byStream = map[int64][]*storedMessage{}
		ms.bySender = map[int64][]*storedMessage{}
	}
	ms.all = append(ms.all, m)
	if m.streamID != 0 {
		ms.byStream[m.streamID] = append(ms.byStream[m.streamID], m)
	} else {
		ms.direct = append(ms.direct, m)
	}
	ms.bySender[m.senderID] = append(ms.bySender[m.senderID], m)
}

// searchID is the index of the first message of the id-ordered list whose
// id is at least id (len(list) when none is).
func searchID(list []*storedMessage, id int64) int {
	i, _ := slices.BinarySearchFunc(list, id, func(m *storedMessage, id int64) int { return cmp.Compare(m.id, id) })
	return i
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
	out := make([]Message, 0, len(s.messages.all))
	for _, m := range s.messages.all {
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
	r := c.p.reader()
	anchorRaw := r.required("anchor")
	numBefore := r.requiredInteger("num_before")
	numAfter := r.requiredInteger("num_after")
	if numBefore < 0 || numAfter < 0 {
		r.fail(invalidArgument("num_before/num_after", "must be non-negative"))
	}
	if numBefore+numAfter > maxMessagesPerFetch {
		r.fail(badRequest("Too many messages requested (maximum %d).", maxMessagesPerFetch))
	}
	includeAnchor := r.boolean("include_anchor", true)
	applyMarkdown := r.boolean("apply_markdown", true)
	clientGravatar := r.boolean("client_gravatar", true)
	var terms []NarrowTerm
	if raw, ok := r.lookup("narrow"); ok {
		t, perr := parseNarrow(json.RawMessage(raw))
		if perr != nil {
			r.fail(badNarrow("Invalid narrow: %v", perr))
		}
		terms = t
	}
	if r.err != nil {
		c.fail(r.err)
		return
	}
	filter, index, aerr := s.compileMessagesNarrow(terms, c.user)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	var anchor int64
	var toLeft, toRight, firstUnread bool
	switch strings.Trim(anchorRaw, `"`) {
	case "newest":
		anchor, toRight = largerThanMaxMessageID, true
	case "oldest":
		anchor, toLeft = 0, true
	case "first_unread":
		firstUnread = true
	default:
		n, perr := strconv.ParseInt(anchorRaw, 10, 64)
		if perr != nil {
			c.fail(badRequest("Invalid anchor"))
			return
		}
		anchor = n
	}

	// A page walks the narrow's index (an id-ordered list holding every
	// message the narrow can accept) from the anchor outwards, found by
	// binary search, and stops as soon as it has num_before and num_after
	// matches: O(log n + page) for the store and indexed narrows, plus the
	// messages skipped for the others.
	s.mu.Lock()
	list := index(&s.messages)
	visible := func(m *storedMessage) bool { return s.canSee(c.user.ID, m) && filter(m) }
	if firstUnread {
		// "Unread" is "not sent by the viewer": the first such message in
		// the narrow, or newest when there is none.
		anchor, toRight = largerThanMaxMessageID, true
		for _, m := range list {
			if m.senderID != c.user.ID && visible(m) {
				anchor, toRight = m.id, false
				break
			}
		}
	}
	if toRight {
		numAfter = 0
	}
	at := searchID(list, anchor)
	var before, anchorRows, after []*storedMessage
	for i := at - 1; i >= 0 && int64(len(before)) < numBefore; i-- {
		if visible(list[i]) {
			before = append(before, list[i])
		}
	}
	slices.Reverse(before)
	next := at
	if at < len(list) && list[at].id == anchor {
		if includeAnchor && visible(list[at]) {
			anchorRows = list[at : at+1]
		}
		next = at + 1
	}
	for i := next; i < len(list) && int64(len(after)) < numAfter; i++ {
		if visible(list[i]) {
			after = append(after, list[i])
		}
	}
	rows := append(append(append(make([]*storedMessage, 0, len(before)+len(anchorRows)+len(after)), before...), anchorRows...), after...)
	msgs := make([]object, 0, len(rows))
	for _, m := range rows {
		msgs = append(msgs, s.messageObject(m, applyMarkdown, clientGravatar).with("flags", s.flagsFor(c.user.ID, m)))
	}
	s.mu.Unlock()

	c.ok(object{
		{"messages", msgs},
		{"found_anchor", len(anchorRows) == 1},
		{"found_oldest", toLeft || int64(len(before)) < numBefore},
		{"found_newest", toRight || int64(len(after)) < numAfter},
		{"history_limited", false},
		{"anchor", anchor},
	})
}
