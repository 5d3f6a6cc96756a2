package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
	"github.com/zulip-bridge/zulip-bridge/sink"
	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// startZulip is world.start with the source configuration shaped by zc
// (the register options), registering for every event type.
func (w *world) startZulip(cfg pipeline.Config, zc func(*source.Config)) *bridge {
	w.t.Helper()
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	zcfg := source.Config{Site: w.sim.URL, Email: zuliptest.DefaultBot.Email, APIKey: zuliptest.DefaultBot.APIKey, EventTypes: []string{"*"}}
	zc(&zcfg)
	client, err := source.NewClient(zcfg, source.WithLogger(log.With("component", "zulip")),
		source.WithBackoff(func(int) time.Duration { return time.Millisecond }))
	if err != nil {
		w.t.Fatal(err)
	}
	mapper, err := mapping.New(mapping.Config{}, client.Site())
	if err != nil {
		w.t.Fatal(err)
	}
	s := w.nats.sink(mapper.Prefix(), log)
	store, err := checkpoint.OpenFile(w.stateDir)
	if err != nil {
		_ = s.Close(context.Background())
		w.t.Fatal(err)
	}
	b := &bridge{t: w.t, obs: &counters{}, sink: s, store: store, done: make(chan struct{})}
	b.p, err = pipeline.New(cfg, pipeline.Deps{
		Site: client.Site(), Client: client, Mapper: mapper, Sink: s, Store: store,
		Logger: log, Observer: b.obs.observer(),
		Backoff:         func(int) time.Duration { return 5 * time.Millisecond },
		MaxMessageBytes: s.(sink.Limiter).MaxMessageBytes(),
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = b.stop() })
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() {
		defer close(b.done)
		b.err = b.p.Run(ctx)
	}()
	return b
}

// TestRegisterOptionsPublished: the register options change what reaches
// the broker. With BRIDGE_ZULIP_APPLY_MARKDOWN and _CLIENT_GRAVATAR, the
// messages delivered live and those backfilled after the queue was lost
// are alike published as HTML with avatar_url null (without them, alike
// as Markdown with a URL); with BRIDGE_ZULIP_FETCH_EVENT_TYPES and
// _INCLUDE_SUBSCRIBERS, each bridge.state holds only the subscriptions
// (with subscribers), the users and max_message_id.
func TestRegisterOptionsPublished(t *testing.T) {
	for _, tc := range []struct {
		name        string
		zulip       func(*source.Config)
		contentType string
		gravatarNil bool
		// stateHas and stateLacks are top-level keys of bridge.state.
		stateHas, stateLacks []string
		subscribers          bool
	}{
		{"default", func(*source.Config) {}, "text/x-markdown", false,
			[]string{"subscriptions", "realm_users", "max_message_id", "realm_emoji", "streams", "realm_name"}, nil, false},
		{"options on", func(c *source.Config) {
			c.ApplyMarkdown, c.ClientGravatar, c.IncludeSubscribers = true, true, true
			c.FetchEventTypes = []string{"subscription", "realm_user"}
		}, "text/html", true,
			[]string{"subscriptions", "realm_users", "max_message_id"}, []string{"realm_emoji", "streams", "realm_name"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			cfg := pipeline.Config{PublishInitialState: true}
			b1 := w.startZulip(cfg, tc.zulip)
			q1 := b1.queueID()
			live := w.send(2, "live")
			w.waitAcked(q1)
			if err := b1.stop(); err != nil {
				t.Fatalf("first Run: %v", err)
			}
			if !w.sim.ExpireQueue(q1) {
				t.Fatalf("queue %s did not exist", q1)
			}
			missed := w.send(2, "while down")
			b2 := w.startZulip(cfg, tc.zulip)
			q2 := w.newQueue(b2, q1)
			// Acknowledged once the backfill and the resync were published.
			live = append(live, w.send(1, "after")...)
			w.waitAcked(q2)
			if err := b2.stop(); err != nil {
				t.Fatalf("second Run: %v", err)
			}

			stream := w.readStream()
			var control []stored
			markdown := tc.contentType == "text/x-markdown"
			if markdown {
				// The harness's whole check (it compares backfilled
				// content with the Markdown sent).
				control = w.checkStream(stream, expectation{queues: []string{q1, q2}, backfilled: missed})
			}
			byKey := map[string]stored{}
			for _, m := range stream {
				byKey[m.h(mapping.HeaderDedupKey)] = m
				if strings.HasPrefix(m.subject, "zulip.bridge.") && !markdown {
					control = append(control, m)
				}
			}
			// Live messages are published as delivered, byte for byte.
			delivered := map[int64][]byte{}
			for _, q := range []string{q1, q2} {
				for _, ev := range w.sim.Delivered(q) {
					var e struct {
						Message struct {
							ID int64 `json:"id"`
						} `json:"message"`
					}
					if ev.Type == "message" && json.Unmarshal(ev.Raw, &e) == nil {
						delivered[e.Message.ID] = ev.Raw
					}
				}
			}
			sent := map[int64]string{}
			for _, m := range w.sim.Messages() {
				sent[m.ID] = m.Content
			}
			var keys []string // of the message objects, all alike
			for _, id := range append(slices.Clone(live), missed...) {
				m, ok := byKey[fmt.Sprintf("%s/message/%d", w.host, id)]
				if !ok {
					t.Fatalf("message %d not published", id)
				}
				backfilled := m.h(mapping.HeaderBackfill) == "true"
				if backfilled != slices.Contains(missed, id) {
					t.Errorf("message %d: Zulip-Backfill %q", id, m.h(mapping.HeaderBackfill))
				}
				var p struct {
					Message map[string]any `json:"message"`
				}
				if err := json.Unmarshal(m.data, &p); err != nil {
					t.Fatalf("message %d payload %s: %v", id, m.data, err)
				}
				if raw, ok := delivered[id]; ok == backfilled || ok && string(raw) != string(m.data) {
					t.Errorf("message %d (backfilled %v): published %s, delivered live %s", id, backfilled, m.data, raw)
				}
				content, _ := p.Message["content"].(string)
				want := sent[id]
				if tc.contentType == "text/html" {
					want = "<p>" + want + "</p>" // the simulator's rendering of one plain paragraph
				}
				if p.Message["content_type"] != tc.contentType || content != want {
					t.Errorf("message %d (backfilled %v): content %q, content_type %v, want %q, %s", id, backfilled, content, p.Message["content_type"], want, tc.contentType)
				}
				if avatar, ok := p.Message["avatar_url"]; !ok || (avatar == nil) != tc.gravatarNil {
					t.Errorf("message %d (backfilled %v): avatar_url %v, want null: %v", id, backfilled, avatar, tc.gravatarNil)
				}
				k := slices.Sorted(maps.Keys(p.Message))
				if keys == nil {
					keys = k
				} else if !slices.Equal(k, keys) {
					t.Errorf("message %d (backfilled %v) has fields %v, the first live one %v", id, backfilled, k, keys)
				}
			}

			states := controlEvents(control, "state")
			if len(states) != 2 {
				t.Fatalf("%d bridge.state events, want one per registration (2)", len(states))
			}
			for i, s := range states {
				var st map[string]json.RawMessage
				if err := json.Unmarshal(s.data, &st); err != nil {
					t.Fatalf("state %d: %v", i, err)
				}
				for _, k := range tc.stateHas {
					if _, ok := st[k]; !ok {
						t.Errorf("state %d has no %s", i, k)
					}
				}
				for _, k := range tc.stateLacks {
					if _, ok := st[k]; ok {
						t.Errorf("state %d has %s, not fetched", i, k)
					}
				}
				var subs []map[string]json.RawMessage
				if err := json.Unmarshal(st["subscriptions"], &subs); err != nil || len(subs) == 0 {
					t.Fatalf("state %d subscriptions %.200s: %v", i, st["subscriptions"], err)
				}
				if _, ok := subs[0]["subscribers"]; ok != tc.subscribers {
					t.Errorf("state %d: subscribers listed %v, want %v", i, ok, tc.subscribers)
				}
				var users []map[string]any
				if err := json.Unmarshal(st["realm_users"], &users); err != nil || len(users) == 0 {
					t.Fatalf("state %d realm_users: %v", i, err)
				}
				if (users[0]["avatar_url"] == nil) != tc.gravatarNil {
					t.Errorf("state %d: user avatar_url %v, want null: %v", i, users[0]["avatar_url"], tc.gravatarNil)
				}
			}
		})
	}
}
