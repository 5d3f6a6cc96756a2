package zuliptest

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"
)

// exampleEvents are the 71 example events of Zulip's OpenAPI description
// (testdata/zulip, Apache-2.0, see LICENSE and NOTICE there).
//
//go:embed testdata/zulip/example-events.json
var exampleEvents []byte

// GeneratorConfig configures a Generator.
type GeneratorConfig struct {
	// Rate is how many events per second Run produces, on the server's
	// clock. Run requires it to be positive; Step ignores it.
	Rate float64
	// Seed makes the sequence reproducible: the same seed against a
	// server in the same state produces the same events.
	Seed uint64
	// Mix weighs the kinds of events, keyed "type" or "type/op" as in
	// DefaultMix; nil means DefaultMix. Kinds absent from the map are not
	// generated.
	Mix map[string]float64
}

// DefaultMix is the traffic of a busy organization: mostly messages,
// typing, presence and reactions, now and then an edit, a deletion or a
// subscription change, and rarely anything else. Every kind of the
// example events appears except heartbeat (the server's own) and realm
// deactivation (which ends the realm).
func DefaultMix() map[string]float64 {
	mix := map[string]float64{
		"message":                     40,
		"typing/start":                8,
		"typing/stop":                 7,
		"presence":                    8,
		"reaction/add":                8,
		"reaction/remove":             2,
		"update_message":              4,
		"update_message_flags/add":    4,
		"update_message_flags/remove": 1,
		"delete_message":              1.5,
		"subscription/peer_add":       1,
		"subscription/peer_remove":    0.5,
		"user_status":                 1.5,
	}
	for _, k := range exampleKinds() {
		if _, ok := mix[k]; !ok && k != "heartbeat" && k != "realm/deactivated" {
			mix[k] = 0.2
		}
	}
	return mix
}

// Generated describes one event a Generator produced.
type Generated struct {
	// Kind is "type" or "type/op".
	Kind string
	// MessageID is the id of the message sent, for Kind "message".
	MessageID int64
	// Queues maps each queue that got the event to the event id it was
	// given. For messages it is nil: SendMessage fans them out.
	Queues map[string]int64
}

// Generator produces a realistic mix of events into a Server, built from
// Zulip's example events with ids made consistent with the realm: stream
// ids and names of real streams, user ids and emails of real users,
// message ids of messages sent through SendMessage.
type Generator struct {
	s       *Server
	cfg     GeneratorConfig
	kinds   []string
	weights []float64
	total   float64

	mu       sync.Mutex
	rng      *rand.Rand
	recent   []sentMessage // messages sent by the generator, newest last
	sequence int
}

type exampleSet struct {
	once   sync.Once
	byKind map[string][]map[string]any
	err    error
}

var examples exampleSet

func loadExamples() (map[string][]map[string]any, error) {
	examples.once.Do(func() {
		var list []map[string]any
		dec := json.NewDecoder(bytes.NewReader(exampleEvents))
		dec.UseNumber()
		if err := dec.Decode(&list); err != nil {
			examples.err = fmt.Errorf("zuliptest: decode embedded example events: %w", err)
			return
		}
		examples.byKind = map[string][]map[string]any{}
		for _, e := range list {
			k := kindOf(e)
			examples.byKind[k] = append(examples.byKind[k], e)
		}
	})
	return examples.byKind, examples.err
}

func kindOf(e map[string]any) string {
	t, _ := e["type"].(string)
	if op, ok := e["op"].(string); ok {
		return t + "/" + op
	}
	return t
}

func exampleKinds() []string {
	byKind, err := loadExamples()
	if err != nil {
		return nil
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}

// NewGenerator returns a generator feeding s.
func NewGenerator(s *Server, cfg GeneratorConfig) (*Generator, error) {
	byKind, err := loadExamples()
	if err != nil {
		return nil, err
	}
	if cfg.Rate < 0 {
		return nil, fmt.Errorf("zuliptest: GeneratorConfig.Rate is %v; it must be >= 0 events per second (example: 50)", cfg.Rate)
	}
	mix := cfg.Mix
	if mix == nil {
		mix = DefaultMix()
	}
	g := &Generator{s: s, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	for k, w := range mix {
		if w < 0 {
			return nil, fmt.Errorf("zuliptest: GeneratorConfig.Mix[%q] is %v; weights must be >= 0", k, w)
		}
		if _, ok := byKind[k]; !ok {
			return nil, fmt.Errorf("zuliptest: GeneratorConfig.Mix[%q]: no example event of that kind (kinds: %s)", k, strings.Join(exampleKinds(), ", "))
		}
		if w > 0 {
			g.kinds = append(g.kinds, k)
		}
	}
	// Map order is random; sorting keeps a seed's sequence reproducible.
	sort.Strings(g.kinds)
	for _, k := range g.kinds {
		g.weights = append(g.weights, mix[k])
		g.total += mix[k]
	}
	if g.total == 0 {
		return nil, errors.New("zuliptest: GeneratorConfig.Mix has no positive weight")
	}
	if len(g.publicStreams()) == 0 || len(g.people()) == 0 {
		return nil, errors.New("zuliptest: the realm needs at least one public stream and one human user to generate traffic")
	}
	return g, nil
}

// Run produces events at cfg.Rate on the server clock until ctx ends, then
// returns nil; it returns an error if an event cannot be produced.
func (g *Generator) Run(ctx context.Context) error {
	if g.cfg.Rate <= 0 {
		return fmt.Errorf("zuliptest: generator rate is %v; Run needs a positive rate", g.cfg.Rate)
	}
	interval := time.Duration(float64(time.Second) / g.cfg.Rate)
	interval = max(interval, time.Microsecond)
	ticker := g.s.clock.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-g.s.closing:
			return nil
		case <-ticker.Chan():
			if _, err := g.Step(); err != nil {
				return err
			}
		}
	}
}

// Step produces one event now.
func (g *Generator) Step() (Generated, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sequence++
	kind := g.pick()
	if kind == "message" || (needsMessage(kind) && len(g.recent) == 0) {
		id, err := g.sendMessage()
		if err != nil {
			return Generated{}, err
		}
		if kind == "message" {
			return Generated{Kind: kind, MessageID: id}, nil
		}
	}
	byKind, _ := loadExamples()
	templates := byKind[kind]
	ev := deepCopy(templates[g.rng.IntN(len(templates))]).(map[string]any)
	c := g.context()
	g.rewrite(ev, c)
	if kind == "delete_message" {
		describeMessage(ev, c)
	}
	raw, err := marshal(ev)
	if err != nil {
		return Generated{}, fmt.Errorf("zuliptest: generator: encode %s event: %w", kind, err)
	}
	ids, err := g.s.InjectEvent(raw)
	if err != nil {
		return Generated{}, fmt.Errorf("zuliptest: generator: inject %s event: %w", kind, err)
	}
	return Generated{Kind: kind, Queues: ids}, nil
}

func (g *Generator) pick() string {
	x := g.rng.Float64() * g.total
	for i, w := range g.weights {
		if x < w {
			return g.kinds[i]
		}
		x -= w
	}
	return g.kinds[len(g.kinds)-1]
}

func needsMessage(kind string) bool {
	switch strings.SplitN(kind, "/", 2)[0] {
	case "reaction", "update_message", "delete_message", "update_message_flags", "submessage":
		return true
	}
	return false
}

var (
	genTopics = []string{"deploys", "lunch", "release 2.4", "incident review", "design", "random", "hiring", "standup"}
	genWords  = strings.Fields("the build is green again after we rolled back the cache change and " +
		"I think we should ship it on Monday unless someone objects please review the patch " +
		"before noon because the customer is waiting for a fix to the login page")
)

func (g *Generator) sendMessage() (int64, error) {
	people := g.people()
	sender := people[g.rng.IntN(len(people))]
	n := 3 + g.rng.IntN(12)
	start := g.rng.IntN(len(genWords) - n)
	content := strings.Join(genWords[start:start+n], " ")
	req := SendRequest{Sender: sender.Email, Content: content}
	if g.rng.IntN(10) == 0 {
		req.Type = "private"
		req.To = g.s.cfg.Bots[0].Email
	} else {
		streams := g.publicStreams()
		req.Type = "stream"
		req.To = streams[g.rng.IntN(len(streams))].Name
		req.Topic = genTopics[g.rng.IntN(len(genTopics))]
	}
	id, err := g.s.SendMessage(req)
	if err != nil {
		return 0, fmt.Errorf("zuliptest: generator: %w", err)
	}
	sent := sentMessage{id: id, topic: req.Topic}
	if req.Type == "stream" {
		sent.stream = g.s.realm.streamByName(req.To)
	}
	g.recent = append(g.recent, sent)
	if len(g.recent) > 50 {
		g.recent = g.recent[1:]
	}
	return id, nil
}

func (g *Generator) publicStreams() []Stream {
	return keep(g.s.realm.Streams, func(s Stream) bool { return !s.InviteOnly })
}

func (g *Generator) people() []User {
	return keep(g.s.realm.Users, func(u User) bool { return !u.IsBot })
}

// keep returns the elements of in that ok holds for, in order (nil when
// none).
func keep[T any](in []T, ok func(T) bool) []T {
	var out []T
	for _, v := range in {
		if ok(v) {
			out = append(out, v)
		}
	}
	return out
}

// sentMessage is a message the generator sent, for events about it.
type sentMessage struct {
	id     int64
	stream *Stream // nil: a direct message
	topic  string
}

// genContext is the stream, user and message one generated event is
// about. When the event is about a stream message, stream and topic are
// that message's.
type genContext struct {
	stream    Stream
	user      User
	bot       User
	messageID int64
	direct    bool
	topic     string
}

func (g *Generator) context() genContext {
	streams, people := g.publicStreams(), g.people()
	c := genContext{
		stream: streams[g.rng.IntN(len(streams))],
		user:   people[g.rng.IntN(len(people))],
		topic:  genTopics[g.rng.IntN(len(genTopics))],
	}
	if b := g.s.realm.userByEmail(g.s.cfg.Bots[0].Email); b != nil {
		c.bot = *b
	}
	if len(g.recent) > 0 {
		m := g.recent[g.rng.IntN(len(g.recent))]
		c.messageID, c.direct = m.id, m.stream == nil
		if m.stream != nil {
			c.stream, c.topic = *m.stream, m.topic
		}
	}
	return c
}

// rewrite makes an example event's ids consistent with the realm.
func (g *Generator) rewrite(v any, c genContext) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			g.rewrite(e, c)
		}
	case map[string]any:
		_, hasStream := x["stream_id"]
		for k, e := range x {
			switch k {
			case "stream_id":
				x[k] = c.stream.ID
			case "stream_ids":
				x[k] = []any{c.stream.ID}
			case "stream_name":
				x[k] = c.stream.Name
			case "name":
				if hasStream {
					x[k] = c.stream.Name
				}
			case "recipients":
				// Typing notifications: the chosen user types to the bot.
				x[k] = []any{
					map[string]any{"email": c.bot.Email, "user_id": c.bot.ID},
					map[string]any{"email": c.user.Email, "user_id": c.user.ID},
				}
			case "user_id", "sender_id":
				x[k] = c.user.ID
			case "user_ids":
				x[k] = []any{c.user.ID}
			case "email", "sender_email":
				x[k] = c.user.Email
			case "user":
				if _, isString := e.(string); isString {
					x[k] = c.user.Email
				} else {
					g.rewrite(e, c)
				}
			case "full_name", "sender_full_name":
				x[k] = c.user.FullName
			case "message_id":
				x[k] = c.messageID
			case "message_ids", "messages":
				if list, ok := e.([]any); ok && len(list) > 0 && isNumber(list[0]) {
					x[k] = []any{c.messageID}
				} else {
					g.rewrite(e, c)
				}
			case "message_details":
				// Keyed by message id: one entry, about the chosen message.
				if details, ok := e.(map[string]any); ok {
					for _, d := range details {
						g.rewrite(d, c)
						x[k] = map[string]any{fmt.Sprint(c.messageID): d}
						break
					}
				}
			case "subject", "orig_subject", "topic", "topic_name":
				if _, isString := e.(string); isString {
					x[k] = c.topic
				}
			default:
				g.rewrite(e, c)
			}
		}
	}
}

// describeMessage fills a delete_message event's description of the
// deleted message, which depends on the message's type.
func describeMessage(ev map[string]any, c genContext) {
	if c.direct {
		ev["message_type"] = "private"
		delete(ev, "stream_id")
		delete(ev, "topic")
		return
	}
	ev["message_type"] = "stream"
	ev["stream_id"] = c.stream.ID
	ev["topic"] = c.topic
}

func isNumber(v any) bool {
	_, ok := v.(json.Number)
	return ok
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}
