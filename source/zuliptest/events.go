package zuliptest

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/google/uuid"
)

// handleRegister is POST /api/v1/register.
func (s *Server) handleRegister(c *call) {
	r := c.p.reader()
	var eventTypes, fetchTypes []string
	// A missing or null event_types means every type; [] means none.
	r.jsonValue("event_types", &eventTypes)
	hasFetch := r.jsonValue("fetch_event_types", &fetchTypes)
	var narrow []NarrowTerm
	if raw, ok := r.lookup("narrow"); ok {
		terms, perr := parseNarrow(json.RawMessage(raw))
		if perr != nil {
			r.fail(fieldError(CodeBadRequest, "Invalid narrow: "+perr.Error(), "var_name", "narrow"))
		}
		narrow = terms
	}
	r.fail(checkEventsNarrow(narrow))
	allPublic := r.boolean("all_public_streams", false)
	applyMarkdown := r.boolean("apply_markdown", false)
	clientGravatar := r.boolean("client_gravatar", true)
	includeSubscribers := false
	if v, ok := r.lookup("include_subscribers"); ok && v != "partial" {
		includeSubscribers = r.boolean("include_subscribers", false)
	} else if ok {
		includeSubscribers = true
	}
	var capabilities map[string]bool
	r.jsonValue("client_capabilities", &capabilities)
	lifespanSecs, _ := r.integer("queue_lifespan_secs")
	if lifespanSecs < 0 {
		r.fail(invalidArgument("queue_lifespan_secs", "must be a non-negative integer"))
	}
	if r.err != nil {
		c.fail(r.err)
		return
	}
	lifespan := s.cfg.QueueTimeout
	if lifespanSecs > 0 {
		lifespan = min(time.Duration(lifespanSecs)*time.Second, s.cfg.MaxQueueLifespan)
	}
	if !hasFetch {
		fetchTypes = eventTypes
	}
	want := func(t string) bool { return fetchTypes == nil || slices.Contains(fetchTypes, t) }

	now := s.clock.Now()
	q := &queue{
		id:               uuid.NewString(),
		user:             c.user,
		eventTypes:       eventTypes,
		narrow:           narrow,
		allPublicStreams: allPublic,
		applyMarkdown:    applyMarkdown,
		clientGravatar:   clientGravatar,
		streamTyping:     capabilities["stream_typing_notifications"],
		settingsObject:   capabilities["user_settings_object"],
		deactivatedGroup: capabilities["include_deactivated_groups"],
		lifespan:         lifespan,
		created:          now,
		newestPruned:     -1,
		lastConnection:   now,
	}
	q.hist = &history{acked: -1}

	s.mu.Lock()
	s.gcLocked()
	// The state is taken under the same lock that makes the queue live, so
	// no change can fall between the two: a client that applies the
	// queue's events to this state misses nothing.
	state := s.initialStateLocked(c, q, want, includeSubscribers)
	s.queues[q.id] = q
	q.hist.info = q.infoLocked()
	s.histories[q.id] = q.hist
	s.mu.Unlock()
	s.log.Info("zuliptest queue registered", "queue_id", q.id, "bot", c.user.Email, "event_types", eventTypes, "narrow", len(narrow))

	body := object{
		{"queue_id", q.id},
		{"last_event_id", -1},
		{"zulip_version", s.cfg.ZulipVersion},
		{"zulip_feature_level", s.cfg.FeatureLevel},
		{"zulip_merge_base", s.cfg.MergeBase},
	}
	c.ok(append(body, state...))
}

// handleGetEvents is GET /api/v1/events, fetch_events upstream.
func (s *Server) handleGetEvents(c *call) {
	r := c.p.reader()
	dontBlock := r.boolean("dont_block", false)
	lastEventID, hasLast := r.integer("last_event_id")
	if r.err != nil {
		c.fail(r.err)
		return
	}
	queueID, hasQueue := c.p.lookup("queue_id")
	if !hasQueue {
		c.fail(badRequest("Missing 'queue_id' argument"))
		return
	}

	s.mu.Lock()
	s.gcLocked()
	if !hasLast {
		s.mu.Unlock()
		c.fail(badRequest("Missing 'last_event_id' argument"))
		return
	}
	q := s.queues[queueID]
	if q == nil || q.user.ID != c.user.ID {
		s.mu.Unlock()
		c.fail(badEventQueueID(queueID))
		return
	}
	if lastEventID < q.newestPruned {
		s.mu.Unlock()
		c.fail(badRequest("An event newer than %d has already been pruned!", lastEventID))
		return
	}
	q.prune(lastEventID)
	if lastEventID != q.newestPruned {
		s.mu.Unlock()
		c.fail(badRequest("Event %d was not in this queue", lastEventID))
		return
	}
	// A newer GET ends the one waiting: it returns what the queue holds
	// now, normally nothing, as {"events":[],"queue_id":...}.
	q.finishWaiter(false)
	// A crash from here on cuts the response, however far it got.
	crashed := s.crashed
	if len(q.pending) > 0 || dontBlock {
		events := q.snapshot()
		hist := q.hist
		s.mu.Unlock()
		c.writeEvents(hist, queueID, false, events, crashed)
		return
	}
	w := s.connectLocked(q)
	hist := q.hist
	s.mu.Unlock()

	select {
	case res := <-w.done:
		if res.aborted {
			c.abort()
		}
		c.writeEvents(hist, queueID, true, res.events, crashed)
	case <-c.r.Context().Done():
		s.mu.Lock()
		if q.waiter == w {
			q.disconnect()
		}
		s.mu.Unlock()
	case <-s.closing:
		c.abort()
	}
}

// handleDeleteQueue is DELETE /api/v1/events.
func (s *Server) handleDeleteQueue(c *call) {
	queueID, ok := c.p.lookup("queue_id")
	if !ok {
		c.fail(missingArgument("queue_id"))
		return
	}
	s.mu.Lock()
	s.gcLocked()
	q := s.queues[queueID]
	if q == nil || q.user.ID != c.user.ID {
		s.mu.Unlock()
		c.fail(badEventQueueID(queueID))
		return
	}
	s.removeLocked(q, EndDeleted)
	s.mu.Unlock()
	s.log.Info("zuliptest queue deleted", "queue_id", queueID)
	c.ok(nil)
}

// eventHead is what a queue's filter reads from an event.
type eventHead struct {
	Type     string          `json:"type"`
	Op       string          `json:"op"`
	StreamID *int64          `json:"stream_id"`
	Data     json.RawMessage `json:"data"`
	Message  json.RawMessage `json:"message"`
	Flags    []string        `json:"flags"`
}

// accepts is ClientDescriptor.accepts_event.
func (q *queue) accepts(ev *eventHead) bool {
	if q.eventTypes != nil {
		if !slices.Contains(q.eventTypes, ev.Type) {
			return false
		}
		if ev.Type == "muted_topics" && slices.Contains(q.eventTypes, "user_topic") {
			return false
		}
	}
	switch ev.Type {
	case "message":
		var m eventMessage
		if err := json.Unmarshal(ev.Message, &m); err != nil {
			return false
		}
		return matchEventsNarrow(q.narrow, m, ev.Flags)
	case "typing":
		if ev.StreamID != nil {
			return q.streamTyping
		}
	case "update_display_settings", "update_global_notifications":
		if q.settingsObject {
			return false
		}
	case "user_group":
		if ev.Op == "remove" {
			return !q.deactivatedGroup
		}
		if ev.Op == "update" {
			var data map[string]json.RawMessage
			if json.Unmarshal(ev.Data, &data) == nil {
				if _, ok := data["deactivated"]; ok {
					return q.deactivatedGroup
				}
			}
		}
	}
	return true
}
