package zuliptest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// NarrowTerm is one [operator, operand] filter of a narrow.
type NarrowTerm struct {
	// Operator such as "stream", "channel", "topic", "sender" or "is".
	Operator string
	// Operand as sent; ids and lists (dm recipients) are kept as text,
	// list elements joined with commas.
	Operand string
	// Negated is the "negated" flag of the object spelling.
	Negated bool
}

// parseNarrow decodes a narrow in every spelling clients send: a list of
// [operator, operand] pairs, a single pair (older docs show
// ["stream","Denmark"]), or a list of {"operator","operand","negated"}
// objects (the /messages spelling). Operands may be strings, numbers (ids)
// or lists (dm recipients); all become strings.
func parseNarrow(raw json.RawMessage) ([]NarrowTerm, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("narrow must be a JSON list")
	}
	if len(items) == 0 {
		return nil, nil
	}
	// A single pair: ["stream","Denmark"]. Its first element is a string.
	var first string
	if json.Unmarshal(items[0], &first) == nil {
		t, err := narrowPair(items)
		if err != nil {
			return nil, err
		}
		return []NarrowTerm{t}, nil
	}
	terms := make([]NarrowTerm, 0, len(items))
	for _, item := range items {
		var pair []json.RawMessage
		if json.Unmarshal(item, &pair) == nil {
			t, err := narrowPair(pair)
			if err != nil {
				return nil, err
			}
			terms = append(terms, t)
			continue
		}
		var obj struct {
			Operator string          `json:"operator"`
			Operand  json.RawMessage `json:"operand"`
			Negated  bool            `json:"negated"`
		}
		if err := json.Unmarshal(item, &obj); err != nil || obj.Operator == "" || obj.Operand == nil {
			return nil, fmt.Errorf("narrow element %s is neither a pair nor an {operator, operand} object", item)
		}
		operand, err := operandString(obj.Operand)
		if err != nil {
			return nil, err
		}
		terms = append(terms, NarrowTerm{Operator: obj.Operator, Operand: operand, Negated: obj.Negated})
	}
	return terms, nil
}

func narrowPair(pair []json.RawMessage) (NarrowTerm, error) {
	if len(pair) != 2 {
		return NarrowTerm{}, fmt.Errorf("narrow term must be an [operator, operand] pair, got %d elements", len(pair))
	}
	var op string
	if err := json.Unmarshal(pair[0], &op); err != nil {
		return NarrowTerm{}, fmt.Errorf("narrow operator must be a string")
	}
	operand, err := operandString(pair[1])
	if err != nil {
		return NarrowTerm{}, err
	}
	return NarrowTerm{Operator: op, Operand: operand}, nil
}

func operandString(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		parts := make([]string, 0, len(list))
		for _, e := range list {
			p, err := operandString(e)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("narrow operand %s must be a string, a number or a list", raw)
}

// checkEventsNarrow accepts the operators event queues support, as
// upstream's check_narrow_for_events does.
func checkEventsNarrow(terms []NarrowTerm) *apiError {
	for _, t := range terms {
		switch t.Operator {
		case "stream", "channel", "topic", "exact-topic", "sender", "is":
		default:
			return badRequest("Operator %s not supported.", t.Operator)
		}
		if t.Operator == "is" && t.Operand == "followed" {
			return badRequest("Operand %s not supported.", t.Operand)
		}
	}
	return nil
}

// eventMessage is the part of a message event a queue's narrow looks at.
type eventMessage struct {
	Type             string          `json:"type"`
	DisplayRecipient json.RawMessage `json:"display_recipient"`
	Subject          string          `json:"subject"`
	Topic            string          `json:"topic"`
	SenderEmail      string          `json:"sender_email"`
}

// matchEventsNarrow is upstream's build_narrow_predicate: the filter a
// queue registered with a narrow applies to message events.
func matchEventsNarrow(terms []NarrowTerm, m eventMessage, flags []string) bool {
	topic := m.Subject
	if topic == "" {
		topic = m.Topic
	}
	var streamName string
	_ = json.Unmarshal(m.DisplayRecipient, &streamName)
	for _, t := range terms {
		if !matchEventsTerm(t, m, streamName, topic, flags) {
			return false
		}
	}
	return true
}

func matchEventsTerm(t NarrowTerm, m eventMessage, streamName, topic string, flags []string) bool {
	switch t.Operator {
	case "stream", "channel":
		return m.Type == "stream" && strings.EqualFold(t.Operand, streamName)
	case "topic":
		if m.Type != "stream" {
			return false
		}
		operand, name := strings.ToLower(t.Operand), strings.ToLower(topic)
		return operand == name || slices.Contains(strings.Fields(name), operand)
	case "exact-topic":
		return m.Type == "stream" && t.Operand == topic
	case "sender":
		return strings.EqualFold(t.Operand, m.SenderEmail)
	case "is":
		switch t.Operand {
		case "dm", "private":
			return m.Type == "private"
		case "starred":
			return slices.Contains(flags, "starred")
		case "unread":
			return !slices.Contains(flags, "read")
		case "alerted", "mentioned":
			return slices.Contains(flags, "mentioned")
		case "resolved":
			return m.Type == "stream" && strings.HasPrefix(topic, "✔ ")
		}
	}
	return true
}

// messageFilter is a narrow compiled for GET /messages.
type messageFilter func(m *storedMessage) bool

// messageIndex picks, from the message store, an id-ordered list that
// holds every message a narrow term accepts (the term's stream, sender,
// direct messages...), so that a page walks that list instead of the whole
// store. It is called under s.mu.
type messageIndex func(st *messageStore) []*storedMessage

// compileMessagesNarrow builds the GET /messages filter, resolving names
// and ids against the realm, and the index a page walks: the shortest
// list among those of the narrow's (not negated) indexed terms, the whole
// store when it has none. Unknown operators are BAD_NARROW, as upstream's
// NarrowBuilder reports them.
func (s *Server) compileMessagesNarrow(terms []NarrowTerm, viewer *User) (messageFilter, messageIndex, *apiError) {
	preds := make([]messageFilter, 0, len(terms))
	var indexes []messageIndex
	for _, t := range terms {
		p, idx, err := s.messagesTerm(t, viewer)
		if err != nil {
			return nil, nil, err
		}
		if t.Negated {
			inner := p
			p = func(m *storedMessage) bool { return !inner(m) }
		} else if idx != nil {
			indexes = append(indexes, idx)
		}
		preds = append(preds, p)
	}
	filter := func(m *storedMessage) bool {
		for _, p := range preds {
			if !p(m) {
				return false
			}
		}
		return true
	}
	index := func(st *messageStore) []*storedMessage {
		best := st.all
		for _, idx := range indexes {
			if l := idx(st); len(l) < len(best) {
				best = l
			}
		}
		return best
	}
	return filter, index, nil
}

// messagesTerm compiles one term: its filter and, when the store keeps
// one, the index of the messages it can accept (nil: none).
func (s *Server) messagesTerm(t NarrowTerm, viewer *User) (messageFilter, messageIndex, *apiError) {
	switch t.Operator {
	case "stream", "channel":
		st := s.realm.streamByName(t.Operand)
		if id, err := strconv.ParseInt(t.Operand, 10, 64); err == nil && st == nil {
			st = s.realm.streamsByID[id]
		}
		if st == nil {
			return nil, nil, badNarrow("Invalid narrow operator: unknown channel")
		}
		id := st.ID
		return func(m *storedMessage) bool { return m.streamID == id },
			func(ms *messageStore) []*storedMessage { return ms.byStream[id] }, nil
	case "topic":
		return func(m *storedMessage) bool { return m.streamID != 0 && strings.EqualFold(m.topic, t.Operand) }, nil, nil
	case "sender":
		u := s.userByOperand(t.Operand)
		if u == nil {
			return nil, nil, badNarrow("Invalid narrow operator: unknown user")
		}
		id := u.ID
		return func(m *storedMessage) bool { return m.senderID == id },
			func(ms *messageStore) []*storedMessage { return ms.bySender[id] }, nil
	case "is":
		switch t.Operand {
		case "dm", "private":
			return func(m *storedMessage) bool { return m.streamID == 0 }, directIndex, nil
		case "unread":
			return func(m *storedMessage) bool { return m.senderID != viewer.ID }, nil, nil
		case "starred", "mentioned", "alerted":
			return func(*storedMessage) bool { return false }, func(*messageStore) []*storedMessage { return nil }, nil
		}
		return nil, nil, badNarrow("Invalid narrow operator: unknown 'is' operand")
	case "dm", "pm-with":
		ids := []int64{viewer.ID}
		for _, part := range strings.Split(t.Operand, ",") {
			u := s.userByOperand(strings.TrimSpace(part))
			if u == nil {
				return nil, nil, badNarrow("Invalid narrow operator: unknown user in %s", t.Operand)
			}
			ids = append(ids, u.ID)
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		return func(m *storedMessage) bool { return m.streamID == 0 && slices.Equal(m.recipients, ids) }, directIndex, nil
	case "id":
		id, err := strconv.ParseInt(t.Operand, 10, 64)
		if err != nil {
			return nil, nil, badNarrow("Invalid narrow operator: invalid message ID")
		}
		return func(m *storedMessage) bool { return m.id == id },
			func(ms *messageStore) []*storedMessage {
				list := ms.all
				i := searchID(list, id)
				if i < len(list) && list[i].id == id {
					return list[i : i+1]
				}
				return nil
			}, nil
	}
	return nil, nil, badNarrow("Invalid narrow operator: unknown operator")
}

func directIndex(ms *messageStore) []*storedMessage { return ms.direct }

func (s *Server) userByOperand(operand string) *User {
	if u := s.realm.userByEmail(operand); u != nil {
		return u
	}
	if id, err := strconv.ParseInt(operand, 10, 64); err == nil {
		return s.realm.usersByID[id]
	}
	return nil
}
