package consumer_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v4"
)

var update = flag.Bool("update", false, "rewrite docs/asyncapi.yaml")

// TestAsyncAPIUpToDate: docs/asyncapi.yaml is what the generator makes of
// Zulip's OpenAPI description today.
func TestAsyncAPIUpToDate(t *testing.T) {
	got := generateAsyncAPI(t)
	if *update {
		if err := os.WriteFile(asyncAPIPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(asyncAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date: go test ./consumer -run TestAsyncAPIUpToDate -update", asyncAPIPath)
	}
}

// asyncAPI is docs/asyncapi.yaml loaded for validation.
type asyncAPI struct {
	channels []apiChannel
	schemas  map[string]*jsonschema.Schema // by JSON pointer into the document
	messages map[string]map[string]any
}

type apiChannel struct {
	id, server string
	address    *regexp.Regexp
	messages   []string
}

const asyncAPIURL = "file:///zulip-bridge/docs/asyncapi.json"

var loadedAsyncAPI = sync.OnceValues(func() (*asyncAPI, error) {
	src, err := os.ReadFile(asyncAPIPath)
	if err != nil {
		return nil, err
	}
	var y any
	if err := yaml.Unmarshal(src, &y); err != nil {
		return nil, fmt.Errorf("%s: %w", asyncAPIPath, err)
	}
	// Through JSON: the schema library takes JSON values.
	j, err := json.Marshal(y)
	if err != nil {
		return nil, fmt.Errorf("%s as JSON: %w", asyncAPIPath, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return nil, err
	}
	root := doc.(map[string]any)
	if root["asyncapi"] != "3.0.0" {
		return nil, fmt.Errorf("%s: asyncapi %v, want 3.0.0", asyncAPIPath, root["asyncapi"])
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7) // AsyncAPI's schema format is a superset of draft 07
	if err := c.AddResource(asyncAPIURL, doc); err != nil {
		return nil, err
	}
	a := &asyncAPI{schemas: map[string]*jsonschema.Schema{}, messages: map[string]map[string]any{}}
	compile := func(ptr string) error {
		s, err := c.Compile(asyncAPIURL + "#" + ptr)
		if err != nil {
			return fmt.Errorf("%s: schema %s: %w", asyncAPIPath, ptr, err)
		}
		a.schemas[ptr] = s
		return nil
	}
	comps := root["components"].(map[string]any)
	for name, m := range comps["messages"].(map[string]any) {
		msg := m.(map[string]any)
		a.messages[name] = msg
		base := "/components/messages/" + strings.ReplaceAll(name, "/", "~1")
		for _, part := range []string{"headers", "payload"} {
			if msg[part] == nil {
				return nil, fmt.Errorf("%s: message %s has no %s", asyncAPIPath, name, part)
			}
			if err := compile(base + "/" + part); err != nil {
				return nil, err
			}
		}
		if key := dig(msg, "bindings", "kafka", "key"); key != nil {
			if err := compile(base + "/bindings/kafka/key"); err != nil {
				return nil, err
			}
		}
	}
	for id, ch := range root["channels"].(map[string]any) {
		ch := ch.(map[string]any)
		addr := ch["address"].(string)
		pattern := "^" + strings.ReplaceAll(regexp.QuoteMeta(addr), `\{stream_id\}`, `[0-9]+`) + "$"
		servers := ch["servers"].([]any)
		if len(servers) != 1 {
			return nil, fmt.Errorf("channel %s: %d servers, want 1", id, len(servers))
		}
		ac := apiChannel{id: id, address: regexp.MustCompile(pattern), server: strings.TrimPrefix(servers[0].(map[string]any)["$ref"].(string), "#/servers/")}
		for name, ref := range ch["messages"].(map[string]any) {
			want := "#/components/messages/" + name
			if r := ref.(map[string]any)["$ref"]; r != want {
				return nil, fmt.Errorf("channel %s: message %s refers to %v, want %s", id, name, r, want)
			}
			if a.messages[name] == nil {
				return nil, fmt.Errorf("channel %s: no message %s in components", id, name)
			}
			ac.messages = append(ac.messages, name)
		}
		sort.Strings(ac.messages)
		a.channels = append(a.channels, ac)
	}
	for id, op := range root["operations"].(map[string]any) {
		ref, _ := dig(op.(map[string]any), "channel", "$ref").(string)
		if !strings.HasPrefix(ref, "#/channels/") || root["channels"].(map[string]any)[strings.TrimPrefix(ref, "#/channels/")] == nil {
			return nil, fmt.Errorf("operation %s: channel %q is not in the document", id, ref)
		}
	}
	sort.Slice(a.channels, func(i, j int) bool { return a.channels[i].id < a.channels[j].id })
	return a, nil
})

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func loadAsyncAPI(t *testing.T) *asyncAPI {
	t.Helper()
	a, err := loadedAsyncAPI()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// validate checks one published message against the document: exactly one
// channel of the broker has its subject (NATS) or topic (Kafka), and one of
// that channel's messages accepts its headers, payload and (Kafka) key.
// It returns the channel's id.
func (a *asyncAPI) validate(broker, name, key string, headers map[string]string, payload []byte) (string, error) {
	var chs []apiChannel
	for _, ch := range a.channels {
		if ch.server == broker && ch.address.MatchString(name) {
			chs = append(chs, ch)
		}
	}
	if len(chs) != 1 {
		return "", fmt.Errorf("%s %s: %d channels match, want 1", broker, name, len(chs))
	}
	ch := chs[0]
	h := map[string]any{}
	for k, v := range headers {
		h[k] = v
	}
	body, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return ch.id, fmt.Errorf("%s %s: payload is not JSON: %v", broker, name, err)
	}
	var problems []string
	for _, m := range ch.messages {
		base := "/components/messages/" + m
		if err := a.schemas[base+"/headers"].Validate(h); err != nil {
			problems = append(problems, fmt.Sprintf("message %s: headers: %v", m, err))
			continue
		}
		if err := a.schemas[base+"/payload"].Validate(body); err != nil {
			problems = append(problems, fmt.Sprintf("message %s: payload: %v", m, err))
			continue
		}
		if broker == "kafka" && key != "" {
			ks := a.schemas[base+"/bindings/kafka/key"]
			if ks == nil {
				problems = append(problems, fmt.Sprintf("message %s: key %q, the document describes none", m, key))
				continue
			}
			if err := ks.Validate(key); err != nil {
				problems = append(problems, fmt.Sprintf("message %s: key: %v", m, err))
				continue
			}
		}
		return ch.id, nil
	}
	return ch.id, fmt.Errorf("%s %s (channel %s) matches none of its messages:\n%s", broker, name, ch.id, strings.Join(problems, "\n"))
}

// validateRun validates every message of an end-to-end run against the
// document, and that the run used several channels.
func validateRun(t *testing.T, run *mixedRun, broker string) {
	t.Helper()
	a := loadAsyncAPI(t)
	used := map[string]bool{}
	failures := 0
	for _, m := range run.msgs {
		name := m.subject
		if broker == "kafka" {
			name = m.topic
		}
		id, err := a.validate(broker, name, m.key, m.headers, m.payload)
		if err != nil {
			if failures++; failures <= 5 {
				t.Errorf("docs/asyncapi.yaml: %v\npayload: %.500s", err, m.payload)
			}
			continue
		}
		used[id] = true
	}
	if failures > 5 {
		t.Errorf("docs/asyncapi.yaml: %d messages of %d do not validate", failures, len(run.msgs))
	}
	if len(used) < 10 {
		t.Errorf("the run used %d channels of the document, want a mixed run", len(used))
	}
}

// TestAsyncAPIExamples validates every one of Zulip's example events, with
// the names, key and headers the bridge gives it (the mapping's golden
// files), against the document, for both brokers; and a backfilled
// message, a direct message and a control event of each kind.
func TestAsyncAPIExamples(t *testing.T) {
	a := loadAsyncAPI(t)
	events := loadExamples(t, exampleFiles[0])
	for i, raw := range events {
		var ev struct{ Type, Op string }
		_ = json.Unmarshal(raw, &ev)
		name := ev.Type
		if ev.Op != "" {
			name += "-" + ev.Op
		}
		b, err := os.ReadFile(fmt.Sprintf("../mapping/testdata/golden/%02d-%s.json", i, name))
		if err != nil {
			t.Fatal(err)
		}
		var g struct {
			Subject, Topic string
			Key            *string
			Headers        []string
		}
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatal(err)
		}
		h := map[string]string{}
		for _, line := range g.Headers {
			k, v, _ := strings.Cut(line, ": ")
			h[k] = v
		}
		key := ""
		if g.Key != nil {
			key = *g.Key
		}
		if _, err := a.validate("nats", g.Subject, "", h, raw); err != nil {
			t.Errorf("example %d: %v", i, err)
		}
		if _, err := a.validate("kafka", g.Topic, key, h, raw); err != nil {
			t.Errorf("example %d: %v", i, err)
		}
	}

	base := map[string]string{
		"Zulip-Queue-Id": "q1", "Zulip-Site": "chat.example.com", "Content-Type": "application/json",
	}
	headers := func(kv ...string) map[string]string {
		h := map[string]string{}
		for k, v := range base {
			h[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	for _, tc := range []struct {
		name, subject, topic, key string
		headers                   map[string]string
		payload                   string
		valid                     bool
	}{
		{"backfilled message", "zulip.message.stream.1", "zulip.message", "stream:1:test",
			headers("Zulip-Event-Type", "message", "Zulip-Dedup-Key", "chat.example.com/message/4", "Zulip-Backfill", "true"),
			`{"type":"message","message":{"id":4,"sender_id":10,"content":"hi","recipient_id":23,"timestamp":1594825416,"client":"test suite","subject":"test","topic_links":[],"is_me_message":false,"reactions":[],"submessages":[],"sender_full_name":"King Hamlet","sender_email":"user10@zulip.testserver","sender_realm_str":"zulip","display_recipient":"Denmark","type":"stream","stream_id":1,"avatar_url":null,"content_type":"text/x-markdown"},"flags":["read"]}`, true},
		{"resync", "zulip.bridge.resync", "zulip.bridge", "",
			headers("Zulip-Event-Type", "bridge", "Zulip-Event-Op", "resync", "Zulip-Dedup-Key", "chat.example.com/q1/bridge.resync"),
			`{"type":"resync","site":"https://chat.example.com","old_queue_id":"q1","old_last_event_id":2,"new_queue_id":"q2","detected_at":"2026-01-01T00:00:00Z","registered_at":"2026-01-01T00:00:01Z","from_message_id":4,"to_message_id":15,"messages_backfilled":11,"unrecoverable":"..."}`, true},
		{"invalid", "zulip.bridge.invalid", "zulip.bridge", "",
			headers("Zulip-Event-Type", "bridge", "Zulip-Event-Op", "invalid", "Zulip-Dedup-Key", "chat.example.com/q1/7"),
			`{"reason":"invalid zulip event","id":"7","event":{"type":"bad type","id":7}}`, true},
		{"too large", "zulip.bridge.invalid", "zulip.bridge", "",
			headers("Zulip-Event-Type", "bridge", "Zulip-Event-Op", "invalid", "Zulip-Dedup-Key", "chat.example.com/message/9"),
			`{"reason":"too large","id":"message/9","type":"message","dedup_key":"chat.example.com/message/9","subject":"zulip.message.direct","bytes":2000000,"limit":1048576}`, true},
		// What the document must refuse, so that the checks above mean something.
		{"resync without its queue", "zulip.bridge.resync", "zulip.bridge", "",
			headers("Zulip-Event-Type", "bridge", "Zulip-Event-Op", "resync", "Zulip-Dedup-Key", "chat.example.com/q1/bridge.resync"),
			`{"type":"resync"}`, false},
		{"message without the dedup key", "zulip.message.direct", "zulip.message", "dm:8,10",
			headers("Zulip-Event-Type", "message", "Zulip-Event-Id", "3"),
			string(events[10]), false},
		{"reaction with a string message id", "zulip.reaction.add", "zulip.reaction", "",
			headers("Zulip-Event-Type", "reaction", "Zulip-Event-Op", "add", "Zulip-Event-Id", "3", "Zulip-Dedup-Key", "chat.example.com/q1/3"),
			`{"type":"reaction","op":"add","id":3,"user_id":10,"user":{"user_id":10,"email":"a@b","full_name":"A"},"message_id":"32","emoji_name":"tada","emoji_code":"1f389","reaction_type":"unicode_emoji"}`, false},
		{"typing under the wrong op", "zulip.typing.start.direct", "zulip.typing", "",
			headers("Zulip-Event-Type", "typing", "Zulip-Event-Op", "start", "Zulip-Event-Id", "3", "Zulip-Dedup-Key", "chat.example.com/q1/3"),
			strings.Replace(string(events[37]), `"stop"`, `"start "`, 1), false},
	} {
		for _, broker := range []string{"nats", "kafka"} {
			name := tc.subject
			if broker == "kafka" {
				name = tc.topic
			}
			_, err := a.validate(broker, name, tc.key, tc.headers, []byte(tc.payload))
			if tc.valid && err != nil {
				t.Errorf("%s on %s: %v", tc.name, broker, err)
			}
			if !tc.valid && err == nil {
				t.Errorf("%s on %s: the document accepts it", tc.name, broker)
			}
		}
	}
}
