package pipeline_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// expectation says what a stream must hold besides control events.
type expectation struct {
	// queues whose delivered events must each be stored once, live, byte
	// for byte.
	queues []string
	// heartbeats are stored too (BRIDGE_PUBLISH_HEARTBEATS); otherwise
	// none may be.
	heartbeats bool
	// backfilled are the ids of messages that no queue delivered and that
	// must be stored once from GET /messages.
	backfilled []int64
	// invalid are the ids of delivered events that cannot be mapped: each
	// must be stored once as <prefix>.bridge.invalid, carrying it.
	invalid []int64
	// customSubjects: a subject template adds tokens after the default
	// subject, which must still begin it.
	customSubjects bool
}

// checkStream checks got against what the simulator delivered and sent:
// every expected event stored exactly once, nothing else but control
// events, events in event-id order per subject, and the headers of docs/names.md
// worked out from each event's JSON independently of the mapper.
// It returns the control events (<prefix>.bridge.*) in stream order.
func (w *world) checkStream(got []stored, exp expectation) []stored {
	w.t.Helper()
	var control []stored
	byKey := map[string]stored{}
	lastID := map[string]int64{} // by subject and queue: ids start over in a new queue
	for _, m := range got {
		key := m.h(mapping.HeaderDedupKey)
		if key == "" {
			w.t.Errorf("%s: no %s header", m, mapping.HeaderDedupKey)
			continue
		}
		if id := m.h("Nats-Msg-Id"); id != key {
			w.t.Errorf("%s: Nats-Msg-Id %q, want the dedup key", m, id)
		}
		if ct := m.h(mapping.HeaderContentType); ct != "application/json" {
			w.t.Errorf("%s: Content-Type %q, want application/json", m, ct)
		}
		if site := m.h(mapping.HeaderSite); site != w.host {
			w.t.Errorf("%s: Zulip-Site %q, want %q", m, site, w.host)
		}
		for k, vs := range m.headers {
			for _, v := range vs {
				if strings.ContainsFunc(v, unicode.IsControl) {
					w.t.Errorf("%s: header %s=%q holds a control character", m, k, v)
				}
			}
		}
		if prev, dup := byKey[key]; dup {
			w.t.Errorf("%s stored twice: %s and %s", key, prev, m)
			continue
		}
		byKey[key] = m
		if strings.HasPrefix(m.subject, "zulip.bridge.") {
			control = append(control, m)
			continue
		}
		if idh := m.h(mapping.HeaderEventID); idh != "" {
			id, err := strconv.ParseInt(idh, 10, 64)
			if err != nil {
				w.t.Errorf("%s: Zulip-Event-Id %q", m, idh)
				continue
			}
			scope := m.subject + " " + m.h(mapping.HeaderQueueID)
			if prev, ok := lastID[scope]; ok && id <= prev {
				w.t.Errorf("%s: event %d stored after event %d of the same subject", m.subject, id, prev)
			}
			lastID[scope] = id
		}
	}

	want := map[string]bool{}
	for _, q := range exp.queues {
		for _, ev := range w.sim.Delivered(q) {
			if ev.Type == "heartbeat" && !exp.heartbeats {
				continue
			}
			if slices.Contains(exp.invalid, ev.ID) {
				w.checkInvalid(byKey, q, ev)
				continue
			}
			key, subject, headers := w.wantLive(q, ev)
			want[key] = true
			m, ok := byKey[key]
			if !ok {
				w.t.Errorf("event %d (%s) of queue %s delivered but not stored", ev.ID, ev.Type, q)
				continue
			}
			if !bytes.Equal(m.data, ev.Raw) {
				w.t.Errorf("%s: payload differs from what the queue delivered:\n got %s\nwant %s", m, m.data, ev.Raw)
			}
			if exp.customSubjects && !strings.HasSuffix(subject, ".") {
				subject += "."
			}
			if !subjectMatches(m.subject, subject) {
				w.t.Errorf("%s: subject %q, want %q", m, m.subject, subject)
			}
			for k, v := range headers {
				if got := m.h(k); got != v {
					w.t.Errorf("%s: %s %q, want %q", m, k, got, v)
				}
			}
			if _, ok := m.headers[mapping.HeaderBackfill]; ok {
				w.t.Errorf("%s: a live event carries %s", m, mapping.HeaderBackfill)
			}
		}
	}
	sent := map[int64]zuliptest.Message{}
	for _, msg := range w.sim.Messages() {
		sent[msg.ID] = msg
	}
	for _, id := range exp.backfilled {
		key := fmt.Sprintf("%s/message/%d", w.host, id)
		if want[key] {
			w.t.Errorf("message %d expected both live and backfilled", id)
		}
		want[key] = true
		m, ok := byKey[key]
		if !ok {
			w.t.Errorf("message %d not backfilled", id)
			continue
		}
		if v := m.h(mapping.HeaderBackfill); v != "true" {
			w.t.Errorf("%s: %s %q, want true", m, mapping.HeaderBackfill, v)
		}
		if v := m.h(mapping.HeaderMessageID); v != strconv.FormatInt(id, 10) {
			w.t.Errorf("%s: %s %q, want %d", m, mapping.HeaderMessageID, v, id)
		}
		if v := m.h(mapping.HeaderEventID); v != "" {
			w.t.Errorf("%s: a backfilled message has %s %q", m, mapping.HeaderEventID, v)
		}
		var ev struct {
			Type    string `json:"type"`
			Message struct {
				ID      int64  `json:"id"`
				Content string `json:"content"`
			} `json:"message"`
		}
		if err := json.Unmarshal(m.data, &ev); err != nil {
			w.t.Errorf("%s: payload: %v", m, err)
			continue
		}
		if ev.Type != "message" || ev.Message.ID != id || ev.Message.Content != sent[id].Content {
			w.t.Errorf("%s: payload %s is not message %d (%q)", m, m.data, id, sent[id].Content)
		}
	}
	for key, m := range byKey {
		if !want[key] && !strings.HasPrefix(m.subject, "zulip.bridge.") {
			w.t.Errorf("%s stored but neither delivered nor backfilled", m)
		}
	}
	// Whatever the route, every message sent while a bridge ran or was
	// down is in the stream once.
	for id := range sent {
		if id <= w.initialMaxMessageID {
			continue
		}
		if _, ok := byKey[fmt.Sprintf("%s/message/%d", w.host, id)]; !ok {
			w.t.Errorf("message %d sent but not in the stream", id)
		}
	}
	return control
}

// checkInvalid checks that an event that cannot be mapped is stored as a
// bridge.invalid control event under the event's own dedup key, with the
// reason and the event byte for byte.
func (w *world) checkInvalid(byKey map[string]stored, queueID string, ev zuliptest.DeliveredEvent) {
	w.t.Helper()
	key := fmt.Sprintf("%s/%s/%d", w.host, queueID, ev.ID)
	m, ok := byKey[key]
	if !ok {
		w.t.Errorf("unmappable event %d of queue %s not stored", ev.ID, queueID)
		return
	}
	if m.subject != "zulip.bridge.invalid" || m.h(mapping.HeaderEventType) != "bridge" || m.h(mapping.HeaderEventOp) != "invalid" {
		w.t.Errorf("%s: unmappable event %d stored as %s %v, want zulip.bridge.invalid", m, ev.ID, m.subject, m.headers)
	}
	var p struct {
		Reason string          `json:"reason"`
		ID     string          `json:"id"`
		Event  json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(m.data, &p); err != nil {
		w.t.Errorf("%s: payload %s: %v", m, m.data, err)
		return
	}
	if p.Reason == "" || p.ID != strconv.FormatInt(ev.ID, 10) {
		w.t.Errorf("%s: payload %s does not say which event failed and why", m, m.data)
	}
	// The event must be embedded as the server sent it: find its bytes
	// in the payload, not a re-encoding of them.
	if !bytes.Contains(m.data, ev.Raw) {
		w.t.Errorf("%s: payload does not embed the event byte for byte:\n got %s\nwant %s", m, p.Event, ev.Raw)
	}
}

// wantLive works out, from the event's JSON alone, the dedup key, subject
// and headers that docs/names.md gives a live event. A subject ending in
// "." is a prefix: the rest depends on a stream the event may name.
func (w *world) wantLive(queueID string, ev zuliptest.DeliveredEvent) (key, subject string, headers map[string]string) {
	w.t.Helper()
	var e struct {
		Type    string          `json:"type"`
		Op      json.RawMessage `json:"op"`
		Message *struct {
			ID               int64           `json:"id"`
			Type             string          `json:"type"`
			StreamID         int64           `json:"stream_id"`
			DisplayRecipient json.RawMessage `json:"display_recipient"`
			Subject          string          `json:"subject"`
		} `json:"message"`
	}
	if err := json.Unmarshal(ev.Raw, &e); err != nil {
		w.t.Fatalf("delivered event %d: %v", ev.ID, err)
	}
	headers = map[string]string{
		mapping.HeaderEventType: e.Type,
		mapping.HeaderEventID:   strconv.FormatInt(ev.ID, 10),
		mapping.HeaderQueueID:   queueID,
		mapping.HeaderSite:      w.host,
	}
	subject = "zulip." + e.Type
	var op string
	if json.Unmarshal(e.Op, &op) == nil && op != "" {
		headers[mapping.HeaderEventOp] = op
		subject += "." + op
	}
	key = fmt.Sprintf("%s/%s/%d", w.host, queueID, ev.ID)
	if e.Type == "message" && e.Message != nil {
		key = fmt.Sprintf("%s/message/%d", w.host, e.Message.ID)
		headers[mapping.HeaderMessageID] = strconv.FormatInt(e.Message.ID, 10)
		if e.Message.Type == "stream" {
			var stream string
			if err := json.Unmarshal(e.Message.DisplayRecipient, &stream); err != nil {
				w.t.Fatalf("delivered event %d: display_recipient: %v", ev.ID, err)
			}
			headers[mapping.HeaderStreamID] = strconv.FormatInt(e.Message.StreamID, 10)
			headers[mapping.HeaderStream] = stream
			headers[mapping.HeaderTopic] = e.Message.Subject
			subject += fmt.Sprintf(".stream.%d", e.Message.StreamID)
		} else {
			subject += ".direct"
		}
		headers[mapping.HeaderDedupKey] = key
		return key, subject, headers
	}
	headers[mapping.HeaderDedupKey] = key
	return key, subject + ".", headers
}

// subjectMatches reports whether subject is want, or for a want ending in
// "." (a prefix of names decided by the event's stream), want without its
// dot or want followed by more tokens.
func subjectMatches(subject, want string) bool {
	if base, ok := strings.CutSuffix(want, "."); ok {
		return subject == base || strings.HasPrefix(subject, want)
	}
	return subject == want
}

// controlEvents returns the control events of one kind.
func controlEvents(control []stored, kind string) []stored {
	var out []stored
	for _, m := range control {
		if m.subject == "zulip.bridge."+kind {
			out = append(out, m)
		}
	}
	return out
}
