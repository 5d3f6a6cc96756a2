package source_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/source"
)

// The values an event's Skipped lists are stepped over by the mapping,
// not scanned again; these tests hold that to giving what mapping's own
// full scan gives.

// TestSkippedMapsAlike reads the documented example events, and a stream
// message of the bench's size, through the stream and maps each with and
// without its Skipped: the same message, or the same error. Message
// events must list their content, or nothing is stepped over.
func TestSkippedMapsAlike(t *testing.T) {
	evs := skipEvents(t)
	m := skipMapper(t)
	var messages, listed int
	for _, ev := range evs {
		checkSkipped(t, ev)
		mapsAlike(t, m, ev)
		if ev.Type == "message" {
			messages++
			if len(ev.Skipped) > 0 {
				listed++
			}
		}
	}
	if messages == 0 || listed != messages {
		t.Fatalf("%d of %d message events list skipped values", listed, messages)
	}
}

// FuzzSkipped holds Event.Skipped to its contract on any response the
// stream accepts: every span a well-formed JSON value of Raw at least
// SkipMin long, in order, and mapping an event with its Skipped gives
// what mapping its Raw alone does.
func FuzzSkipped(f *testing.F) {
	for _, s := range []string{
		`{"result":"success","events":[{"type":"message","id":3,"message":{"id":9,"content":"a long enough text \u00e9 to be over","display_recipient":[{"id":1,"email":"a-long-enough-address@example.com"}]},"flags":["read","mentioned","wildcard"]}]}`,
		`{"result":"success","events":[{"type":"stream","op":"create","id":1,"streams":[{"stream_id":1,"name":"a stream with a long enough name"}],"flags":"a string long enough to be skipped"}]}`,
		`{"result":"success","events":[{"type":"message","id":1,"message":{"id":2,"type":"private","subject":"a subject long enough to be listed","subject":"twice"}}]}`,
		`{"result":"success","events":[{"type":"x","id":1,"nested":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]}`,
		`{"result":"success","found_newest":true,"messages":[{"id":4,"flags":["read"],"content":"a long enough text \u00e9 to be over","type":"stream","stream_id":1,"display_recipient":"a stream with a long name","subject":"s"}]}`,
		`{"result":"success","messages":[{"content":"<p>a long enough paragraph to be listed</p>","id":1,"flags":null},{"id":2,"type":"private","display_recipient":[{"id":1,"email":"someone@example.com"}]}]}`,
	} {
		f.Add([]byte(s))
	}
	m := skipMapper(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		if evs, err := source.ParseEvents(body, -1); err == nil {
			for _, ev := range evs {
				checkSkipped(t, ev)
				mapsAlike(t, m, ev)
			}
		}
		if msgs, _, err := source.ParseMessages(body, -1); err == nil {
			for _, msg := range msgs {
				checkSkipped(t, source.Event{ID: msg.ID, Raw: msg.Raw, Skipped: msg.Skipped})
				backfillsAlike(t, m, msg)
			}
		}
	})
}

// TestSkippedBackfillsAlike is TestSkippedMapsAlike for the message
// objects of a GET /messages response: MapBackfilledMessage gives what
// MapBackfilled of the same bytes gives, and the messages list their
// content.
func TestSkippedBackfillsAlike(t *testing.T) {
	var body bytes.Buffer
	body.WriteString(`{"result":"success","found_newest":true,"messages":[`)
	n := 0
	for _, ev := range skipEvents(t) {
		if ev.Type != "message" {
			continue
		}
		var e struct {
			Message map[string]json.RawMessage `json:"message"`
			Flags   json.RawMessage            `json:"flags"`
		}
		if err := json.Unmarshal(ev.Raw, &e); err != nil {
			t.Fatal(err)
		}
		n++
		e.Message["id"] = json.RawMessage(fmt.Sprint(n))
		if e.Flags != nil {
			e.Message["flags"] = e.Flags
		}
		b, _ := json.Marshal(e.Message)
		if n > 1 {
			body.WriteByte(',')
		}
		body.Write(b)
	}
	body.WriteString(`]}`)
	msgs, _, err := source.ParseMessages(body.Bytes(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n || n < 2 {
		t.Fatalf("%d messages read of %d", len(msgs), n)
	}
	m := skipMapper(t)
	for _, msg := range msgs {
		if len(msg.Skipped) == 0 {
			t.Errorf("message %d lists no skipped value: %s", msg.ID, msg.Raw)
		}
		checkSkipped(t, source.Event{ID: msg.ID, Raw: msg.Raw, Skipped: msg.Skipped})
		backfillsAlike(t, m, msg)
	}
}

// BenchmarkMapEvent maps the events of TestSkippedMapsAlike, a long
// stream message every other one, with their Skipped (MapEvent) and
// without (Map): go test ./source -run '^$' -bench MapEvent -cpu 1
func BenchmarkMapEvent(b *testing.B) {
	all := skipEvents(b)
	var evs []source.Event
	for _, ev := range all {
		evs = append(evs, ev, all[len(all)-1])
	}
	m := skipMapper(b)
	for _, bc := range []struct {
		name string
		f    func(ev source.Event) (*mapping.Message, error)
	}{
		{"Map", func(ev source.Event) (*mapping.Message, error) { return m.Map(ev.Raw, "q1") }},
		{"MapEvent", func(ev source.Event) (*mapping.Message, error) { return m.MapEvent(ev, "q1") }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ev := evs[i%len(evs)]
				i++
				if _, err := bc.f(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// skipEvents returns the documented example events and, last, a stream
// message of the bench's size, read through the stream.
func skipEvents(tb testing.TB) []source.Event {
	tb.Helper()
	long := fmt.Sprintf(`{"type":"message","id":0,"flags":["read","mentioned"],"message":{"id":42,"type":"stream","stream_id":7,"display_recipient":"engineering","subject":"deploys","timestamp":1700000000,"sender_email":"iago@zulip.example.com","avatar_url":"https://secure.gravatar.com/avatar/0123456789abcdef?d=identicon","content":%q}}`,
		"<p>"+string(bytes.Repeat([]byte("a line of a long message \\u00e9 "), 30))+"</p>")
	body, _ := source.ResponseOfExamples(tb, json.RawMessage(long))
	evs, err := source.ParseEvents(body, -1)
	if err != nil {
		tb.Fatal(err)
	}
	return evs
}

func skipMapper(tb testing.TB) *mapping.Mapper {
	site, err := source.ParseSite("https://chat.example.com")
	if err != nil {
		tb.Fatal(err)
	}
	m, err := mapping.New(mapping.Config{}, site)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func checkSkipped(t *testing.T, ev source.Event) {
	t.Helper()
	end := int32(0)
	for _, sp := range ev.Skipped {
		if sp.Start < end || sp.End-sp.Start < source.SkipMin || int(sp.End) > len(ev.Raw) {
			t.Fatalf("event %d: span %v after %d, raw of %d bytes", ev.ID, sp, end, len(ev.Raw))
		}
		v := ev.Raw[sp.Start:sp.End]
		if !json.Valid(v) || bytes.TrimSpace(v) == nil || len(bytes.TrimSpace(v)) != len(v) {
			t.Fatalf("event %d: span %v is not one value: %q", ev.ID, sp, v)
		}
		end = sp.End
	}
}

func backfillsAlike(t *testing.T, m *mapping.Mapper, msg source.Message) {
	t.Helper()
	alike(t, "MapBackfilledMessage", msg.Raw, msg.Skipped,
		func() (*mapping.Message, error) { return m.MapBackfilledMessage(msg, "q1") },
		func() (*mapping.Message, error) { return m.MapBackfilled(msg.Raw, "q1") })
}

func mapsAlike(t *testing.T, m *mapping.Mapper, ev source.Event) {
	t.Helper()
	alike(t, "MapEvent", ev.Raw, ev.Skipped,
		func() (*mapping.Message, error) { return m.MapEvent(ev, "q1") },
		func() (*mapping.Message, error) { return m.Map(ev.Raw, "q1") })
}

// alike fails unless mapping raw with its skipped values (name) gives
// what mapping its bytes alone does.
func alike(t *testing.T, name string, raw []byte, skipped []source.Span, with, without func() (*mapping.Message, error)) {
	t.Helper()
	got, gerr := with()
	want, werr := without()
	if fmt.Sprint(werr) != fmt.Sprint(gerr) || !reflect.DeepEqual(want, got) {
		t.Fatalf("%q with skipped %v:\n%s %+v, %v\nwithout them %+v, %v", raw, skipped, name, got, gerr, want, werr)
	}
}
