package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// Mixes of -mix.
const (
	// mixIssue is the traffic issue 13 measured with: 55 % stream
	// messages of about 1 KB, 15 % direct messages, the rest typing,
	// reactions and edits; about 800 bytes per event.
	mixIssue = "issue"
	// mixDefault is zuliptest.DefaultMix as the Generator produces it:
	// every kind of event, messages of a few words; under 400 bytes per
	// event.
	mixDefault = "default"
)

// issueSmallMix is what the Generator adds to the issue's mix besides the
// bench's own long messages: typing, reactions, edits, and a few of its
// short messages, which the reactions and edits are about.
var issueSmallMix = map[string]float64{
	"message":        3,
	"typing/start":   10,
	"typing/stop":    9,
	"reaction/add":   8,
	"update_message": 3,
}

const (
	issueStreamShare = 0.52 // plus the Generator's own (short) messages
	issueDirectShare = 0.15
)

// words make up the long messages' content.
var words = strings.Fields(`the build is green again after we rolled back the cache change and
I think we should ship it on Monday unless someone objects please review the patch before noon
because the customer is waiting for a fix to the login page which still times out for users
behind the corporate proxy we also need to update the runbook with the new alert thresholds and
make sure the on call rotation knows about the database migration scheduled for Thursday night`)

// traffic produces events into the simulator, one per step.
type traffic struct {
	sim    *zuliptest.Server
	gen    *zuliptest.Generator
	rng    *rand.Rand
	long   bool // the issue's mix: the bench sends long messages itself
	only   bool // messages only
	people []zuliptest.User
	public []zuliptest.Stream
	topics []string
	bot    string
}

// newTraffic returns the mix named by mix; messagesOnly keeps only its
// messages (for a backfill). The same seed gives the same traffic against
// a simulator in the same state.
func newTraffic(sim *zuliptest.Server, mix string, seed uint64, messagesOnly bool) (*traffic, error) {
	t := &traffic{sim: sim, rng: rand.New(rand.NewPCG(seed, seed^0x5bd1e995)), long: mix == mixIssue, only: messagesOnly}
	var genMix map[string]float64
	switch {
	case mix != mixIssue && mix != mixDefault:
		return nil, fmt.Errorf("unknown mix %q (want %s or %s)", mix, mixIssue, mixDefault)
	case messagesOnly:
		genMix = map[string]float64{"message": 1}
	case mix == mixIssue:
		genMix = issueSmallMix
	}
	gen, err := zuliptest.NewGenerator(sim, zuliptest.GeneratorConfig{Seed: seed, Mix: genMix})
	if err != nil {
		return nil, err
	}
	t.gen = gen
	realm := sim.Realm()
	for _, u := range realm.Users {
		if !u.IsBot {
			t.people = append(t.people, u)
		}
	}
	for _, s := range realm.Streams {
		if !s.InviteOnly {
			t.public = append(t.public, s)
		}
	}
	t.topics = []string{"deploys", "lunch", "release 2.4", "incident review", "design", "random", "hiring", "standup"}
	t.bot = sim.Bots()[0].Email
	return t, nil
}

// types lists the event types the traffic can produce, and "bridge" for
// the bridge's control events.
func (t *traffic) types() []string {
	mix := zuliptest.DefaultMix()
	if t.long {
		mix = issueSmallMix
	}
	seen := map[string]bool{"message": true, "bridge": true}
	out := []string{"bridge", "message"}
	for kind := range mix {
		typ, _, _ := strings.Cut(kind, "/")
		if !seen[typ] && !t.only {
			seen[typ] = true
			out = append(out, typ)
		}
	}
	sort.Strings(out)
	return out
}

// step produces one event. Generated.Kind is "message" with MessageID for
// messages, else Queues holds the event id per queue.
func (t *traffic) step() (zuliptest.Generated, error) {
	if !t.long {
		return t.gen.Step()
	}
	x := t.rng.Float64()
	if t.only {
		// Keep the mix's proportion of stream to direct messages.
		x *= issueStreamShare + issueDirectShare
	}
	switch {
	case x < issueStreamShare:
		s := t.public[t.rng.IntN(len(t.public))]
		return t.send(zuliptest.SendRequest{Type: "stream", To: s.Name, Topic: t.topics[t.rng.IntN(len(t.topics))]})
	case x < issueStreamShare+issueDirectShare:
		return t.send(zuliptest.SendRequest{Type: "private", To: t.bot})
	}
	return t.gen.Step()
}

// send sends a message of 50 to 120 words (about 500 characters), which
// makes a message event of about 1 KB.
func (t *traffic) send(req zuliptest.SendRequest) (zuliptest.Generated, error) {
	n := 50 + t.rng.IntN(71)
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[t.rng.IntN(len(words))])
	}
	req.Sender = t.people[t.rng.IntN(len(t.people))].Email
	req.Content = b.String()
	id, err := t.sim.SendMessage(req)
	if err != nil {
		return zuliptest.Generated{}, fmt.Errorf("send message: %w", err)
	}
	return zuliptest.Generated{Kind: "message", MessageID: id}, nil
}

// averageEventBytes is the average size of an event of the mix as Zulip
// delivers it (the bridge's payload), over n events fetched from a queue
// of a simulator of their own.
func averageEventBytes(ctx context.Context, mix string, seed uint64, n int) (float64, error) {
	sim, err := newSimulator()
	if err != nil {
		return 0, err
	}
	defer sim.Close()
	// As the bridge registers: every event type, content as sent.
	form := url.Values{"apply_markdown": {"false"}, "client_gravatar": {"false"}}
	var reg struct {
		QueueID string `json:"queue_id"`
	}
	if err := simCall(ctx, sim, http.MethodPost, "register", form, &reg); err != nil {
		return 0, err
	}
	tr, err := newTraffic(sim, mix, seed, false)
	if err != nil {
		return 0, err
	}
	for range n {
		if _, err := tr.step(); err != nil {
			return 0, err
		}
	}
	var events struct {
		Events []json.RawMessage `json:"events"`
	}
	q := url.Values{"queue_id": {reg.QueueID}, "last_event_id": {"-1"}, "dont_block": {"true"}}
	if err := simCall(ctx, sim, http.MethodGet, "events", q, &events); err != nil {
		return 0, err
	}
	if len(events.Events) == 0 {
		return 0, errors.New("the sample queue got no events")
	}
	total := 0
	for _, e := range events.Events {
		total += len(e)
	}
	return float64(total) / float64(len(events.Events)), nil
}

// simCall calls the simulator's API as the bot and decodes the answer.
func simCall(ctx context.Context, sim *zuliptest.Server, method, path string, params url.Values, out any) error {
	u := sim.URL + "/api/v1/" + path
	var body io.Reader
	if method == http.MethodGet {
		u += "?" + params.Encode()
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.SetBasicAuth(zuliptest.DefaultBot.Email, zuliptest.DefaultBot.APIKey)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("%s /%s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s /%s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s /%s: %s: %.200s", method, path, resp.Status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s /%s: %w", method, path, err)
	}
	return nil
}
