package source

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseEvents(t *testing.T) {
	const msgEvent = `{"type":"message","id":7,"message":{"id":4711,"content":"hi \u00e9"},"flags":["read"]}`
	tests := []struct {
		name    string
		body    string
		after   int64
		wantIDs []int64
		wantErr string
	}{
		{name: "heartbeat", body: `{"result":"success","msg":"","events":[{"type":"heartbeat","id":0}]}`, after: -1, wantIDs: []int64{0}},
		{name: "gaps", body: `{"events":[{"id":3,"type":"a"},{"id":9,"type":"b"}],"result":"success"}`, after: 1, wantIDs: []int64{3, 9}},
		{name: "message", body: `{"result":"success","events":[` + msgEvent + `]}`, after: 6, wantIDs: []int64{7}},
		{name: "empty", body: `{"result":"success","events":[]}`, after: 6, wantIDs: []int64{}},
		{name: "truncated", body: `{"result":"success","events":[{"type":"heartbeat","id":0}`, after: -1, wantErr: "unexpected end"},
		{name: "error result", body: `{"result":"error","events":[]}`, wantErr: `result "error"`},
		{name: "no events", body: `{"result":"success"}`, wantErr: "no events field"},
		{name: "not an object", body: `{"result":"success","events":[1]}`, wantErr: "not an object"},
		{name: "no id", body: `{"result":"success","events":[{"type":"x"}]}`, wantErr: "has no id"},
		{name: "string id", body: `{"result":"success","events":[{"type":"x","id":"1"}]}`, wantErr: "event 0"},
		{name: "no type", body: `{"result":"success","events":[{"id":1}]}`, wantErr: "has no type"},
		{name: "not increasing", body: `{"result":"success","events":[{"id":2,"type":"x"},{"id":2,"type":"x"}]}`, after: -1, wantErr: "not above 2"},
		{name: "already acknowledged", body: `{"result":"success","events":[{"id":2,"type":"x"}]}`, after: 2, wantErr: "not above 2"},
		{name: "message without id", body: `{"result":"success","events":[{"id":2,"type":"message","message":{}}]}`, after: -1, wantErr: "no message.id"},
		{name: "other type with odd message field", body: `{"result":"success","events":[{"id":2,"type":"x","message":"text"}]}`, after: -1, wantIDs: []int64{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := parseEvents([]byte(tt.body), tt.after)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != len(tt.wantIDs) {
				t.Fatalf("%d events, want %d", len(evs), len(tt.wantIDs))
			}
			for i, ev := range evs {
				if ev.ID != tt.wantIDs[i] {
					t.Errorf("event %d: id %d, want %d", i, ev.ID, tt.wantIDs[i])
				}
			}
		})
	}

	evs, err := parseEvents([]byte(`{"result":"success","events":[`+msgEvent+`, {"type":"heartbeat","id":8}]}`), 6)
	if err != nil {
		t.Fatal(err)
	}
	if string(evs[0].Raw) != msgEvent {
		t.Errorf("raw bytes changed:\n got %s\nwant %s", evs[0].Raw, msgEvent)
	}
	if evs[0].MessageID != 4711 || evs[0].Heartbeat || !evs[1].Heartbeat || evs[1].MessageID != 0 {
		t.Errorf("flags wrong: %+v", evs)
	}
	m, err := messageOf(evs[0])
	if err != nil || m.ID != 4711 || string(m.Raw) != `{"id":4711,"content":"hi \u00e9"}` || len(m.Flags) != 1 || m.Flags[0] != "read" {
		t.Errorf("messageOf = %+v, %v", m, err)
	}
}

// TestParseEventsExamples runs the parser over Zulip's own example of every
// event type.
func TestParseEventsExamples(t *testing.T) {
	body, n := ResponseOfExamples(t)
	evs, err := parseEvents(body, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n {
		t.Fatalf("%d events, want %d", len(evs), n)
	}
	for _, ev := range evs {
		if ev.Type == "message" && ev.MessageID == 0 {
			t.Errorf("message event %d without message id", ev.ID)
		}
	}
}

// FuzzParseEvents holds the events-response parser to its contract on any
// input: no panic, and whatever it accepts is consistent with the bytes.
func FuzzParseEvents(f *testing.F) {
	for _, s := range []string{
		`{"result":"success","msg":"","events":[{"type":"heartbeat","id":0}]}`,
		`{"result":"success","events":[{"type":"message","id":3,"message":{"id":9,"content":"x"},"flags":[]},{"type":"reaction","op":"add","id":5}]}`,
		`{"result":"success","events":[{"type":"message","id":3,"message":{"id":-1}}]}`,
		`{"result":"success","events":[{"id":1e3,"type":"x"}]}`,
		`{"result":"success","events":[{"id":9223372036854775807,"type":"x"}]}`,
		`{"result":"success","events":[{"type":"heartbeat","id":0}`,
		`{"result":"error","code":"BAD_EVENT_QUEUE_ID","msg":"Bad event queue ID: x","queue_id":"x"}`,
		`{,"result":"success","events":[]}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s), int64(-1))
	}
	f.Fuzz(func(t *testing.T, body []byte, after int64) {
		evs, err := parseEvents(body, after)
		if err != nil {
			if evs != nil {
				t.Fatalf("events with an error: %v", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		prev := after
		for _, ev := range evs {
			if ev.ID <= prev {
				t.Fatalf("id %d not above %d", ev.ID, prev)
			}
			prev = ev.ID
			if !json.Valid(ev.Raw) || !bytes.Contains(body, ev.Raw) {
				t.Fatalf("raw %q is not valid JSON taken from the body", ev.Raw)
			}
			// Members by their exact names, the last of duplicates
			// winning, as the stream reads them.
			var h map[string]json.RawMessage
			if err := json.Unmarshal(ev.Raw, &h); err != nil {
				t.Fatalf("accepted event %q: %v", ev.Raw, err)
			}
			var id int64
			var typ string
			if json.Unmarshal(h["id"], &id) != nil || json.Unmarshal(h["type"], &typ) != nil ||
				id != ev.ID || typ != ev.Type || ev.Heartbeat != (ev.Type == "heartbeat") || ev.Size != len(ev.Raw) {
				t.Fatalf("event %+v disagrees with its bytes %q", ev, ev.Raw)
			}
			if ev.Type == "message" {
				var m map[string]json.RawMessage
				var mid int64
				if json.Unmarshal(h["message"], &m) != nil || json.Unmarshal(m["id"], &mid) != nil || ev.MessageID <= 0 || ev.MessageID != mid {
					t.Fatalf("message id %d disagrees with %q", ev.MessageID, ev.Raw)
				}
			}
		}
	})
}

func TestParseMessages(t *testing.T) {
	body := `{"result":"success","found_newest":true,"messages":[{"id":5,"flags":["read"],"content":"a"},{"id":8,"content":"b"}]}`
	msgs, newest, err := parseMessages([]byte(body), 4)
	if err != nil || !newest || len(msgs) != 2 || msgs[0].ID != 5 || msgs[1].ID != 8 || msgs[0].Flags[0] != "read" {
		t.Fatalf("parseMessages = %+v, %v, %v", msgs, newest, err)
	}
	if string(msgs[1].Raw) != `{"id":8,"content":"b"}` {
		t.Errorf("raw = %s", msgs[1].Raw)
	}
	for _, bad := range []string{
		`{"result":"success","messages":[{"id":4}]}`,
		`{"result":"success","messages":[{"id":6},{"id":5}]}`,
		`{"result":"success","messages":[7]}`,
		`{"result":"error"}`,
		`{"result":"success","messages":[`,
		`{"result":"success","messages":[{"id":5,"flags":[1]}]}`,
		`{"result":"success","messages":[{"id":5,"flags":"read"}]}`,
		`{"result":"success","messages":[{"id":"5"}]}`,
		`{"result":"success","messages":[{"id":5.5}]}`,
		`{"result":"success","messages":[{"content":"no id"}]}`,
		`{"result":"success","found_newest":1,"messages":[]}`,
		`{"result":"success","messages":[{"id":5}]} x`,
		`{"result":"success","messages":[{"id":5,}]}`,
	} {
		if _, _, err := parseMessages([]byte(bad), 4); err == nil {
			t.Errorf("parseMessages accepted %s", bad)
		}
	}
}

// TestParseMessagesAgreesWithEncodingJSON holds the one-pass scan to what
// encoding/json reads of the same responses (the decoder it replaced).
func TestParseMessagesAgreesWithEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`{"result":"success","found_newest":true,"messages":[{"id":5,"flags":["read"],"content":"a"},{"id":8,"content":"b"}]}`,
		`{"result":"success","messages":[{"id":5,"flags":["read","starred","read"]}],"found_newest":false,"anchor":4}`,
		`{"messages":[{"content":{"nested":[1,{"id":99}]},"id":9,"flags":null}],"result":"success","found_newest":true}`,
		`{"result":"success","msg":"","messages":[{"id":5,"flags":[]},{"id":6,"flags":["\u0072ead","caf\u00e9"]},{"\u0069d":7,"sender":"x"}]}`,
		`{"result":"success","messages":[{"id":5,"id":6}]}`,
		`{"result":"success","messages":[]}`,
		` {"result":"success","messages":[ {"id" : 5 , "flags" : [ "read" ] } ] , "found_newest" : true } `,
	} {
		got, gotNewest, err := parseMessages([]byte(body), 4)
		want, wantNewest, wantErr := parseMessagesJSON([]byte(body), 4)
		if err != nil || wantErr != nil {
			t.Fatalf("%s: scan %v, encoding/json %v", body, err, wantErr)
		}
		if gotNewest != wantNewest || len(got) != len(want) {
			t.Fatalf("%s: scan %d messages, newest %v; encoding/json %d, %v", body, len(got), gotNewest, len(want), wantNewest)
		}
		for i := range got {
			if got[i].ID != want[i].ID || string(got[i].Raw) != string(want[i].Raw) || !slices.Equal(got[i].Flags, want[i].Flags) {
				t.Errorf("%s: message %d: scan %+v, encoding/json %+v", body, i, got[i], want[i])
			}
		}
	}
}

// parseMessagesJSON is the encoding/json decoder parseMessages replaced,
// kept as the reference of TestParseMessagesAgreesWithEncodingJSON.
func parseMessagesJSON(body []byte, anchor int64) ([]Message, bool, error) {
	var r struct {
		Result      string            `json:"result"`
		Messages    []json.RawMessage `json:"messages"`
		FoundNewest bool              `json:"found_newest"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, false, err
	}
	if r.Result != "success" {
		return nil, false, fmt.Errorf("result %q, want success", r.Result)
	}
	var out []Message
	prev := anchor
	for i, raw := range r.Messages {
		var m struct {
			ID    *int64   `json:"id"`
			Flags []string `json:"flags"`
		}
		if err := json.Unmarshal(raw, &m); err != nil || !bytes.HasPrefix(raw, []byte("{")) {
			return nil, false, fmt.Errorf("message %d is not an object", i)
		}
		if m.ID == nil || *m.ID <= prev {
			return nil, false, fmt.Errorf("message %d: id missing or not above %d", i, prev)
		}
		prev = *m.ID
		out = append(out, Message{ID: *m.ID, Raw: raw, Flags: m.Flags})
	}
	return out, r.FoundNewest, nil
}

// FuzzEventStream holds the streaming decoder to the whole-body one: read
// a byte at a time, with a small event limit, it finds the same events (the
// oversized ones without their bytes) and the same outcome.
func FuzzEventStream(f *testing.F) {
	for _, s := range []string{
		`{"result":"success","msg":"","events":[{"type":"heartbeat","id":0}]}`,
		`{"result":"success","events":[{"type":"message","id":3,"message":{"id":9,"content":"a long enough text \u00e9 to be over"},"flags":[]},{"type":"reaction","op":"add","id":5}],"queue_id":"q"}`,
		`{"events":[{"id":1,"type":"x","big":[1,2,3,{"a":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}]}],"result":"success"}`,
	} {
		f.Add([]byte(s), 40)
	}
	f.Fuzz(func(t *testing.T, body []byte, limit int) {
		limit = max(limit%200, 0)
		whole, werr := parseEvents(body, -1)
		s := newEventStream(iotest.OneByteReader(bytes.NewReader(body)), -1, limit)
		var got []Event
		var serr error
		for {
			ev, err := s.next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					serr = err
				}
				break
			}
			got = append(got, ev)
		}
		if (werr == nil) != (serr == nil) {
			t.Fatalf("whole: %v, streamed: %v", werr, serr)
		}
		if werr != nil {
			return
		}
		if len(got) != len(whole) {
			t.Fatalf("%d events streamed, %d whole", len(got), len(whole))
		}
		for i, ev := range got {
			w := whole[i]
			if ev.ID != w.ID || ev.Type != w.Type || ev.MessageID != w.MessageID || ev.Size != w.Size {
				t.Fatalf("event %d: streamed %+v, whole %+v", i, ev, w)
			}
			if over := ev.Size > limit; ev.Oversized != over || (over && ev.Raw != nil) || (!over && !bytes.Equal(ev.Raw, w.Raw)) {
				t.Fatalf("event %d (%d bytes, limit %d): oversized %v, raw %q", i, ev.Size, limit, ev.Oversized, ev.Raw)
			}
			if want := w.Skipped; ev.Oversized && ev.Skipped != nil || !ev.Oversized && !slices.Equal(ev.Skipped, want) {
				t.Fatalf("event %d: streamed skipped %v, whole %v", i, ev.Skipped, want)
			}
		}
	})
}

// TestSpecial8 checks the eight-bytes-at-a-time test against the byte
// table: every byte value at every position of an otherwise plain word.
func TestSpecial8(t *testing.T) {
	for pos := range 8 {
		for c := range 256 {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			if got := special8(binary.LittleEndian.Uint64(w)); got != !strSafe[c] {
				t.Fatalf("byte %#x at %d: special8 = %v", c, pos, got)
			}
		}
	}
	if special8(binary.LittleEndian.Uint64([]byte("é日本語ab"[:8]))) {
		t.Error("UTF-8 bytes taken for special ones")
	}
}
