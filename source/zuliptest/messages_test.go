package zuliptest_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

func TestSendMessage(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	tests := []struct {
		name       string
		params     url.Values
		stream     string
		topic      string
		recipients []int64
	}{
		{"stream by name", url.Values{"type": {"stream"}, "to": {"Denmark"}, "topic": {"a"}}, "Denmark", "a", nil},
		{"stream name, any case", url.Values{"type": {"stream"}, "to": {"denmark"}, "topic": {"a"}}, "Denmark", "a", nil},
		{"stream by id", url.Values{"type": {"stream"}, "to": {"3"}, "topic": {"b"}}, "Scotland", "b", nil},
		{"stream as JSON string", url.Values{"type": {"stream"}, "to": {`"Verona"`}, "topic": {"c"}}, "Verona", "c", nil},
		{"stream as JSON list", url.Values{"type": {"stream"}, "to": {`[5]`}, "topic": {"c"}}, "Verona", "c", nil},
		{"channel type", url.Values{"type": {"channel"}, "to": {"Rome"}, "topic": {"d"}}, "Rome", "d", nil},
		{"legacy subject", url.Values{"type": {"stream"}, "to": {"Rome"}, "subject": {"old"}}, "Rome", "old", nil},
		{"private, plain email", url.Values{"type": {"private"}, "to": {"hamlet@zulip.example.com"}}, "", "", []int64{10, 20}},
		{"private, JSON emails", url.Values{"type": {"private"}, "to": {`["hamlet@zulip.example.com","iago@zulip.example.com"]`}}, "", "", []int64{8, 10, 20}},
		{"direct, JSON ids", url.Values{"type": {"direct"}, "to": {`[11]`}}, "", "", []int64{11, 20}},
		{"direct, comma-separated", url.Values{"type": {"direct"}, "to": {"hamlet@zulip.example.com, othello@zulip.example.com"}}, "", "", []int64{10, 11, 20}},
		{"direct to self", url.Values{"type": {"direct"}, "to": {`[20]`}}, "", "", []int64{20}},
	}
	var lastID float64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.params.Set("content", tt.name)
			r := a.do(http.MethodPost, "/messages", tt.params)
			id, _ := r.body["id"].(float64)
			if r.status != http.StatusOK || id <= lastID {
				t.Fatalf("%d %s (previous id %v)", r.status, r.raw, lastID)
			}
			lastID = id
			msgs := srv.Messages()
			m := msgs[len(msgs)-1]
			if m.ID != int64(id) || m.Stream != tt.stream || m.Topic != tt.topic || !slices.Equal(m.RecipientIDs, tt.recipients) || m.Content != tt.name || m.SenderEmail != zuliptest.DefaultBot.Email {
				t.Fatalf("stored %+v", m)
			}
		})
	}
}

func TestSendMessageErrors(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	tests := []struct {
		name   string
		params url.Values
		want   string
	}{
		{"unknown stream", url.Values{"type": {"stream"}, "to": {"Atlantis"}, "topic": {"t"}, "content": {"x"}},
			`{"result":"error","msg":"Channel 'Atlantis' does not exist","stream":"Atlantis","code":"STREAM_DOES_NOT_EXIST"}`},
		{"unknown stream id", url.Values{"type": {"stream"}, "to": {"404"}, "topic": {"t"}, "content": {"x"}},
			`{"result":"error","msg":"Channel with ID '404' does not exist","stream_id":404,"code":"STREAM_DOES_NOT_EXIST"}`},
		{"missing topic", url.Values{"type": {"stream"}, "to": {"Denmark"}, "content": {"x"}},
			`{"result":"error","msg":"Missing topic","code":"BAD_REQUEST"}`},
		{"empty content", url.Values{"type": {"stream"}, "to": {"Denmark"}, "topic": {"t"}, "content": {" "}},
			`{"result":"error","msg":"Message must not be empty","code":"BAD_REQUEST"}`},
		{"missing content", url.Values{"type": {"stream"}, "to": {"Denmark"}, "topic": {"t"}},
			`{"result":"error","msg":"Missing 'content' argument","var_name":"content","code":"REQUEST_VARIABLE_MISSING"}`},
		{"missing to", url.Values{"type": {"stream"}, "content": {"x"}},
			`{"result":"error","msg":"Missing 'to' argument","var_name":"to","code":"REQUEST_VARIABLE_MISSING"}`},
		{"unknown email", url.Values{"type": {"private"}, "to": {"ghost@zulip.example.com"}, "content": {"x"}},
			`{"result":"error","msg":"Invalid email 'ghost@zulip.example.com'","code":"BAD_REQUEST"}`},
		{"unknown user id", url.Values{"type": {"private"}, "to": {"[999]"}, "content": {"x"}},
			`{"result":"error","msg":"Invalid user ID 999","code":"BAD_REQUEST"}`},
		{"bad type", url.Values{"type": {"carrier pigeon"}, "to": {"Denmark"}, "content": {"x"}},
			`{"result":"error","msg":"Invalid type: must be one of stream, channel, private, direct","var_name":"type","code":"REQUEST_VARIABLE_INVALID"}`},
		{"private stream", url.Values{"type": {"stream"}, "to": {"core team"}, "topic": {"t"}, "content": {"x"}},
			`{"result":"error","msg":"Not authorized to send to channel 'core team'","code":"BAD_REQUEST"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(http.MethodPost, "/messages", tt.params)
			if r.status != http.StatusBadRequest || string(r.raw) != tt.want {
				t.Fatalf("%d %s, want 400 %s", r.status, r.raw, tt.want)
			}
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages stored by failed sends", n)
	}
	if _, err := srv.SendMessage(zuliptest.SendRequest{Sender: "ghost@nowhere", To: "Denmark", Topic: "t", Content: "x"}); err == nil {
		t.Fatal("SendMessage accepted an unknown sender")
	}
}

// TestMessageEventShape checks the message event of a stream and a direct
// message against the shape upstream sends, for both apply_markdown
// settings.
func TestMessageEventShape(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	markdown := a.register(url.Values{"event_types": {`["message"]`}})
	html := a.register(url.Values{"event_types": {`["message"]`}, "apply_markdown": {"true"}, "client_gravatar": {"false"}})
	id, err := srv.SendMessage(zuliptest.SendRequest{Sender: "hamlet@zulip.example.com", To: "Denmark", Topic: "castle", Content: "a <b> & c"})
	if err != nil {
		t.Fatal(err)
	}
	dm, err := srv.SendMessage(zuliptest.SendRequest{Sender: "hamlet@zulip.example.com", Type: "private", To: zuliptest.DefaultBot.Email, Content: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if dm != id+1 {
		t.Fatalf("message ids %d then %d", id, dm)
	}

	ev := a.getEvents(markdown, -1, true).events(t)
	if len(ev) != 2 {
		t.Fatalf("events %v", ev)
	}
	m := ev[0]["message"].(map[string]any)
	want := map[string]any{
		"id": float64(id), "type": "stream", "display_recipient": "Denmark", "stream_id": 1.0, "subject": "castle",
		"sender_email": "hamlet@zulip.example.com", "sender_id": 10.0, "sender_full_name": "King Hamlet",
		"content": "a <b> & c", "content_type": "text/x-markdown", "avatar_url": nil, "sender_realm_str": "zulip", "is_me_message": false,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("stream message %s = %#v, want %#v", k, m[k], v)
		}
	}
	for _, k := range []string{"recipient_id", "timestamp", "reactions", "submessages", "topic_links", "client"} {
		if _, ok := m[k]; !ok {
			t.Errorf("stream message lacks %s", k)
		}
	}
	if flags, _ := ev[0]["flags"].([]any); flags == nil || len(flags) != 0 {
		t.Errorf("flags %v, want []", ev[0]["flags"])
	}
	d := ev[1]["message"].(map[string]any)
	if d["type"] != "private" || d["stream_id"] != nil {
		t.Errorf("direct message %v", d)
	}
	recipients, _ := d["display_recipient"].([]any)
	if len(recipients) != 2 || recipients[0].(map[string]any)["email"] != "hamlet@zulip.example.com" || recipients[1].(map[string]any)["id"] != 20.0 {
		t.Errorf("display_recipient %v", d["display_recipient"])
	}

	h := a.getEvents(html, -1, true).events(t)[0]["message"].(map[string]any)
	if h["content"] != "<p>a &lt;b&gt; &amp; c</p>" || h["content_type"] != "text/html" {
		t.Errorf("rendered content %q (%v)", h["content"], h["content_type"])
	}
	if url, _ := h["avatar_url"].(string); url == "" {
		t.Errorf("client_gravatar=false: avatar_url %v", h["avatar_url"])
	}
}

func TestGetMessages(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	send := func(sender, to, topic string) int64 {
		t.Helper()
		req := zuliptest.SendRequest{Sender: sender, To: to, Topic: topic, Content: "m"}
		if topic == "" {
			req.Type = "private"
		}
		id, err := srv.SendMessage(req)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	bot := zuliptest.DefaultBot.Email
	const hamlet, iago = "hamlet@zulip.example.com", "iago@zulip.example.com"
	send(bot, "Denmark", "a")                   // 1, read by the bot (its own)
	send(hamlet, "Denmark", "a")                // 2, first unread
	send(hamlet, "core team", "x")              // 3, invisible to the bot
	send(iago, "Scotland", "b")                 // 4
	send(hamlet, bot, "")                       // 5, direct
	send(iago, "Denmark", "b")                  // 6
	send(iago, "othello@zulip.example.com", "") // 7, direct between others: invisible

	tests := []struct {
		name                                  string
		params                                url.Values
		ids                                   []int64
		anchor                                float64
		foundAnchor, foundOldest, foundNewest bool
	}{
		{"newest", url.Values{"anchor": {"newest"}, "num_before": {"3"}, "num_after": {"0"}}, []int64{4, 5, 6}, 1e16, false, false, true},
		{"newest, all", url.Values{"anchor": {"newest"}, "num_before": {"10"}, "num_after": {"0"}}, []int64{1, 2, 4, 5, 6}, 1e16, false, true, true},
		{"oldest", url.Values{"anchor": {"oldest"}, "num_before": {"0"}, "num_after": {"2"}}, []int64{1, 2}, 0, false, true, false},
		{"id, both sides", url.Values{"anchor": {"4"}, "num_before": {"1"}, "num_after": {"1"}}, []int64{2, 4, 5}, 4, true, false, false},
		{"backfill after a gap", url.Values{"anchor": {"2"}, "num_before": {"0"}, "num_after": {"100"}, "include_anchor": {"false"}}, []int64{4, 5, 6}, 2, false, false, true},
		{"anchor not visible", url.Values{"anchor": {"3"}, "num_before": {"1"}, "num_after": {"1"}}, []int64{2, 4}, 3, false, false, false},
		{"first_unread", url.Values{"anchor": {"first_unread"}, "num_before": {"0"}, "num_after": {"1"}}, []int64{2, 4}, 2, true, false, false},
		{"narrow pairs", url.Values{"anchor": {"newest"}, "num_before": {"10"}, "num_after": {"0"}, "narrow": {`[["stream","denmark"],["topic","B"]]`}}, []int64{6}, 1e16, false, true, true},
		{"narrow objects, negated", url.Values{"anchor": {"oldest"}, "num_before": {"0"}, "num_after": {"10"}, "narrow": {`[{"operator":"channel","operand":"Denmark"},{"operator":"sender","operand":"iago@zulip.example.com","negated":true}]`}}, []int64{1, 2}, 0, false, true, true},
		{"narrow is:dm", url.Values{"anchor": {"newest"}, "num_before": {"10"}, "num_after": {"0"}, "narrow": {`[["is","dm"]]`}}, []int64{5}, 1e16, false, true, true},
		{"narrow stream id", url.Values{"anchor": {"oldest"}, "num_before": {"0"}, "num_after": {"10"}, "narrow": {`[{"operator":"stream","operand":3}]`}}, []int64{4}, 0, false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(http.MethodGet, "/messages", tt.params)
			if r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			var ids []int64
			for _, m := range r.body["messages"].([]any) {
				ids = append(ids, int64(m.(map[string]any)["id"].(float64)))
			}
			if !slices.Equal(ids, tt.ids) {
				t.Errorf("ids %v, want %v", ids, tt.ids)
			}
			got := []any{r.body["anchor"], r.body["found_anchor"], r.body["found_oldest"], r.body["found_newest"]}
			want := []any{tt.anchor, tt.foundAnchor, tt.foundOldest, tt.foundNewest}
			if !slices.Equal(got, want) {
				t.Errorf("anchor, found_anchor, found_oldest, found_newest = %v, want %v", got, want)
			}
		})
	}

	// Messages carry the reader's flags.
	r := a.do(http.MethodGet, "/messages", url.Values{"anchor": {"1"}, "num_before": {"0"}, "num_after": {"1"}})
	msgs := r.body["messages"].([]any)
	if f := msgs[0].(map[string]any)["flags"].([]any); len(f) != 1 || f[0] != "read" {
		t.Errorf("own message flags %v", f)
	}
	if f := msgs[1].(map[string]any)["flags"].([]any); len(f) != 0 {
		t.Errorf("other's message flags %v", f)
	}

	for name, params := range map[string]url.Values{
		"missing anchor":     {"num_before": {"1"}, "num_after": {"1"}},
		"missing num_before": {"anchor": {"newest"}, "num_after": {"1"}},
		"bad anchor":         {"anchor": {"middle"}, "num_before": {"1"}, "num_after": {"1"}},
		"too many":           {"anchor": {"newest"}, "num_before": {"5000"}, "num_after": {"1"}},
		"bad operator":       {"anchor": {"newest"}, "num_before": {"1"}, "num_after": {"0"}, "narrow": {`[["color","red"]]`}},
	} {
		if r := a.do(http.MethodGet, "/messages", params); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
}
