package mapping

import "testing"

// TestEventTimestamp: Event.Timestamp is message.timestamp of a message
// event, live or backfilled, in every CloudEvents mode, and agrees with
// peek; 0 for other events (even those with a time of their own) and for
// a timestamp that is not a non-negative integer.
func TestEventTimestamp(t *testing.T) {
	tests := []struct {
		name  string
		event string
		want  int64
	}{
		{"stream message", `{"type":"message","id":4,"message":{"id":31,"type":"stream","stream_id":1,"display_recipient":"Denmark","subject":"t","timestamp":1700000000,"content":"hi"},"flags":[]}`, 1700000000},
		{"direct message", `{"type":"message","id":4,"flags":[],"message":{"timestamp":1700000001,"id":32,"type":"private","display_recipient":[{"id":1},{"id":2}]}}`, 1700000001},
		{"nested timestamps do not count", `{"type":"message","id":4,"message":{"id":33,"edit_history":[{"timestamp":3}],"sender":{"timestamp":5},"timestamp":1700000002}}`, 1700000002},
		{"top-level timestamp is not the message's", `{"type":"message","id":4,"timestamp":9,"message":{"id":34}}`, 0},
		{"no timestamp", `{"type":"message","id":4,"message":{"id":35}}`, 0},
		{"fractional", `{"type":"message","id":4,"message":{"id":36,"timestamp":1700000005.5}}`, 0},
		{"exponent", `{"type":"message","id":4,"message":{"id":37,"timestamp":1.7e9}}`, 0},
		{"negative", `{"type":"message","id":4,"message":{"id":38,"timestamp":-1}}`, 0},
		{"string", `{"type":"message","id":4,"message":{"id":39,"timestamp":"1700000000"}}`, 0},
		{"null", `{"type":"message","id":4,"message":{"id":40,"timestamp":null}}`, 0},
		{"beyond int64", `{"type":"message","id":4,"message":{"id":41,"timestamp":99999999999999999999}}`, 0},
		{"beyond year 9999 is kept", `{"type":"message","id":4,"message":{"id":42,"timestamp":253402300800}}`, 253402300800},
		{"update_message has an edit time, not a message time", `{"type":"update_message","id":5,"message_id":31,"edit_timestamp":1700000009,"message":{"timestamp":1}}`, 0},
		{"reaction", `{"type":"reaction","op":"add","id":6,"message_id":31,"timestamp":1700000000}`, 0},
	}
	modes := []Config{{}, {CloudEvents: CloudEventsBinary, Sink: SinkNATS}, {CloudEvents: CloudEventsStructured, Sink: SinkKafka}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, cfg := range modes {
				msg, err := newMapper(t, cfg).Map([]byte(tt.event), testQueue)
				if err != nil {
					t.Fatal(err)
				}
				if msg.Event.Timestamp != tt.want {
					t.Errorf("%+v: Timestamp = %d, want %d", cfg, msg.Event.Timestamp, tt.want)
				}
			}
			info, err := peek([]byte(tt.event))
			if err != nil || info.Timestamp != tt.want {
				t.Errorf("peek: Timestamp = %d (%v), want %d", info.Timestamp, err, tt.want)
			}
		})
	}

	// Backfilled: from the message object of GET /messages.
	for _, cfg := range modes {
		back, err := newMapper(t, cfg).MapBackfilled([]byte(backfilledMessage), testQueue)
		if err != nil {
			t.Fatal(err)
		}
		if back.Event.Timestamp != 1594825416 {
			t.Errorf("%+v: backfilled Timestamp = %d, want 1594825416", cfg, back.Event.Timestamp)
		}
	}
	// Control events have none.
	ctl, err := newMapper(t, Config{}).Control("resync", testQueue, []byte(`{"timestamp":1700000000}`))
	if err != nil {
		t.Fatal(err)
	}
	if ctl.Event.Timestamp != 0 {
		t.Errorf("control event Timestamp = %d, want 0", ctl.Event.Timestamp)
	}
}
