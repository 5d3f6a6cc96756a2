package zuliptest_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// TestNarrowFiltering registers queues with each narrow spelling and
// operator, sends one message of each kind and checks which messages each
// queue received.
func TestNarrowFiltering(t *testing.T) {
	const deploy = "@**Bridge Bot** denmark deploy" // mentions the bot
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	tests := []struct {
		name   string
		params url.Values
		want   []string // content of the messages the queue gets
	}{
		{"no narrow", nil, []string{"denmark lunch", deploy, "scotland lunch", "dm to bot", "group dm", "hamlet in verona"}},
		{"stream pair list", url.Values{"narrow": {`[["stream","Denmark"]]`}}, []string{"denmark lunch", deploy}},
		{"single pair, old docs spelling", url.Values{"narrow": {`["stream","Denmark"]`}}, []string{"denmark lunch", deploy}},
		{"channel, case-insensitive", url.Values{"narrow": {`[["channel","dEnMaRk"]]`}}, []string{"denmark lunch", deploy}},
		{"object spelling", url.Values{"narrow": {`[{"operator":"stream","operand":"Scotland"}]`}}, []string{"scotland lunch"}},
		{"stream and topic", url.Values{"narrow": {`[["stream","Denmark"],["topic","LUNCH"]]`}}, []string{"denmark lunch"}},
		{"topic matches a word", url.Values{"narrow": {`[["topic","deploy"]]`}}, []string{deploy}},
		{"sender", url.Values{"narrow": {`[["sender","Hamlet@zulip.example.com"]]`}}, []string{"denmark lunch", "dm to bot", "hamlet in verona"}},
		{"is:private", url.Values{"narrow": {`[["is","private"]]`}}, []string{"dm to bot", "group dm"}},
		{"is:dm", url.Values{"narrow": {`[["is","dm"]]`}}, []string{"dm to bot", "group dm"}},
		{"is:mentioned", url.Values{"narrow": {`[["is","mentioned"]]`}}, []string{deploy}},
		{"event_types without message", url.Values{"event_types": {`["stream"]`}}, nil},
		{"private stream needs a subscription", url.Values{"narrow": {`[["stream","core team"]]`}}, nil},
	}
	queues := make([]string, len(tests))
	for i, tt := range tests {
		queues[i] = a.register(tt.params)
	}
	sends := []zuliptest.SendRequest{
		{Sender: "hamlet@zulip.example.com", To: "Denmark", Topic: "lunch", Content: "denmark lunch"},
		{Sender: "iago@zulip.example.com", To: "Denmark", Topic: "friday deploy", Content: deploy},
		{Sender: "iago@zulip.example.com", To: "Scotland", Topic: "lunch", Content: "scotland lunch"},
		{Sender: "hamlet@zulip.example.com", To: "core team", Topic: "secret", Content: "private stream"},
		{Sender: "hamlet@zulip.example.com", Type: "private", To: zuliptest.DefaultBot.Email, Content: "dm to bot"},
		{Sender: "iago@zulip.example.com", Type: "direct", To: `["othello@zulip.example.com"]`, Content: "dm between others"},
		{Sender: "iago@zulip.example.com", Type: "private", To: `["othello@zulip.example.com","bridge-bot@zulip.example.com"]`, Content: "group dm"},
		{Sender: "hamlet@zulip.example.com", To: "Verona", Topic: "t", Content: "hamlet in verona"},
	}
	for _, m := range sends {
		if _, err := srv.SendMessage(m); err != nil {
			t.Fatalf("send %+v: %v", m, err)
		}
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range a.getEvents(queues[i], -1, true).events(t) {
				m := e["message"].(map[string]any)
				content, _ := m["content"].(string)
				got = append(got, content)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAllPublicStreams(t *testing.T) {
	// A bot subscribed to nothing sees stream messages only with
	// all_public_streams, and never those of private streams.
	realm := zuliptest.DefaultRealm()
	for i := range realm.Streams {
		if realm.Streams[i].Subscribers == nil {
			realm.Streams[i].Subscribers = []int64{8, 9, 10, 11, 12}
		}
	}
	srv, _ := newSim(t, zuliptest.Config{Realm: realm})
	a := newAPI(t, srv)
	plain := a.register(nil)
	all := a.register(url.Values{"all_public_streams": {"true"}})
	for _, to := range []string{"Denmark", "core team"} {
		if _, err := srv.SendMessage(zuliptest.SendRequest{Sender: "hamlet@zulip.example.com", To: to, Topic: "t", Content: to}); err != nil {
			t.Fatal(err)
		}
	}
	if ev := a.getEvents(plain, -1, true).events(t); len(ev) != 0 {
		t.Fatalf("unsubscribed queue got %v", ev)
	}
	ev := a.getEvents(all, -1, true).events(t)
	if len(ev) != 1 || ev[0]["message"].(map[string]any)["display_recipient"] != "Denmark" {
		t.Fatalf("all_public_streams queue got %v", ev)
	}
	// The registration shows the stream as never subscribed.
	r := a.do(http.MethodPost, "/register", url.Values{"fetch_event_types": {`["subscription"]`}})
	if subs, _ := r.body["subscriptions"].([]any); len(subs) != 0 {
		t.Fatalf("subscriptions %v", subs)
	}
	if never, _ := r.body["never_subscribed"].([]any); len(never) != 6 {
		t.Fatalf("never_subscribed %v", r.body["never_subscribed"])
	}
}

// TestInjectedEventFilters: injected events go through the same filters as
// the server's own (event_types, client capabilities, narrow).
func TestInjectedEventFilters(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	all := a.register(nil)
	streamOnly := a.register(url.Values{"event_types": {`["stream"]`}})
	typing := a.register(url.Values{"client_capabilities": {`{"stream_typing_notifications":true}`}})
	narrowed := a.register(url.Values{"narrow": {`[["stream","Verona"]]`}})

	ids := inject(t, srv, `{"type":"stream","op":"delete","streams":[{"stream_id":5,"name":"Verona"}]}`)
	if len(ids) != 4 {
		t.Fatalf("stream event reached %d queues, want 4", len(ids))
	}
	ids = inject(t, srv, `{"type":"typing","op":"start","message_type":"stream","stream_id":5,"topic":"t","sender":{"user_id":10,"email":"hamlet@zulip.example.com"}}`)
	if _, ok := ids[typing]; !ok || len(ids) != 1 {
		t.Fatalf("stream typing reached %v, want only the queue with the capability", ids)
	}
	ids = inject(t, srv, `{"type":"message","flags":[],"message":{"type":"stream","display_recipient":"Denmark","subject":"x","sender_email":"a@b.c","id":99}}`)
	if _, ok := ids[narrowed]; ok || len(ids) != 2 {
		t.Fatalf("Denmark message reached %v", ids)
	}
	if _, ok := ids[streamOnly]; ok {
		t.Fatal("message reached the stream-only queue")
	}
	if got := eventTypes(a.getEvents(all, -1, true).events(t)); !slices.Equal(got, []string{"stream", "message"}) {
		t.Fatalf("all-types queue got %v", got)
	}
}
