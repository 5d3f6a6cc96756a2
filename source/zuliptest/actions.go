package zuliptest

import (
	"encoding/json"
	"errors"
	"fmt"
)

// This file holds what tests do to the server besides sending messages:
// expire a queue, crash, inject an event.

// ExpireQueue garbage-collects the queue now, as if its lifespan had
// passed; a GET waiting on it returns what the queue held. The next GET
// gets BAD_EVENT_QUEUE_ID. It reports whether the queue existed.
func (s *Server) ExpireQueue(queueID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[queueID]
	if !ok {
		return false
	}
	s.log.Info("zuliptest queue expired by test", "queue_id", queueID)
	s.removeLocked(q, EndExpired)
	return true
}

// Crash drops every queue, as a Zulip server crash does (a graceful
// restart would keep them): waiting GETs lose their connections, so do
// GET /events responses still being streamed (at their next buffer
// flush; what reached the client before stays there, and is not counted
// as delivered), and every later GET gets BAD_EVENT_QUEUE_ID. Messages
// survive, as they do in Zulip's database.
func (s *Server) Crash() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Info("zuliptest crash", "queues", len(s.queues))
	for _, q := range s.queues {
		s.removeLocked(q, EndCrashed)
	}
	close(s.crashed)
	s.crashed = make(chan struct{})
}

// ErrNotEvent is returned by InjectEvent for input that is not a JSON
// object with a string "type".
var ErrNotEvent = errors.New("zuliptest: not an event: want a JSON object with a string \"type\"")

// InjectEvent puts an event into every live queue whose filters accept it
// (event_types, narrow for message events, client capabilities), as the
// server does with the events it generates. Any "id" in raw is replaced by
// each queue's next id; the rest of the bytes are delivered as given
// (compacted). It returns the id assigned per queue id. Message events
// injected this way do not enter the message store: use SendMessage for
// messages GET /messages should return.
func (s *Server) InjectEvent(raw json.RawMessage) (map[string]int64, error) {
	compact, head, hasID, err := parseEvent(raw)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gcLocked()
	ids := map[string]int64{}
	for _, q := range s.queues {
		if q.accepts(head) {
			ids[q.id] = s.pushLocked(q, head.Type, compact, hasID)
		}
	}
	return ids, nil
}

// parseEvent checks an event, compacts it and reports whether it has an
// "id" member.
func parseEvent(raw json.RawMessage) (json.RawMessage, *eventHead, bool, error) {
	var head eventHead
	if err := json.Unmarshal(raw, &head); err != nil || head.Type == "" {
		return nil, nil, false, ErrNotEvent
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, nil, false, ErrNotEvent
	}
	if _, ok := members["type"]; !ok {
		return nil, nil, false, ErrNotEvent
	}
	_, hasID := members["id"]
	compact, err := compactJSON(raw)
	if err != nil {
		return nil, nil, false, fmt.Errorf("zuliptest: compact event: %w", err)
	}
	return compact, &head, hasID, nil
}
