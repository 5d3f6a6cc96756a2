package zuliptest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

var epoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// generate runs n steps of a generator with seed against a fresh server
// and returns the kinds produced and the events one all-types queue got.
func generate(t *testing.T, seed uint64, n int) ([]string, []zuliptest.DeliveredEvent, *zuliptest.Server) {
	t.Helper()
	srv, _ := newSim(t, zuliptest.Config{Clock: clockwork.NewFakeClockAt(epoch)})
	a := newAPI(t, srv)
	q := a.register(nil)
	gen, err := zuliptest.NewGenerator(srv, zuliptest.GeneratorConfig{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	kinds := make([]string, 0, n)
	for range n {
		g, err := gen.Step()
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, g.Kind)
		if g.Kind == "message" && g.MessageID == 0 {
			t.Fatalf("message without an id: %+v", g)
		}
		if g.Kind != "message" && len(g.Queues) == 0 {
			// Every other kind reaches a queue that takes every type.
			t.Fatalf("%s reached no queue", g.Kind)
		}
	}
	a.getEvents(q, -1, true).events(t)
	return kinds, srv.Delivered(q), srv
}

func TestGeneratorIsDeterministic(t *testing.T) {
	kinds1, events1, _ := generate(t, 42, 300)
	kinds2, events2, _ := generate(t, 42, 300)
	if !slices.Equal(kinds1, kinds2) {
		t.Fatal("same seed, different kinds")
	}
	if len(events1) != len(events2) {
		t.Fatalf("same seed, %d vs %d events", len(events1), len(events2))
	}
	for i := range events1 {
		if !bytes.Equal(events1[i].Raw, events2[i].Raw) {
			t.Fatalf("same seed, event %d differs:\n%s\n%s", i, events1[i].Raw, events2[i].Raw)
		}
	}
	kinds3, _, _ := generate(t, 43, 300)
	if slices.Equal(kinds1, kinds3) {
		t.Fatal("different seeds, same kinds")
	}
}

// TestGeneratorMixAndConsistency checks that the traffic looks like a real
// organization's: every kind of the mix appears, messages dominate, and
// every stream, user and message an event names exists.
func TestGeneratorMixAndConsistency(t *testing.T) {
	const n = 4000
	kinds, events, srv := generate(t, 7, n)
	count := map[string]int{}
	for _, k := range kinds {
		count[k]++
	}
	for k, w := range zuliptest.DefaultMix() {
		if w > 0 && count[k] == 0 {
			t.Errorf("kind %s never generated", k)
		}
	}
	if share := float64(count["message"]) / n; share < 0.3 || share > 0.5 {
		t.Errorf("messages are %.0f%% of the traffic, want about 40%%", share*100)
	}

	realm := srv.Realm()
	streams, users := map[float64]string{}, map[float64]string{}
	for _, s := range realm.Streams {
		streams[float64(s.ID)] = s.Name
	}
	for _, u := range realm.Users {
		users[float64(u.ID)] = u.Email
	}
	messages := map[float64]bool{}
	for _, m := range srv.Messages() {
		messages[float64(m.ID)] = true
	}
	var check func(path string, v any)
	check = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				p := path + "." + k
				switch k {
				case "stream_id":
					if _, ok := streams[e.(float64)]; !ok {
						t.Errorf("%s = %v: no such stream", p, e)
					}
				case "user_id", "sender_id":
					if _, ok := users[e.(float64)]; !ok {
						t.Errorf("%s = %v: no such user", p, e)
					}
				case "message_id":
					if !messages[e.(float64)] {
						t.Errorf("%s = %v: no such message", p, e)
					}
				case "stream_name":
					if sid, ok := x["stream_id"].(float64); ok && streams[sid] != e {
						t.Errorf("%s = %v, but stream %v is %q", p, e, sid, streams[sid])
					}
				}
				check(p, e)
			}
		case []any:
			for i, e := range x {
				check(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	for _, e := range events {
		var v map[string]any
		if err := json.Unmarshal(e.Raw, &v); err != nil {
			t.Fatal(err)
		}
		// Message objects carry the message's own id under "id".
		if m, ok := v["message"].(map[string]any); ok && !messages[m["id"].(float64)] {
			t.Errorf("message event %d names unknown message %v", e.ID, m["id"])
		}
		check(v["type"].(string), v)
	}
}

func TestGeneratorRunsAtRate(t *testing.T) {
	srv, fc := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(url.Values{"event_types": {`["presence","typing","message","reaction"]`}})
	gen, err := zuliptest.NewGenerator(srv, zuliptest.GeneratorConfig{Rate: 10, Seed: 1,
		Mix: map[string]float64{"presence": 1, "typing/start": 1, "message": 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := async(func() error { return gen.Run(ctx) })
	waitBlocked(t, fc, 1) // the generator's ticker
	last := int64(-1)
	for i := range 10 {
		fc.Advance(100 * time.Millisecond)
		// Each tick produces one event, which the long-poll returns.
		ev := a.getEvents(q, last, false).events(t)
		if len(ev) != 1 {
			t.Fatalf("tick %d: %d events", i, len(ev))
		}
		last = eventIDs(ev)[0]
		waitBlocked(t, fc, 1) // only the ticker again
	}
	fc.Advance(99 * time.Millisecond)
	if ev := a.getEvents(q, last, true).events(t); len(ev) != 0 {
		t.Fatalf("event before the next tick: %v", ev)
	}
	cancel()
	if err := await(t, done, "generator stop"); err != nil {
		t.Fatal(err)
	}
}

func TestNewGeneratorValidates(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	for name, cfg := range map[string]zuliptest.GeneratorConfig{
		"negative rate":    {Rate: -1},
		"unknown kind":     {Mix: map[string]float64{"carrier_pigeon": 1}},
		"negative weight":  {Mix: map[string]float64{"message": -1}},
		"no weight at all": {Mix: map[string]float64{"message": 0}},
	} {
		if _, err := zuliptest.NewGenerator(srv, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	gen, err := zuliptest.NewGenerator(srv, zuliptest.GeneratorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.Run(context.Background()); err == nil {
		t.Error("Run without a rate returned nil")
	}
}
