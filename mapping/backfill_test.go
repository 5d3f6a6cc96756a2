package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// liveAndBackfilled is one message as a live event and as GET /messages
// returns it: the same object, with "flags" inside.
const (
	backfilledMessage = `{"avatar_url":null,"content":"<p>hi</p>","display_recipient":"Denmark","flags":["read","mentioned"],"id":31,"sender_id":10,"stream_id":1,"subject":"test","timestamp":1594825416,"type":"stream"}`
	liveEvent         = `{"type":"message","message":{"avatar_url":null,"content":"<p>hi</p>","display_recipient":"Denmark","id":31,"sender_id":10,"stream_id":1,"subject":"test","timestamp":1594825416,"type":"stream"},"flags":["read","mentioned"],"id":7}`
)

func TestBackfillMatchesLive(t *testing.T) {
	for _, cfg := range []Config{{}, {CloudEvents: CloudEventsBinary, Sink: SinkKafka}} {
		m := newMapper(t, cfg)
		live, err := m.Map([]byte(liveEvent), "old-queue")
		if err != nil {
			t.Fatal(err)
		}
		back, err := m.MapBackfilled([]byte(backfilledMessage), "new-queue")
		if err != nil {
			t.Fatal(err)
		}
		checkMessage(t, back)
		if back.Subject != live.Subject || back.Topic != live.Topic || !bytes.Equal(back.Key, live.Key) || back.DedupKey != live.DedupKey {
			t.Errorf("backfilled %q %q %q %q, live %q %q %q %q",
				back.Subject, back.Topic, back.Key, back.DedupKey, live.Subject, live.Topic, live.Key, live.DedupKey)
		}
		if back.Event != (EventInfo{ID: -1, Type: "message", MessageID: 31, Timestamp: 1594825416}) {
			t.Errorf("event info %+v", back.Event)
		}
		if v, ok := back.Get(HeaderBackfill); v != "true" || !ok {
			t.Errorf("%s = %q", HeaderBackfill, v)
		}
		if _, ok := back.Get(HeaderEventID); ok {
			t.Errorf("backfilled message has %s", HeaderEventID)
		}
		if _, ok := live.Get(HeaderBackfill); ok {
			t.Errorf("live message has %s", HeaderBackfill)
		}
		// Apart from the event id and queue, the headers are the same.
		strip := func(h []Header) (out []Header) {
			for _, x := range h {
				switch x.Key {
				case HeaderEventID, HeaderQueueID, HeaderBackfill:
				default:
					out = append(out, x)
				}
			}
			return out
		}
		if !reflect.DeepEqual(strip(back.Headers), strip(live.Headers)) {
			t.Errorf("headers differ:\nbackfilled %v\nlive       %v", back.Headers, live.Headers)
		}
		// The payload has the live event's shape: same members, "flags" moved out.
		var got, want map[string]any
		if err := json.Unmarshal(back.Payload, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(liveEvent), &want); err != nil {
			t.Fatal(err)
		}
		delete(want, "id")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("payload\n%s\nwant the live event without id", back.Payload)
		}
	}
}

// TestBackfillFlagsPosition moves "flags" out of the message wherever it
// is, keeping every other byte of the message.
func TestBackfillFlagsPosition(t *testing.T) {
	m := newMapper(t, Config{})
	tests := []struct{ msg, body, flags string }{
		{`{"id":1,"type":"private","flags":["read"]}`, `{"id":1,"type":"private"}`, `["read"]`},
		{`{"flags":["read"],"id":1,"type":"private"}`, `{"id":1,"type":"private"}`, `["read"]`},
		{`{"id":1,"flags":[],"type":"private"}`, `{"id":1,"type":"private"}`, `[]`},
		{"{ \"flags\" : [ \"a\" ] ,\n \"id\" : 1 }", "{ \"id\" : 1 }", `[ "a" ]`},
		{`{"id":1 , "flags":["x"] }`, `{"id":1 }`, `["x"]`},
		{`{"id":1,"type":"private"}`, `{"id":1,"type":"private"}`, `[]`},
		{` {"id":1} `, `{"id":1}`, `[]`},
		{`{"id":1,"content":"\"flags\":[1],","flags":[2]}`, `{"id":1,"content":"\"flags\":[1],"}`, `[2]`},
	}
	for _, tt := range tests {
		msg, err := m.MapBackfilled([]byte(tt.msg), testQueue)
		if err != nil {
			t.Errorf("%s: %v", tt.msg, err)
			continue
		}
		want := `{"type":"message","message":` + tt.body + `,"flags":` + tt.flags + `}`
		if string(msg.Payload) != want {
			t.Errorf("%s:\n got %s\nwant %s", tt.msg, msg.Payload, want)
		}
	}
	if _, err := m.MapBackfilled([]byte(`{"flags":[]}`), testQueue); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("message without id: %v", err)
	}
	for _, bad := range []string{``, `[]`, `{"id":1`, `{"id":1} x`, `{"id":1,"flags":[],"flags":[]}`} {
		if _, err := m.MapBackfilled([]byte(bad), testQueue); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := m.MapBackfilled([]byte(`{"id":1}`), ""); !errors.Is(err, ErrInvalidQueueID) {
		t.Errorf("empty queue id: %v", err)
	}
}

// FuzzMapBackfilled holds MapBackfilled, which builds the event of a
// backfilled message from the message as it read it, to what reading that
// event back gives: the same message, or an error for the same input.
func FuzzMapBackfilled(f *testing.F) {
	f.Add([]byte(backfilledMessage))
	for _, s := range []string{
		`{"id":1,"type":"private","flags":["read"],"display_recipient":[{"id":3},{"id":1}]}`,
		`{"flags":[],"id":2,"type":"stream","stream_id":1,"display_recipient":"a","subject":"b"}`,
		`{"id":3,"type":"stream","subject":"x","subject":"y"}`,
		`{"id":4,"flags":[[[[[[[[]]]]]]]],"content":"\u00e9"}`,
		`{"id":5}`, `[]`, `{"id":"6"}`,
	} {
		f.Add([]byte(s))
	}
	// At the nesting limit: the message nests one level deeper in its
	// event than alone.
	for _, n := range []int{9997, 9998, 9999, 10000} {
		f.Add([]byte(`{"id":7,"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`))
	}
	m := newMapper(f, Config{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := m.MapBackfilled(raw, testQueue)
		want, werr := backfilledByEvent(m, raw)
		if (err == nil) != (werr == nil) {
			t.Fatalf("MapBackfilled: %v; by its event: %v", err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("MapBackfilled %+v\nby its event %+v", got, want)
		}
	})
}

// backfilledByEvent is MapBackfilled as it was: the synthetic event read
// back with parseEvent.
func backfilledByEvent(m *Mapper, raw []byte) (*Message, error) {
	var msg message
	s := &scanner{data: raw}
	if s.peek() != '{' {
		return nil, s.errorf("a message must be a JSON object")
	}
	if err := s.message(0, &msg); err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	body := raw
	if msg.flagsCut[1] > 0 {
		body = append(append([]byte(nil), raw[:msg.flagsCut[0]]...), raw[msg.flagsCut[1]:]...)
	}
	flags := msg.flags
	if flags == nil {
		flags = []byte("[]")
	}
	lo, hi := trimmed(body)
	payload := []byte(`{"type":"message","message":` + string(body[lo:hi]) + `,"flags":` + string(flags) + `}`)
	var ev event
	if err := parseEvent(payload, nil, &ev); err != nil {
		return nil, err
	}
	return m.build(payload, &ev, testQueue, true)
}
