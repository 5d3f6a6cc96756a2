package nats

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

func TestPositionIsTheLastAcknowledgedSequence(t *testing.T) {
	ts := startServer(t)
	cfg := testConfig(ts, true)
	s := newSink(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if got := position0(t, s); got != (position{Stream: "ZULIP", Seq: 0}) {
		t.Errorf("Position on an empty stream = %+v", got)
	}
	var g sinktest.Generator
	if err := s.Publish(ctx, g.Batch(25)); err != nil {
		t.Fatal(err)
	}
	if got := position0(t, s); got.Seq != 25 {
		t.Errorf("Position after 25 messages = %+v, want seq 25", got)
	}
	// A new sink has acknowledged nothing yet: it reports the stream's end.
	if got := position0(t, newSink(t, cfg)); got.Seq != 25 {
		t.Errorf("Position of a new sink = %+v, want the stream's last seq 25", got)
	}
}

func position0(t *testing.T, s *JetStream) position {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := s.Position(ctx)
	if err != nil {
		t.Fatalf("Position: %v", err)
	}
	var p position
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("Position %s: %v", raw, err)
	}
	return p
}

// TestPublishedSince reads back exactly the dedup keys stored on the
// bridge's subjects after a position, from a stream shared with others.
func TestPublishedSince(t *testing.T) {
	ts := startServer(t)
	nc := ts.connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// An operator's stream that also captures another application.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SHARED", Subjects: []string{"zulip.>", "other.>"}}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(ts, true)
	cfg.Stream, cfg.CreateStream = "SHARED", new(false)
	s := newSink(t, cfg)

	var g sinktest.Generator
	before := g.Batch(300)
	if err := s.Publish(ctx, before); err != nil {
		t.Fatal(err)
	}
	pos, err := s.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	foreign := func(id string) {
		m := nats.NewMsg("other.thing")
		m.Header.Set(jetstream.MsgIDHeader, id)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	foreign("other-1")
	after := g.Batch(2000)
	if err := s.Publish(ctx, after[:1000]); err != nil {
		t.Fatal(err)
	}
	foreign("other-2")
	// Without Nats-Msg-Id a message says nothing about what to skip.
	if _, err := js.Publish(ctx, "zulip.message.direct", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, after[1000:]); err != nil {
		t.Fatal(err)
	}
	// The read-back must end on the last of its subjects, not the stream's.
	foreign("other-3")

	restarted := newSink(t, cfg)
	tests := []struct {
		name string
		pos  json.RawMessage
		want []*mapping.Message
	}{
		{"after the checkpoint", pos, after},
		{"nil reads everything", nil, append(before, after...)},
		{"JSON null reads everything", json.RawMessage("null"), append(before, after...)},
		{"position of another stream reads everything", json.RawMessage(`{"stream":"OLD","seq":250}`), append(before, after...)},
		{"position past the end (stream recreated) reads everything", json.RawMessage(`{"stream":"SHARED","seq":999999}`), append(before, after...)},
		{"position at the end reads nothing", mustPosition(t, restarted), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := restarted.PublishedSince(ctx, tt.pos)
			if err != nil {
				t.Fatalf("PublishedSince(%s): %v", tt.pos, err)
			}
			want := map[string]struct{}{}
			for _, m := range tt.want {
				want[m.DedupKey] = struct{}{}
			}
			if !maps.Equal(got, want) {
				t.Errorf("PublishedSince(%s): %d keys, want %d; extra %v", tt.pos, len(got), len(want), extra(got, want))
			}
		})
	}

	for _, raw := range []string{`{`, `{"seq":3}`, `"ZULIP"`} {
		if _, err := restarted.PublishedSince(ctx, json.RawMessage(raw)); !errors.Is(err, ErrBadPosition) {
			t.Errorf("PublishedSince(%s) = %v, want ErrBadPosition", raw, err)
		}
	}
}

func mustPosition(t *testing.T, s *JetStream) json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pos, err := s.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

func extra(got, want map[string]struct{}) []string {
	var out []string
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out[:min(len(out), 5)]
}
