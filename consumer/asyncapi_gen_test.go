package consumer_test

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"
)

// This file generates docs/asyncapi.yaml: the channels of docs/names.md,
// the headers, and the payload schemas of Zulip's OpenAPI description
// (source/zuliptest/testdata/zulip/zulip.yaml, Apache-2.0), turned from
// OpenAPI 3.0 schemas into AsyncAPI (JSON Schema draft 07) schemas.
// `go test ./consumer -run TestAsyncAPIUpToDate -update` rewrites it.

const (
	zulipOpenAPI = "../source/zuliptest/testdata/zulip/zulip.yaml"
	asyncAPIPath = "../docs/asyncapi.yaml"
)

// scopes says on which NATS subjects an event type can be published
// (mapping/README.md, "Default names"): "" is <prefix>.<type>[.<op>],
// "stream" adds .stream.<id>, "direct" adds .direct. Types not listed: a
// stream when the event has a stream_id, otherwise none.
var scopes = map[string][]string{
	"message":              {"stream", "direct"},
	"typing":               {"stream", "direct"},
	"delete_message":       {"stream", "direct"},
	"update_message":       {"stream", ""},
	"stream":               {"stream", ""},
	"subscription":         {"stream", ""},
	"user_topic":           {"stream"},
	"reaction":             {""},
	"submessage":           {""},
	"update_message_flags": {""},
}

// kafkaKeys are the record keys by scope (docs/names.md).
var kafkaKeys = map[string]string{
	"message": `^(stream:[0-9]+:.*|dm:[0-9]+(,[0-9]+)*)$`,
	"stream":  `^stream:[0-9]+$`,
}

// eventKind is one kind of Zulip event of the OpenAPI description.
type eventKind struct {
	typ, op string
	schema  *yaml.Node // converted
	example *yaml.Node
	hasSID  bool // a top-level stream_id member
}

func (k eventKind) name() string {
	if k.op == "" {
		return k.typ
	}
	return k.typ + "." + k.op
}

func (k eventKind) scopes() []string {
	switch k.name() {
	case "subscription.update", "stream.update":
		return []string{"stream"} // by the event's stream_id, always there
	}
	if s, ok := scopes[k.typ]; ok {
		return s
	}
	if k.hasSID {
		return []string{"stream", ""}
	}
	return []string{""}
}

// generateAsyncAPI builds the document from the OpenAPI description.
func generateAsyncAPI(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile(zulipOpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatalf("%s: %v", zulipOpenAPI, err)
	}
	root := doc.Content[0]
	components := get(root, "components", "schemas")
	events := get(root, "paths", "/events", "get", "responses", "200", "content", "application/json", "schema", "allOf")
	if events == nil || components == nil {
		t.Fatal("zulip.yaml: no GET /events response or components")
	}
	var items *yaml.Node
	for _, branch := range events.Content {
		if n := get(branch, "properties", "events", "items", "oneOf"); n != nil {
			items = n
		}
	}
	if items == nil {
		t.Fatal("zulip.yaml: no events oneOf in GET /events")
	}
	var kinds []eventKind
	for _, it := range items.Content {
		k := eventKind{typ: enumOf(it, "type"), op: enumOf(it, "op"), example: findKey(it, "example")}
		if k.typ == "" {
			t.Fatalf("zulip.yaml: an event schema without a type enum at line %d", it.Line)
		}
		k.hasSID = findProperty(it, "stream_id")
		k.schema = convertSchema(it)
		kinds = append(kinds, k)
	}
	register := get(root, "paths", "/register", "post", "responses", "200", "content", "application/json", "schema")
	if register == nil {
		t.Fatal("zulip.yaml: no POST /register response")
	}
	state := convertSchema(register)

	// Zulip's component schemas the events and the state refer to,
	// transitively.
	needed := map[string]bool{}
	var queue []*yaml.Node
	for _, k := range kinds {
		queue = append(queue, k.schema)
	}
	queue = append(queue, state)
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, ref := range refs(n) {
			name, ok := strings.CutPrefix(ref, "#/components/schemas/")
			if !ok {
				t.Fatalf("zulip.yaml: unexpected $ref %s", ref)
			}
			if needed[name] {
				continue
			}
			needed[name] = true
			c := get(components, name)
			if c == nil {
				t.Fatalf("zulip.yaml: $ref to missing schema %s", name)
			}
			queue = append(queue, c)
		}
	}
	zulipSchemas := slices.Sorted(func(yield func(string) bool) {
		for n := range needed {
			if !yield(n) {
				return
			}
		}
	})

	// Channels, messages and operations.
	channels, operations, messages := ymap(), ymap(), ymap()
	schemas := ymap()
	addChannel := func(id, address, server, title string, msgNames []string, params bool) {
		ch := ymap("address", address, "title", title,
			"servers", seq(ymap("$ref", "#/servers/"+server)))
		if params {
			ch = with(ch, "parameters", ymap("stream_id", ymap("$ref", "#/components/parameters/stream_id")))
		}
		msgs := ymap()
		refs := seq()
		for _, m := range msgNames {
			msgs = with(msgs, m, ymap("$ref", "#/components/messages/"+m))
			refs.Content = append(refs.Content, ymap("$ref", "#/channels/"+id+"/messages/"+m))
		}
		ch = with(ch, "messages", msgs)
		channels = with(channels, id, ch)
		operations = with(operations, "publish-"+id, ymap("action", "send",
			"channel", ymap("$ref", "#/channels/"+id), "messages", refs))
	}
	byType := map[string][]string{}
	var typeOrder []string
	for _, k := range kinds {
		msg := k.name()
		if _, ok := byType[k.typ]; !ok {
			typeOrder = append(typeOrder, k.typ)
		}
		byType[k.typ] = append(byType[k.typ], msg)
		schemas = with(schemas, "event."+msg, k.schema)
		messages = with(messages, msg, eventMessage(k))
		for _, s := range k.scopes() {
			id, address, title, params := "nats."+msg, "zulip."+msg, "zulip."+msg, false
			switch s {
			case "stream":
				id, address, title, params = id+".stream", address+".stream.{stream_id}", title+".stream.<id>", true
			case "direct":
				id, address, title = id+".direct", address+".direct", title+".direct"
			}
			addChannel(id, address, "nats", title, []string{msg}, params)
		}
	}
	for _, typ := range typeOrder {
		addChannel("kafka."+typ, "zulip."+typ, "kafka", "zulip."+typ, byType[typ], false)
	}
	controlMsgs := []string{}
	for _, kind := range []string{"resync", "state", "invalid"} {
		msg := "bridge." + kind
		controlMsgs = append(controlMsgs, msg)
		addChannel("nats."+msg, "zulip."+msg, "nats", "zulip."+msg, []string{msg}, false)
		messages = with(messages, msg, controlMessage(kind))
	}
	addChannel("kafka.bridge", "zulip.bridge", "kafka", "zulip.bridge", controlMsgs, false)

	schemas = with(schemas, "BridgeHeaders", bridgeHeaders())
	schemas = with(schemas, "bridge.resync", resyncSchema())
	schemas = with(schemas, "bridge.state", with(ymap("description", "Zulip's register response (POST /register) of the new queue, byte for byte: the initial state. What it holds depends on BRIDGE_ZULIP_FETCH_EVENT_TYPES and BRIDGE_ZULIP_INCLUDE_SUBSCRIBERS."), "allOf", seq(state)))
	schemas = with(schemas, "bridge.invalid", invalidSchema())
	for _, n := range zulipSchemas {
		schemas = with(schemas, n, convertSchema(get(components, n)))
	}

	out := ymap(
		"asyncapi", "3.0.0",
		"info", ymap(
			"title", "zulip-bridge",
			"version", "1.0.0",
			"description", literal(asyncAPIDescription),
			"license", ymap("name", "Apache 2.0 (the payload schemas are Zulip's, from its OpenAPI description)", "url", "https://www.apache.org/licenses/LICENSE-2.0.html"),
		),
		"defaultContentType", "application/json",
		"servers", ymap(
			"nats", ymap("host", "localhost:4222", "protocol", "nats", "description", "NATS with JetStream: every subject below is stored in the stream BRIDGE_NATS_STREAM (ZULIP), which captures zulip.>."),
			"kafka", ymap("host", "localhost:9092", "protocol", "kafka", "description", "Kafka: one topic per event type; the key keeps a conversation in one partition."),
		),
		"channels", channels,
		"operations", operations,
		"components", ymap(
			"parameters", ymap("stream_id", ymap("description", "The stream's (channel's) id.", "examples", seq("12"))),
			"messages", messages,
			"schemas", schemas,
		),
	)
	var buf bytes.Buffer
	buf.WriteString(asyncAPIHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const asyncAPIHeader = `# AsyncAPI 3.0 description of what zulip-bridge publishes: every channel
# (NATS subjects, Kafka topics and keys), the headers and the payloads.
#
# GENERATED from docs/names.md's scheme and Zulip's OpenAPI description
# (source/zuliptest/testdata/zulip/zulip.yaml, Apache-2.0, LICENSE and NOTICE
# beside it) by consumer/asyncapi_gen_test.go; do not edit. Regenerate with
#   go test ./consumer -run TestAsyncAPIUpToDate -update
# The end-to-end tests of consumer/ validate every message the bridge
# publishes against the schema of its channel.
`

const asyncAPIDescription = `zulip-bridge long-polls a Zulip server's real-time events API and publishes
every event to NATS (JetStream) or Kafka. The payload is the event's JSON
exactly as Zulip sent it; names, keys and headers follow docs/names.md.

- Subjects and topics start with BRIDGE_SUBJECT_PREFIX, "zulip" here.
  BRIDGE_SUBJECT_TEMPLATE and BRIDGE_TOPIC_TEMPLATE change them; this
  document describes the default names.
- NATS subject: <prefix>.<type>[.<op>][.stream.<stream_id>|.direct].
- Kafka topic: <prefix>.<type>; key stream:<id>:<topic> for stream
  messages, dm:<sorted user ids> for direct messages, stream:<id> for
  other events of one stream, none otherwise.
- Control events of the bridge itself: <prefix>.bridge.<kind> on NATS, the
  topic <prefix>.bridge on Kafka with Zulip-Event-Op: <kind>; kinds resync
  (a lost Zulip queue), state (the initial state of a new queue) and
  invalid (an event published in its place).
- Every message carries Zulip-Dedup-Key: consumers are at-least-once, make
  them idempotent on it.
- With BRIDGE_CLOUDEVENTS=binary or structured, CloudEvents headers are
  added (ce- on NATS, ce_ on Kafka, where content-type is lower case) and,
  structured, the payload is wrapped in the CloudEvents envelope; this
  document describes the default, BRIDGE_CLOUDEVENTS=off.
`

// eventMessage is the AsyncAPI message of one Zulip event kind.
func eventMessage(k eventKind) *yaml.Node {
	op := ymap("not", ymap())
	if k.op != "" {
		op = ymap("const", k.op)
	}
	props := ymap("Zulip-Event-Type", ymap("const", k.typ), "Zulip-Event-Op", op)
	headers := ymap("allOf", seq(
		ymap("$ref", "#/components/schemas/BridgeHeaders"),
		ymap("type", "object", "properties", props),
	))
	desc := "Zulip's " + k.typ + " event"
	if k.op != "" {
		desc += " with op " + k.op
	}
	desc += ", as GET /events delivers it."
	if k.typ == "message" {
		desc += " A message backfilled after a queue loss has Zulip-Backfill: true, no Zulip-Event-Id, and no id member."
	} else {
		props = with(props, "Zulip-Event-Id", ymap("type", "string", "pattern", "^[0-9]+$"))
		headers.Content[1].Content[1] = with(headers.Content[1].Content[1], "required", seq("Zulip-Event-Id"))
	}
	m := ymap("name", k.name(), "title", "zulip."+k.name(), "summary", desc,
		"contentType", "application/json", "headers", headers,
		"payload", ymap("$ref", "#/components/schemas/event."+k.name()))
	key := ""
	switch {
	case k.typ == "message":
		key = kafkaKeys["message"]
	case slices.Contains(k.scopes(), "stream"):
		key = kafkaKeys["stream"]
	}
	if key != "" {
		m = with(m, "bindings", ymap("kafka", ymap("key", ymap("type", "string", "pattern", key), "bindingVersion", "0.5.0")))
	}
	if k.example != nil {
		m = with(m, "examples", seq(ymap("name", "zulip", "payload", deepCopy(k.example))))
	}
	return m
}

func controlMessage(kind string) *yaml.Node {
	summary := map[string]string{
		"resync":  "A Zulip event queue was lost and replaced: its messages were backfilled, everything else of the gap (unrecoverable) is gone.",
		"state":   "The register response (initial state) of a new queue, published on every registration with BRIDGE_PUBLISH_INITIAL_STATE=true.",
		"invalid": "An event the bridge could not publish as is (it cannot be mapped, or is larger than the broker or BRIDGE_ZULIP_MAX_RESPONSE_BYTES takes), published in its place under its dedup key.",
	}[kind]
	return ymap("name", "bridge."+kind, "title", "zulip.bridge."+kind, "summary", summary,
		"contentType", "application/json",
		"headers", ymap("allOf", seq(
			ymap("$ref", "#/components/schemas/BridgeHeaders"),
			ymap("type", "object", "properties", ymap(
				"Zulip-Event-Type", ymap("const", "bridge"),
				"Zulip-Event-Op", ymap("const", kind),
				"Zulip-Event-Id", ymap("not", ymap()),
			)),
		)),
		"payload", ymap("$ref", "#/components/schemas/bridge."+kind))
}

func bridgeHeaders() *yaml.Node {
	token := ymap("type", "string", "pattern", "^[A-Za-z0-9_-]+$")
	digits := func(d string) *yaml.Node { return ymap("type", "string", "pattern", "^[0-9]+$", "description", d) }
	str := func(d string) *yaml.Node { return ymap("type", "string", "description", d) }
	return ymap(
		"type", "object",
		"description", "The headers of every message, on NATS and Kafka alike (docs/names.md). Values never contain control characters.",
		"required", seq("Zulip-Event-Type", "Zulip-Queue-Id", "Zulip-Site", "Zulip-Dedup-Key", "Content-Type"),
		"properties", ymap(
			"Zulip-Event-Type", with(deepCopy(token), "description", "The event's type; bridge for control events."),
			"Zulip-Event-Op", with(deepCopy(token), "description", "The event's op, when it has one; the kind for control events."),
			"Zulip-Event-Id", digits("The event's id in its queue; absent on backfilled messages and control events."),
			"Zulip-Queue-Id", str("The Zulip event queue that delivered the event."),
			"Zulip-Site", str("The Zulip site's host, lower case, without a default port."),
			"Zulip-Dedup-Key", ymap("type", "string", "pattern", `^[^/]+/(message/[0-9]+|[^/]+/([0-9]+|bridge\.[a-z]+))$`,
				"description", "<site host>/message/<message id> for messages (stable across queues), <site host>/<queue id>/<event id> for other events, <site host>/<queue id>/bridge.<kind> for control events. Consumers dedupe on it."),
			"Zulip-Stream-Id", digits("The stream's id, when the event concerns one stream."),
			"Zulip-Stream", str("The stream's name, when known."),
			"Zulip-Topic", str("The topic, when known."),
			"Zulip-Message-Id", digits("message.id, or the event's message_id."),
			"Zulip-Backfill", ymap("const", "true", "description", "On messages backfilled with GET /messages after a queue loss."),
			"Content-Type", ymap("const", "application/json"),
			"traceparent", str("W3C trace context, when tracing is on."),
			"tracestate", str("W3C trace state, when tracing is on."),
			"Nats-Msg-Id", str("JetStream's deduplication id (NATS only): the dedup key."),
		),
	)
}

func resyncSchema() *yaml.Node {
	ts := func(d string) *yaml.Node { return ymap("type", "string", "format", "date-time", "description", d) }
	integer := func(d string) *yaml.Node { return ymap("type", "integer", "description", d) }
	return ymap(
		"type", "object",
		"additionalProperties", false,
		"required", seq("type", "site", "old_queue_id", "old_last_event_id", "new_queue_id", "detected_at", "registered_at", "from_message_id", "to_message_id", "messages_backfilled", "unrecoverable"),
		"properties", ymap(
			"type", ymap("const", "resync"),
			"site", ymap("type", "string", "description", "The site URL."),
			"old_queue_id", ymap("type", "string"),
			"old_last_event_id", integer("The old queue's last acknowledged event."),
			"new_queue_id", ymap("type", "string"),
			"last_success_at", ts("The old queue's last good poll; absent when the loss was found on the first poll after a restart."),
			"detected_at", ts("When the loss was noticed."),
			"registered_at", ts("When the new queue existed."),
			"from_message_id", integer("Messages with ids in (from_message_id, to_message_id] were backfilled."),
			"to_message_id", integer("See from_message_id."),
			"messages_backfilled", integer("How many messages were published by the backfill."),
			"unrecoverable", ymap("type", "string", "description", "In words, what the events API lost for good."),
		),
	)
}

func invalidSchema() *yaml.Node {
	return ymap(
		"type", "object",
		"required", seq("reason"),
		"properties", ymap(
			"reason", ymap("type", "string"),
			"id", ymap("type", "string", "description", "The event's id, or message/<message id> for a message."),
			"event", ymap("description", "The original event, when it could not be mapped (a JSON object, or a string when it was not JSON)."),
			"type", ymap("type", "string"),
			"dedup_key", ymap("type", "string"),
			"subject", ymap("type", "string"),
			"topic", ymap("type", "string"),
			"bytes", ymap("type", "integer"),
			"limit", ymap("type", "integer"),
		),
		"oneOf", seq(
			ymap("required", seq("id", "event"), "description", "An event that could not be mapped."),
			ymap("required", seq("dedup_key", "bytes", "limit"), "description", "An event too large for the broker or BRIDGE_ZULIP_MAX_RESPONSE_BYTES; it stays in Zulip."),
		),
	)
}

// convertSchema turns an OpenAPI 3.0 schema into a JSON Schema draft 07
// one, as AsyncAPI's default schema format wants: nullable becomes a
// "null" type (or an anyOf with one), example becomes examples; the rest,
// $refs to #/components/schemas included, stays.
func convertSchema(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return deepCopy(n)
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	nullable, hasType, hasComposite := false, false, false
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "nullable":
			nullable = v.Value == "true"
			continue
		case "example":
			out.Content = append(out.Content, scalar("examples"), seq(deepCopy(v)))
			continue
		case "properties", "patternProperties":
			props := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			for j := 0; j < len(v.Content); j += 2 {
				props.Content = append(props.Content, deepCopy(v.Content[j]), convertSchema(v.Content[j+1]))
			}
			out.Content = append(out.Content, deepCopy(k), props)
			continue
		case "items", "additionalProperties", "not":
			out.Content = append(out.Content, deepCopy(k), convertSchema(v))
			continue
		case "allOf", "oneOf", "anyOf":
			hasComposite = true
			s := seq()
			for _, c := range v.Content {
				s.Content = append(s.Content, convertSchema(c))
			}
			out.Content = append(out.Content, deepCopy(k), s)
			continue
		case "type":
			hasType = true
		case "$ref", "enum":
			hasComposite = true
		}
		out.Content = append(out.Content, deepCopy(k), deepCopy(v))
	}
	if !nullable {
		return out
	}
	if hasType {
		for i := 0; i < len(out.Content); i += 2 {
			switch k := out.Content[i]; k.Value {
			case "type":
				out.Content[i+1] = seq(out.Content[i+1].Value, "null")
			case "enum":
				out.Content[i+1].Content = append(out.Content[i+1].Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"})
			}
		}
		return out
	}
	if !hasComposite {
		return out // no constraint to relax: null is allowed already
	}
	// {nullable, oneOf/$ref...}: null or the schema.
	wrapped := ymap()
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i < len(out.Content); i += 2 {
		if out.Content[i].Value == "description" {
			wrapped.Content = append(wrapped.Content, out.Content[i], out.Content[i+1])
			continue
		}
		rest.Content = append(rest.Content, out.Content[i], out.Content[i+1])
	}
	return with(wrapped, "anyOf", seq(ymap("type", "null"), rest))
}

// enumOf finds the single enum value of the property (type or op) of an
// event schema, in it or its allOf branches.
func enumOf(n *yaml.Node, prop string) string {
	p := get(n, "properties", prop)
	if p != nil {
		if e := get(p, "enum"); e != nil && len(e.Content) == 1 {
			return e.Content[0].Value
		}
		if all := get(p, "allOf"); all != nil {
			for _, b := range all.Content {
				if e := get(b, "enum"); e != nil && len(e.Content) == 1 {
					return e.Content[0].Value
				}
			}
		}
	}
	if all := get(n, "allOf"); all != nil {
		for _, b := range all.Content {
			if v := enumOf(b, prop); v != "" {
				return v
			}
		}
	}
	return ""
}

// findKey finds key in n or its allOf branches.
func findKey(n *yaml.Node, key string) *yaml.Node {
	if v := get(n, key); v != nil {
		return v
	}
	if all := get(n, "allOf"); all != nil {
		for _, b := range all.Content {
			if v := findKey(b, key); v != nil {
				return v
			}
		}
	}
	return nil
}

func findProperty(n *yaml.Node, prop string) bool {
	if get(n, "properties", prop) != nil {
		return true
	}
	if all := get(n, "allOf"); all != nil {
		for _, b := range all.Content {
			if findProperty(b, prop) {
				return true
			}
		}
	}
	return false
}

// refs lists the $ref values in n.
func refs(n *yaml.Node) []string {
	var out []string
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i < len(n.Content); i += 2 {
				if n.Content[i].Value == "$ref" && n.Content[i+1].Kind == yaml.ScalarNode {
					out = append(out, n.Content[i+1].Value)
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	sort.Strings(out)
	return slices.Compact(out)
}

// get walks mapping nodes by keys.
func get(n *yaml.Node, keys ...string) *yaml.Node {
	for _, key := range keys {
		if n == nil {
			return nil
		}
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

func deepCopy(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	c := &yaml.Node{Kind: n.Kind, Style: n.Style, Tag: n.Tag, Value: n.Value}
	for _, ch := range n.Content {
		c.Content = append(c.Content, deepCopy(ch))
	}
	return c
}

func scalar(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func literal(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.LiteralStyle}
}

// node turns a Go value into a node.
func node(v any) *yaml.Node {
	switch v := v.(type) {
	case *yaml.Node:
		return v
	case string:
		return scalar(v)
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(v)}
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(v)}
	}
	panic(fmt.Sprintf("node: %T", v))
}

// ymap builds a mapping node from alternating keys and values.
func ymap(kv ...any) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i < len(kv); i += 2 {
		m.Content = append(m.Content, scalar(kv[i].(string)), node(kv[i+1]))
	}
	return m
}

// with adds key: value to the mapping m (replacing an existing key).
func with(m *yaml.Node, key string, v any) *yaml.Node {
	for i := 0; i < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = node(v)
			return m
		}
	}
	m.Content = append(m.Content, scalar(key), node(v))
	return m
}

func seq(vs ...any) *yaml.Node {
	s := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, v := range vs {
		s.Content = append(s.Content, node(v))
	}
	return s
}
