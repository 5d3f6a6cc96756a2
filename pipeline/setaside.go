package pipeline

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
	"github.com/zulip-bridge/zulip-bridge/source"
)

// This file sets events aside: what cannot be mapped, what the broker
// already holds, and what is larger than the broker takes.

// prepare turns the mapping of one event (or backfilled message) into
// what is published for it, the one way for live and backfilled events: an
// event the mapper refused (mapErr) becomes a bridge.invalid control event
// (acknowledging it silently would lose it, refusing it would wedge the
// queue), one the broker already holds is a duplicate (dup, nothing to
// publish), and one larger than the broker takes is set aside as a notice.
// ref names the event for the control events (eventRef).
func (p *Pipeline) prepare(m *mapping.Message, mapErr error, queueID, ref string, raw json.RawMessage) (_ *mapping.Message, dup bool, err error) {
	if mapErr != nil {
		if m, err = p.invalid(queueID, ref, raw, mapErr); err != nil {
			return nil, false, err
		}
	}
	if p.published(m.DedupKey) {
		if _, ok := p.tail[m.DedupKey]; ok {
			delete(p.tail, m.DedupKey)
			p.tailSeen++
		}
		return nil, true, nil
	}
	if m, err = p.fit(m, queueID, ref); err != nil {
		return nil, false, err
	}
	return m, false, nil
}

// published reports whether the broker already holds the message with key
// though no checkpoint says so.
func (p *Pipeline) published(key string) bool {
	_, a := p.skip[key]
	_, b := p.lastPage[key]
	return a || b
}

// invalid wraps an event (or backfilled message) that cannot be mapped into
// a <prefix>.bridge.invalid control event: the reason and the original JSON
// byte for byte, under the dedup key the event itself would have had, so
// that it is published once like any other.
func (p *Pipeline) invalid(queueID, id string, raw json.RawMessage, cause error) (*mapping.Message, error) {
	// Built by hand: json.Marshal would compact the event and escape <, >
	// and & in it, and an error from it would stop the bridge on the very
	// event it is meant to carry past.
	payload := append([]byte(`{"reason":`), jsonString(cause.Error())...)
	payload = append(payload, `,"id":`...)
	payload = append(payload, jsonString(id)...)
	payload = append(payload, `,"event":`...)
	if json.Valid(raw) {
		payload = append(payload, raw...)
	} else {
		// The source hands out parsed JSON only; should that ever fail,
		// the bytes travel as a string rather than being lost.
		payload = append(payload, jsonString(string(raw))...)
	}
	payload = append(payload, '}')
	m, err := p.mapper.ControlWithID("invalid", queueID, id, payload)
	if err != nil {
		return nil, fmt.Errorf("invalid event %s: %w", id, err)
	}
	return m, nil
}

// jsonString returns s as a JSON string.
func jsonString(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// tooLarge is the payload of the notice that stands for a message larger
// than the broker takes.
type tooLarge struct {
	Reason   string `json:"reason"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	DedupKey string `json:"dedup_key"`
	Subject  string `json:"subject,omitempty"`
	Topic    string `json:"topic,omitempty"`
	Bytes    int    `json:"bytes"`
	Limit    int    `json:"limit"`
}

// notice builds, with control, the control event that carries tl: the one
// way the three notices (message too large for the broker, control event
// too large, event over BRIDGE_ZULIP_MAX_RESPONSE_BYTES) are made.
func (tl tooLarge) notice(control func(payload []byte) (*mapping.Message, error)) (*mapping.Message, error) {
	payload, err := json.Marshal(tl)
	if err != nil {
		return nil, err
	}
	return control(payload)
}

// fit returns m if the broker can take it. A larger message could never be
// published: retrying it would hold every later event back until the queue
// is lost. It is set aside, loudly: a <prefix>.bridge.invalid notice takes
// its place, under its dedup key, saying what it was and how large (the
// event itself stays in Zulip, e.g. a message by its id).
func (p *Pipeline) fit(m *mapping.Message, queueID, id string) (*mapping.Message, error) {
	n := sink.Size(m)
	if p.maxBytes <= 0 || n <= p.maxBytes {
		return m, nil
	}
	typ, _ := m.Get(mapping.HeaderEventType)
	p.log.Error("message too large for the broker; publishing a bridge.invalid notice in its place",
		"dedup_key", m.DedupKey, "type", typ, "bytes", n, "limit", p.maxBytes)
	notice, err := tooLarge{
		Reason: fmt.Sprintf("message of %d bytes exceeds the broker's limit of %d bytes", n, p.maxBytes),
		ID:     id, Type: typ, DedupKey: m.DedupKey, Subject: m.Subject, Topic: m.Topic, Bytes: n, Limit: p.maxBytes,
	}.notice(func(payload []byte) (*mapping.Message, error) {
		return p.mapper.ControlWithID("invalid", queueID, id, payload)
	})
	if err != nil {
		return nil, fmt.Errorf("too large message %s: %w", m.DedupKey, err)
	}
	return notice, nil
}

// eventRef names an event for mapping.ControlWithID, so that a control event
// standing for it has the event's own dedup key: by message id for message
// events (stable across queues), by event id for the others.
func eventRef(ev source.Event) string {
	if ev.MessageID > 0 {
		return "message/" + strconv.FormatInt(ev.MessageID, 10)
	}
	return strconv.FormatInt(ev.ID, 10)
}

// oversized stands in for an event the source did not keep because it is
// larger than BRIDGE_ZULIP_MAX_RESPONSE_BYTES: like a message too large for
// the broker, it is set aside, loudly, as a <prefix>.bridge.invalid notice
// under the event's own dedup key (the event stays in Zulip; a message can
// be fetched by its id).
func (p *Pipeline) oversized(queueID string, ev source.Event) (*mapping.Message, error) {
	ref := eventRef(ev)
	limit := p.client.MaxResponseBytes()
	p.log.Error("event larger than BRIDGE_ZULIP_MAX_RESPONSE_BYTES; publishing a bridge.invalid notice in its place",
		"event_id", ev.ID, "type", ev.Type, "message_id", ev.MessageID, "bytes", ev.Size, "limit", limit)
	// The notice names its own dedup key, which only the mapper knows.
	probe, err := p.mapper.ControlWithID("invalid", queueID, ref, []byte("{}"))
	if err != nil {
		return nil, fmt.Errorf("oversized event %s: %w", ref, err)
	}
	m, err := tooLarge{
		Reason: fmt.Sprintf("event of %d bytes exceeds BRIDGE_ZULIP_MAX_RESPONSE_BYTES=%d", ev.Size, limit),
		ID:     ref, Type: ev.Type, DedupKey: probe.DedupKey, Bytes: ev.Size, Limit: int(limit),
	}.notice(func(payload []byte) (*mapping.Message, error) {
		return p.mapper.ControlWithID("invalid", queueID, ref, payload)
	})
	if err != nil {
		return nil, fmt.Errorf("oversized event %s: %w", ref, err)
	}
	return m, nil
}
