package zuliptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jonboulle/clockwork"
)

// queue is one event queue, modelled on upstream's ClientDescriptor and
// EventQueue (zerver/tornado/event_queue.py).
type queue struct {
	id   string
	user *User

	eventTypes       []string // nil: every type
	narrow           []NarrowTerm
	allPublicStreams bool
	applyMarkdown    bool
	clientGravatar   bool
	streamTyping     bool // client_capabilities.stream_typing_notifications
	settingsObject   bool // client_capabilities.user_settings_object
	deactivatedGroup bool // client_capabilities.include_deactivated_groups
	lifespan         time.Duration
	created          time.Time

	nextID       int64
	newestPruned int64
	pending      []queuedEvent

	// lastConnection is when a GET last had to wait (or registration):
	// the queue expires lifespan after it while no GET is waiting.
	lastConnection time.Time
	waiter         *waiter

	hist *history
}

type queuedEvent struct {
	id  int64
	typ string
	raw json.RawMessage
}

// waiter is a GET /events waiting for an event.
type waiter struct {
	done  chan waitResult // buffered: finishing never blocks under s.mu
	timer clockwork.Timer // heartbeat
}

type waitResult struct {
	events  []queuedEvent
	aborted bool // server crashed or closed: drop the connection
}

// Ways a queue ends, as History reports them.
const (
	EndExpired = "expired"
	EndDeleted = "deleted"
	EndCrashed = "crashed"
)

// prune drops events with id <= through, as EventQueue.prune does.
func (q *queue) prune(through int64) {
	i := 0
	for i < len(q.pending) && q.pending[i].id <= through {
		q.newestPruned = q.pending[i].id
		i++
	}
	q.pending = q.pending[i:]
	q.hist.acked = q.newestPruned
}

// finishWaiter answers the waiting GET, if any, with the queue's current
// contents, as finish_current_handler does; it reports whether one waited.
func (q *queue) finishWaiter(aborted bool) bool {
	w := q.waiter
	if w == nil {
		return false
	}
	q.disconnect()
	w.done <- waitResult{events: q.snapshot(), aborted: aborted}
	return true
}

// snapshot is the pending events as a response sends them. It shares the
// queue's backing array instead of copying it (a backlog of a million
// events is a million entries): pending events are never modified, prune
// only reslices, and the capacity is capped so that a later append cannot
// write where the snapshot reads.
func (q *queue) snapshot() []queuedEvent {
	return q.pending[:len(q.pending):len(q.pending)]
}

// disconnect forgets the waiting GET and stops its heartbeat, so the
// expiry clock runs again.
func (q *queue) disconnect() {
	if q.waiter != nil && q.waiter.timer != nil {
		q.waiter.timer.Stop()
	}
	q.waiter = nil
}

// expired is ClientDescriptor.expired.
func (q *queue) expired(now time.Time) bool {
	return q.waiter == nil && now.Sub(q.lastConnection) >= q.lifespan
}

// connect makes the GET wait, as connect_handler does: it restarts the
// expiry clock and arms the heartbeat.
func (s *Server) connectLocked(q *queue) *waiter {
	w := &waiter{done: make(chan waitResult, 1)}
	q.waiter = w
	q.lastConnection = s.clock.Now()
	w.timer = s.clock.AfterFunc(s.cfg.HeartbeatInterval, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if q.waiter != w {
			return
		}
		w.timer = nil
		s.pushLocked(q, "heartbeat", json.RawMessage(`{"type":"heartbeat"}`), false)
	})
	return w
}

// pushLocked appends an event to the queue, assigning the next id (after
// any configured gap), and wakes the waiting GET. raw is a compact JSON
// object; its "id" is replaced when hasID says it has one, appended
// otherwise. The event is encoded here, once: every GET that returns it
// writes these bytes.
func (s *Server) pushLocked(q *queue, typ string, raw json.RawMessage, hasID bool) int64 {
	q.nextID += s.eventIDGap()
	id := q.nextID
	q.nextID++
	withID, err := setEventID(raw, id, hasID)
	if err != nil {
		// Events are validated before they reach a queue.
		panic(fmt.Sprintf("zuliptest: set event id: %v", err))
	}
	q.pending = append(q.pending, queuedEvent{id: id, typ: typ, raw: withID})
	q.finishWaiter(false)
	return id
}

// gcLocked garbage-collects expired queues. Upstream runs its collector
// every minute; doing it at every look makes expiry exact, which is what a
// test with a fake clock wants.
func (s *Server) gcLocked() {
	now := s.clock.Now()
	for _, q := range s.queues {
		if q.expired(now) {
			s.log.Info("zuliptest queue expired", "queue_id", q.id, "idle", now.Sub(q.lastConnection))
			s.removeLocked(q, EndExpired)
		}
	}
}

// removeLocked drops the queue. A GET still waiting gets the queue's
// contents (upstream's cleanup finishes the handler before collecting),
// except on a crash, where its connection drops.
func (s *Server) removeLocked(q *queue, end string) {
	q.finishWaiter(end == EndCrashed)
	q.hist.info = q.infoLocked()
	delete(s.queues, q.id)
	q.hist.ended = end
	q.hist.endedAt = s.clock.Now()
}

// setEventID returns raw with its top-level "id" set to id: the value
// replaced in place if the key exists, appended otherwise. The other bytes
// are kept as they are. hasID false says raw, a compact object, has no
// "id": the id is appended without reading raw.
func setEventID(raw json.RawMessage, id int64, hasID bool) (json.RawMessage, error) {
	idText := strconv.FormatInt(id, 10)
	if !hasID {
		if len(raw) < 2 || raw[0] != '{' || raw[len(raw)-1] != '}' {
			return nil, errors.New("event is not a compact JSON object")
		}
		out := make([]byte, 0, len(raw)+len(idText)+6)
		out = append(out, raw[:len(raw)-1]...)
		if len(raw) > 2 {
			out = append(out, ',')
		}
		out = append(out, `"id":`...)
		out = append(out, idText...)
		return append(out, '}'), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("event is not a JSON object")
	}
	for dec.More() {
		keyTok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		start := dec.InputOffset()
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		end := dec.InputOffset()
		if keyTok != "id" {
			continue
		}
		// raw[start:end] is the colon, any spaces and the old value.
		colon := bytes.IndexByte(raw[start:end], ':')
		if colon < 0 {
			return nil, errors.New("event: malformed id member")
		}
		out := make([]byte, 0, len(raw)+len(idText))
		out = append(out, raw[:start+int64(colon)+1]...)
		out = append(out, idText...)
		out = append(out, raw[end:]...)
		return out, nil
	}
	closing := bytes.LastIndexByte(raw, '}')
	out := make([]byte, 0, len(raw)+len(idText)+6)
	out = append(out, raw[:closing]...)
	if len(bytes.TrimSpace(raw[1:closing])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"id":`...)
	out = append(out, idText...)
	out = append(out, raw[closing:]...)
	return out, nil
}
