package source_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// stateKeys returns the top-level keys of a register response.
func stateKeys(t *testing.T, raw json.RawMessage) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("register response %.200s: %v", raw, err)
	}
	return m
}

// TestRegisterOptionsDefault: unset, the options keep what the bridge has
// always asked for: raw Markdown and avatar URLs, on POST /register and
// GET /messages alike, and neither fetch_event_types nor
// include_subscribers sent (the server's defaults).
func TestRegisterOptionsDefault(t *testing.T) {
	e := newEnv(t, zuliptest.Config{})
	c := e.client(e.config())
	e.open(c)
	if _, _, err := c.GetMessages(e.ctx, 0, 1); err != nil {
		t.Fatal(err)
	}
	reg := e.rec.requests("POST", "/api/v1/register")[0].Form
	get := e.rec.requests("GET", "/api/v1/messages")[0].Query
	for _, p := range []struct {
		what string
		v    map[string][]string
	}{{"POST /register", reg}, {"GET /messages", get}} {
		if a, g := first(p.v, "apply_markdown"), first(p.v, "client_gravatar"); a != "false" || g != "false" {
			t.Errorf("%s: apply_markdown=%q client_gravatar=%q, want false and false", p.what, a, g)
		}
	}
	for _, k := range []string{"fetch_event_types", "include_subscribers"} {
		if _, ok := reg[k]; ok {
			t.Errorf("POST /register sent %s=%q unconfigured", k, first(reg, k))
		}
	}
	if qi := e.srv.Queues()[0]; qi.ApplyMarkdown || qi.ClientGravatar {
		t.Errorf("server registered apply_markdown=%v client_gravatar=%v", qi.ApplyMarkdown, qi.ClientGravatar)
	}
}

func first(v map[string][]string, k string) string {
	if len(v[k]) == 0 {
		return ""
	}
	return v[k][0]
}

// TestRegisterOptions: each option is sent as configured, and the initial
// state is what it asks for: only the fetched types (plus message, whose
// max_message_id the backfill needs, when messages are registered for),
// subscriptions with their subscribers.
func TestRegisterOptions(t *testing.T) {
	for _, tc := range []struct {
		name       string
		eventTypes []string
		fetch      []string
		wantFetch  string
		wantKeys   []string // in the initial state
		noKeys     []string
	}{
		{"messages registered: message added", nil, []string{" subscription", "realm_user", "subscription"},
			`["subscription","realm_user","message"]`,
			[]string{"subscriptions", "realm_users", "max_message_id"}, []string{"realm_emoji", "streams", "realm_name"}},
		{"message listed", []string{"message", "reaction"}, []string{"message", "realm_user"},
			`["message","realm_user"]`,
			[]string{"realm_users", "max_message_id"}, []string{"subscriptions", "realm_emoji", "streams", "realm_name"}},
		{"all types registered: message added", []string{"*"}, []string{"subscription"},
			`["subscription","message"]`,
			[]string{"subscriptions", "max_message_id"}, []string{"realm_users", "realm_emoji", "streams", "realm_name"}},
		{"no messages registered", []string{"subscription", "realm_user"}, []string{"subscription"},
			`["subscription"]`,
			[]string{"subscriptions"}, []string{"max_message_id", "realm_users", "realm_emoji", "streams", "realm_name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, zuliptest.Config{})
			cfg := e.config()
			cfg.EventTypes = tc.eventTypes
			cfg.FetchEventTypes = tc.fetch
			cfg.IncludeSubscribers = true
			cfg.ApplyMarkdown = true
			cfg.ClientGravatar = true
			sent := e.send("Denmark", "before the registration")
			_, reg := e.open(e.client(cfg))
			form := e.rec.requests("POST", "/api/v1/register")[0].Form
			want := map[string]string{
				"fetch_event_types":   tc.wantFetch,
				"include_subscribers": "true",
				"apply_markdown":      "true",
				"client_gravatar":     "true",
			}
			for k, v := range want {
				if got := form.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if qi := e.srv.Queues()[0]; !qi.ApplyMarkdown || !qi.ClientGravatar {
				t.Errorf("server registered apply_markdown=%v client_gravatar=%v", qi.ApplyMarkdown, qi.ClientGravatar)
			}
			st := stateKeys(t, reg.Raw)
			for _, k := range tc.wantKeys {
				if _, ok := st[k]; !ok {
					t.Errorf("initial state has no %s: %.300s", k, reg.Raw)
				}
			}
			for _, k := range tc.noKeys {
				if _, ok := st[k]; ok {
					t.Errorf("initial state has %s, which was not fetched", k)
				}
			}
			if raw, ok := st["subscriptions"]; ok {
				var subs []map[string]json.RawMessage
				if err := json.Unmarshal(raw, &subs); err != nil || len(subs) == 0 {
					t.Fatalf("subscriptions %.200s: %v", raw, err)
				}
				for _, s := range subs {
					if _, ok := s["subscribers"]; !ok {
						t.Errorf("subscription %s has no subscribers with include_subscribers", s["name"])
					}
				}
			}
			if _, ok := st["max_message_id"]; ok && reg.MaxMessageID != sent {
				t.Errorf("Registration.MaxMessageID = %d with max_message_id fetched, want %d", reg.MaxMessageID, sent)
			}
		})
	}
}

// TestBackfillRendersLikeLive: GET /messages asks for the rendering the
// queue was registered with, so that a message backfilled after a queue
// loss is, but for its flags, the very object a live message event
// carries: HTML content with apply_markdown, avatar_url null for a
// gravatar with client_gravatar, and neither when off.
func TestBackfillRendersLikeLive(t *testing.T) {
	const content = "**bold** <b>\n\nsecond paragraph"
	for _, tc := range []struct {
		name                          string
		applyMarkdown, clientGravatar bool
		contentType                   string
	}{
		{"default", false, false, "text/x-markdown"},
		{"markdown and gravatar", true, true, "text/html"},
		{"markdown only", true, false, "text/html"},
		{"gravatar only", false, true, "text/x-markdown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, zuliptest.Config{})
			cfg := e.config()
			cfg.ApplyMarkdown, cfg.ClientGravatar = tc.applyMarkdown, tc.clientGravatar
			c := e.client(cfg)
			q, reg := e.open(c)

			liveID := e.send("Denmark", content)
			b := e.next(q)
			evs := all(t, b)
			if len(evs) != 1 || evs[0].MessageID != liveID {
				t.Fatalf("events %+v, want message %d", evs, liveID)
			}
			q.Ack(b.LastEventID())
			var ev struct {
				Message map[string]any `json:"message"`
			}
			if err := json.Unmarshal(evs[0].Raw, &ev); err != nil {
				t.Fatal(err)
			}
			live := ev.Message
			checkRendering(t, "live", live, content, tc.contentType, tc.clientGravatar)

			// The queue is lost; a message sent meanwhile is backfilled.
			e.srv.ExpireQueue(reg.QueueID)
			missedID := e.send("Denmark", content)
			b = e.next(q)
			if b.Lost == nil || b.Registered == nil {
				t.Fatalf("batch %+v does not report the lost queue", b)
			}
			msgs, _, err := c.GetMessages(e.ctx, b.Lost.MaxMessageID, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 1 || msgs[0].ID != missedID {
				t.Fatalf("backfilled %+v, want message %d", msgs, missedID)
			}
			missed := decode(t, msgs[0].Raw)
			checkRendering(t, "backfilled", missed, content, tc.contentType, tc.clientGravatar)

			// The same message, live and from GET /messages: one object.
			again, _, err := c.GetMessages(e.ctx, liveID-1, 1)
			if err != nil || len(again) != 1 || again[0].ID != liveID {
				t.Fatalf("GetMessages(%d): %+v, %v", liveID-1, again, err)
			}
			fetched := decode(t, again[0].Raw)
			delete(fetched, "flags")
			if !reflect.DeepEqual(fetched, live) {
				t.Errorf("message %d from GET /messages differs from its live event:\n got %v\nwant %v", liveID, fetched, live)
			}
			for _, r := range e.rec.requests("GET", "/api/v1/messages") {
				if a, g := r.Query.Get("apply_markdown"), r.Query.Get("client_gravatar"); a != boolString(tc.applyMarkdown) || g != boolString(tc.clientGravatar) {
					t.Errorf("GET /messages apply_markdown=%q client_gravatar=%q, want %v and %v", a, g, tc.applyMarkdown, tc.clientGravatar)
				}
			}
			regs := e.rec.requests("POST", "/api/v1/register")
			if len(regs) != 2 {
				t.Fatalf("%d registrations, want 2", len(regs))
			}
			for _, r := range regs {
				if a, g := r.Form.Get("apply_markdown"), r.Form.Get("client_gravatar"); a != boolString(tc.applyMarkdown) || g != boolString(tc.clientGravatar) {
					t.Errorf("POST /register apply_markdown=%q client_gravatar=%q, want %v and %v", a, g, tc.applyMarkdown, tc.clientGravatar)
				}
			}
		})
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func decode(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("message %.200s: %v", raw, err)
	}
	return m
}

// checkRendering checks a message object's content and avatar against the
// options: raw Markdown or HTML, a URL or null (the sender, iago, uses a
// gravatar in the simulator).
func checkRendering(t *testing.T, what string, m map[string]any, sent, contentType string, clientGravatar bool) {
	t.Helper()
	got, _ := m["content"].(string)
	if m["content_type"] != contentType {
		t.Errorf("%s message: content_type %v, want %s", what, m["content_type"], contentType)
	}
	if html := contentType == "text/html"; html != strings.HasPrefix(got, "<p>") || !html && got != sent {
		t.Errorf("%s message: content %q for content_type %s (sent %q)", what, got, contentType, sent)
	}
	if avatar, ok := m["avatar_url"]; !ok || (avatar == nil) != clientGravatar {
		t.Errorf("%s message: avatar_url %v with client_gravatar=%v", what, avatar, clientGravatar)
	}
}

// TestRegisterOptionsFromEnvironment: the variables parse as documented,
// and a bad BRIDGE_ZULIP_FETCH_EVENT_TYPES is a configuration error naming
// it, with an example.
func TestRegisterOptionsFromEnvironment(t *testing.T) {
	base := []string{"ZULIP_SITE=https://chat.example.com", "ZULIP_EMAIL=bot@chat.example.com", "ZULIP_API_KEY=abcd1234"}
	var cfg source.Config
	if err := envconfig.Parse(&cfg, append(base,
		"BRIDGE_ZULIP_APPLY_MARKDOWN=true", "BRIDGE_ZULIP_CLIENT_GRAVATAR=true",
		"BRIDGE_ZULIP_FETCH_EVENT_TYPES=subscription,realm_user", "BRIDGE_ZULIP_INCLUDE_SUBSCRIBERS=true")); err != nil {
		t.Fatal(err)
	}
	if !cfg.ApplyMarkdown || !cfg.ClientGravatar || !cfg.IncludeSubscribers || !slices.Equal(cfg.FetchEventTypes, []string{"subscription", "realm_user"}) {
		t.Errorf("parsed %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	var unset source.Config
	if err := envconfig.Parse(&unset, append(base, "BRIDGE_ZULIP_FETCH_EVENT_TYPES=")); err != nil {
		t.Fatal(err)
	}
	if unset.ApplyMarkdown || unset.ClientGravatar || unset.IncludeSubscribers || unset.FetchEventTypes != nil {
		t.Errorf("unset (or empty) variables parsed as %+v, want the defaults", unset)
	}

	for _, tc := range []struct {
		fetch []string
		want  []string
	}{
		{[]string{"*"}, []string{"BRIDGE_ZULIP_FETCH_EVENT_TYPES: * is not accepted", "(example: BRIDGE_ZULIP_FETCH_EVENT_TYPES=subscription,realm_user)"}},
		{[]string{"realm user"}, []string{`BRIDGE_ZULIP_FETCH_EVENT_TYPES: "realm user" is not an event type`}},
		{[]string{" ", ""}, []string{"BRIDGE_ZULIP_FETCH_EVENT_TYPES: is empty"}},
	} {
		c := cfg
		c.FetchEventTypes = tc.fetch
		err := c.Validate()
		if err == nil {
			t.Errorf("FetchEventTypes %q: no error", tc.fetch)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("FetchEventTypes %q: error %q, want it to say %q", tc.fetch, err, w)
			}
		}
	}
	if err := envconfig.Parse(&cfg, append(base, "BRIDGE_ZULIP_APPLY_MARKDOWN=yes please")); err == nil ||
		!strings.Contains(err.Error(), "BRIDGE_ZULIP_APPLY_MARKDOWN") {
		t.Errorf("a non-boolean BRIDGE_ZULIP_APPLY_MARKDOWN: %v", err)
	}
}
