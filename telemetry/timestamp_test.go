package telemetry

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestMessageTimestamp(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    float64
		ok      bool
	}{
		{"stream message", `{"type":"message","id":4,"message":{"id":31,"timestamp":1700000000,"content":"hi"},"flags":[]}`, 1700000000, true},
		{"whitespace everywhere", "{ \"type\" : \"message\" ,\n\t\"message\" : {\r\n \"timestamp\" :\t1700000001 } }", 1700000001, true},
		{"message after other members", `{"flags":["read",{"x":"}"}],"id":1,"message":{"sender":{"timestamp":5},"timestamp":1700000002}}`, 1700000002, true},
		{"nested timestamps come first", `{"message":{"edit_history":[{"timestamp":3},{"prev_content":"\"timestamp\":4"}],"last_edit_timestamp":6,"timestamp":1700000003}}`, 1700000003, true},
		{"content mentions the member", `{"message":{"content":"{\"timestamp\": 99} \\\"timestamp\\\": 98","timestamp":1700000004}}`, 1700000004, true},
		{"fractional seconds", `{"message":{"timestamp":1700000005.5}}`, 1700000005.5, true},
		{"exponent", `{"message":{"timestamp":1.7e9}}`, 1.7e9, true},
		{"escaped strings before", `{"a":"\\","b":"\u0022}","message":{"c":"\\\\","timestamp":7}}`, 7, true},
		{"structured CloudEvent", `{"specversion":"1.0","id":"zulip.example.com/message/31","type":"com.github.zulip-bridge.message","data":{"type":"message","message":{"id":31,"timestamp":1700000006}}}`, 1700000006, true},
		{"data inside data is not an envelope", `{"data":{"data":{"message":{"timestamp":1}}}}`, 0, false},
		{"top-level timestamp is not the message's", `{"timestamp":1700000000,"message":{"id":1}}`, 0, false},
		{"no message", `{"type":"typing","op":"start"}`, 0, false},
		{"message is not an object", `{"message":"timestamp","timestamp":1}`, 0, false},
		{"timestamp is a string", `{"message":{"timestamp":"1700000000"}}`, 0, false},
		{"timestamp is null", `{"message":{"timestamp":null}}`, 0, false},
		{"negative", `{"message":{"timestamp":-1}}`, 0, false},
		{"beyond year 9999", `{"message":{"timestamp":1e300}}`, 0, false},
		{"empty", ``, 0, false},
		{"array", `[{"message":{"timestamp":1}}]`, 0, false},
		{"truncated in a string", `{"message":{"content":"abc`, 0, false},
		{"truncated before the value", `{"message":{"timestamp":`, 0, false},
		{"unbalanced", `{"flags":[[[[`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := messageTimestamp([]byte(tt.payload))
			if got != tt.want || ok != tt.ok {
				t.Errorf("messageTimestamp(%s) = %v, %v; want %v, %v", tt.payload, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestMessageTimestampAllocatesNothing(t *testing.T) {
	payload := []byte(`{"type":"message","id":4,"flags":["read"],"message":{"id":31,"reactions":[{"emoji_name":"+1"}],"timestamp":1700000000.25,"content":"<p>hi</p>"}}`)
	if n := testing.AllocsPerRun(100, func() { messageTimestamp(payload) }); n != 0 {
		t.Errorf("messageTimestamp allocates %v times per call, want 0", n)
	}
}

// FuzzMessageTimestamp checks the walker against encoding/json: never a
// panic, and on valid JSON that spells its member names without escapes
// and does not repeat them, the same answer.
func FuzzMessageTimestamp(f *testing.F) {
	for _, s := range []string{
		`{"type":"message","message":{"id":1,"timestamp":1700000000},"flags":[]}`,
		`{"message":{"content":"\"timestamp\":1","timestamp":2}}`,
		`{"a":[{"b":"}"}],"message":{"x":{"timestamp":1},"timestamp":3.5}}`,
		`{"message":{"timestamp":"x"}}`,
		`{"message":[]}`,
		`{"specversion":"1.0","data":{"type":"message","message":{"timestamp":4}}}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, ok := messageTimestamp(payload)
		if !json.Valid(payload) || bytes.IndexByte(payload, '\\') >= 0 || repeatsMembers(payload) {
			return
		}
		var ev map[string]json.RawMessage
		if json.Unmarshal(payload, &ev) != nil {
			ev = nil
		}
		if _, ok := ev["data"]; ok && ev["message"] != nil {
			return // which one the walker reads depends on their order
		}
		var data map[string]json.RawMessage
		if ev["message"] == nil && json.Unmarshal(ev["data"], &data) == nil && data != nil {
			ev = data // a structured CloudEvent
		}
		var msg map[string]json.RawMessage
		var want float64
		wantOK := json.Unmarshal(ev["message"], &msg) == nil &&
			json.Unmarshal(msg["timestamp"], &want) == nil &&
			msg["timestamp"] != nil && string(msg["timestamp"]) != "null" &&
			want >= 0 && want <= maxTimestamp
		if ok != wantOK || (ok && got != want) {
			t.Errorf("messageTimestamp(%s) = %v, %v; encoding/json says %v, %v", payload, got, ok, want, wantOK)
		}
	})
}

// repeatsMembers reports whether an object in the JSON text has a member
// name twice, where encoding/json keeps the last and the walker the first.
func repeatsMembers(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		object bool
		key    bool // the next string token is a member name
		seen   map[string]bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{object: v == '{', key: v == '{', seen: map[string]bool{}})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.object && top.key {
				if top.seen[v] {
					return true
				}
				top.seen[v] = true
				top.key = false
				continue
			}
			if top != nil && top.object {
				top.key = true
			}
		default:
			if top != nil && top.object {
				top.key = true
			}
		}
	}
}

func BenchmarkMessageTimestamp(b *testing.B) {
	payload := []byte(`{"type":"message","id":4,"flags":["read"],"message":{"id":31,"sender_full_name":"Iago","reactions":[],"timestamp":1700000000,"content":"<p>` +
		string(bytes.Repeat([]byte("lorem ipsum "), 200)) + `</p>"}}`)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		messageTimestamp(payload)
	}
}
