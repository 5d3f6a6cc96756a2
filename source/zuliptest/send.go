package zuliptest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// This file is POST /api/v1/messages: sending, resolving the recipients
// and fanning the message event out to the queues.

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
	r := c.p.reader()
	typ, to, content := r.required("type"), r.required("to"), r.required("content")
	if r.err != nil {
		c.fail(r.err)
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
	if n := len(s.messages.all); n > 0 {
		m.id = s.messages.all[n-1].id + 1
	}
	m.timestamp = s.clock.Now().Unix()
	s.messages.add(m)
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
		if len(q.narrow) > 0 {
			var head eventMessage
			_ = json.Unmarshal(msgRaw, &head)
			if !matchEventsNarrow(q.narrow, head, flags) {
				continue
			}
		}
		ev, err := marshal(object{{"type", "message"}, {"message", json.RawMessage(msgRaw)}, {"flags", flags}})
		if err != nil {
			panic(fmt.Sprintf("zuliptest: encode message event: %v", err))
		}
		s.pushLocked(q, "message", ev, false)
	}
}
