package zuliptest

import (
	"cmp"
	"encoding/json"
	"slices"
	"sort"
	"time"
)

// QueueInfo describes an event queue.
type QueueInfo struct {
	ID string
	// Bot is the email of the bot that registered the queue.
	Bot string
	// EventTypes is the registered event_types; nil means every type.
	EventTypes []string
	// Narrow is the registered narrow.
	Narrow           []NarrowTerm
	AllPublicStreams bool
	ApplyMarkdown    bool
	ClientGravatar   bool
	// Lifespan is the idle time after which the queue expires.
	Lifespan time.Duration
	Created  time.Time
	// LastEventID is the highest event id assigned; -1 when none.
	LastEventID int64
	// Acked is the highest event id the client acknowledged (pruned with
	// last_event_id); -1 when none.
	Acked int64
	// Pending is how many events are not yet acknowledged.
	Pending int
	// Waiting reports whether a GET /events is waiting on the queue.
	Waiting bool
	// ExpiresAt is when the queue expires if no GET waits before; zero
	// while one waits.
	ExpiresAt time.Time
}

// DeliveredEvent is one event a queue handed out: its bytes reached the
// client whole in a GET /events response (the rest of which may have
// broken off: a client reads events as they arrive).
type DeliveredEvent struct {
	ID   int64
	Type string
	// Raw is the event exactly as it appeared in the response body.
	Raw json.RawMessage
	// Deliveries counts the responses that carried the event (a client
	// resending the same last_event_id gets it again).
	Deliveries int
	// FirstDelivered is when the first of those responses was written.
	FirstDelivered time.Time
}

// QueueHistory is the record the simulator keeps of a queue, even after
// the queue expired, was deleted or was lost in a crash: what the server
// delivered, to compare with what reached a broker.
type QueueHistory struct {
	// Info is the queue as it was last seen alive.
	Info QueueInfo
	// Delivered lists every event delivered, in id order.
	Delivered []DeliveredEvent
	// Acked is the highest event id acknowledged; -1 when none.
	Acked int64
	// Ended is "" while the queue lives, else EndExpired, EndDeleted or
	// EndCrashed; EndedAt is when.
	Ended   string
	EndedAt time.Time
}

type history struct {
	info      QueueInfo
	delivered []DeliveredEvent // in id order
	acked     int64
	ended     string
	endedAt   time.Time
}

// record counts a delivery of events (ascending ids, as a queue holds
// them). A response normally repeats a prefix of what was delivered and
// adds newer events, which are appended; the rest is found by binary
// search (two GETs on one queue can record out of order).
func (h *history) record(events []queuedEvent, now time.Time) {
	for _, e := range events {
		if n := len(h.delivered); n == 0 || h.delivered[n-1].ID < e.id {
			h.delivered = append(h.delivered, DeliveredEvent{ID: e.id, Type: e.typ, Raw: e.raw, Deliveries: 1, FirstDelivered: now})
			continue
		}
		i, found := slices.BinarySearchFunc(h.delivered, e.id, func(d DeliveredEvent, id int64) int { return cmp.Compare(d.ID, id) })
		if found {
			h.delivered[i].Deliveries++
			continue
		}
		h.delivered = slices.Insert(h.delivered, i, DeliveredEvent{ID: e.id, Type: e.typ, Raw: e.raw, Deliveries: 1, FirstDelivered: now})
	}
}

func (q *queue) infoLocked() QueueInfo {
	info := QueueInfo{
		ID:               q.id,
		Bot:              q.user.Email,
		EventTypes:       slices.Clone(q.eventTypes),
		Narrow:           slices.Clone(q.narrow),
		AllPublicStreams: q.allPublicStreams,
		ApplyMarkdown:    q.applyMarkdown,
		ClientGravatar:   q.clientGravatar,
		Lifespan:         q.lifespan,
		Created:          q.created,
		LastEventID:      q.nextID - 1,
		Acked:            q.newestPruned,
		Pending:          len(q.pending),
		Waiting:          q.waiter != nil,
	}
	if q.waiter == nil {
		info.ExpiresAt = q.lastConnection.Add(q.lifespan)
	}
	return info
}

// Queues lists the live queues, oldest first. Expired queues are collected
// first, so a queue past its lifespan is not listed.
func (s *Server) Queues() []QueueInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gcLocked()
	out := make([]QueueInfo, 0, len(s.queues))
	for _, q := range s.queues {
		out = append(out, q.infoLocked())
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// History returns the record of a queue, live or gone, and whether the
// server ever had that queue.
func (s *Server) History(queueID string) (QueueHistory, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gcLocked()
	h, ok := s.histories[queueID]
	if !ok {
		return QueueHistory{}, false
	}
	if q, live := s.queues[queueID]; live {
		h.info = q.infoLocked()
	}
	out := QueueHistory{Info: h.info, Acked: h.acked, Ended: h.ended, EndedAt: h.endedAt}
	out.Delivered = slices.Clone(h.delivered)
	return out, true
}

// Delivered returns every event the queue handed out, in id order, with
// the exact bytes the client received. It works after the queue is gone.
func (s *Server) Delivered(queueID string) []DeliveredEvent {
	h, _ := s.History(queueID)
	return h.Delivered
}

// Acked returns the highest event id the client acknowledged on the
// queue; -1 when none (or no such queue).
func (s *Server) Acked(queueID string) int64 {
	h, ok := s.History(queueID)
	if !ok {
		return -1
	}
	return h.Acked
}
