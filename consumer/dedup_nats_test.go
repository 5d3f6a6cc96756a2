package consumer_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/consumer"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

// mapStore is a durable idempotency store as a test has one: it outlives
// the consumers.
type mapStore struct {
	mu    sync.Mutex
	keys  map[string]bool
	marks int
}

func (s *mapStore) Seen(_ context.Context, key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key], nil
}

func (s *mapStore) Mark(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = true
	s.marks++
	return nil
}

// TestJetStreamDuplicates: a message stored twice under one
// Zulip-Dedup-Key (as a broker consumer can see it again) is handled once;
// a second consumer of the same stream, sharing the durable store but not
// the in-memory window, handles none of them again.
func TestJetStreamDuplicates(t *testing.T) {
	n := testutil.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZULIP", Subjects: []string{"zulip.>"}}); err != nil {
		t.Fatal(err)
	}
	publish := func(msgID, key, payload string) {
		m := nats.NewMsg("zulip.presence")
		m.Header.Set(consumer.HeaderEventType, "presence")
		m.Header.Set(consumer.HeaderDedupKey, key)
		m.Header.Set(consumer.HeaderNatsMsgID, msgID)
		m.Data = []byte(payload)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	publish("1", "site/q/1", `{"type":"presence","id":1,"user_id":10}`)
	publish("2", "site/q/2", `{"type":"presence","id":2,"user_id":11}`)
	publish("3", "site/q/1", `{"type":"presence","id":1,"user_id":10}`)
	publish("4", "site/q/3", `{"type":"presence","id":3,"user_id":12}`)

	store := &mapStore{keys: map[string]bool{}}
	consume := func(durable string, windowSize int) (handled []string, dups int) {
		var mu sync.Mutex
		cctx, stop := context.WithCancel(ctx)
		defer stop()
		total := 0
		opts := consumer.Options{
			WindowSize: windowSize, Store: store, Logger: slog.New(slog.DiscardHandler),
			OnDuplicate: func(consumer.Metadata) {
				mu.Lock()
				defer mu.Unlock()
				dups++
				if total++; total == 4 {
					stop()
				}
			},
		}
		h := func(_ context.Context, d *consumer.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			handled = append(handled, d.Meta.DedupKey)
			if _, ok := d.Event.(*consumer.PresenceEvent); !ok {
				t.Errorf("%T, want *PresenceEvent", d.Event)
			}
			if total++; total == 4 {
				stop()
			}
			return nil
		}
		if err := consumer.ConsumeJetStream(cctx, js, consumer.JetStreamConfig{Durable: durable}, h, opts); err != nil {
			t.Fatal(err)
		}
		return handled, dups
	}
	handled, dups := consume("first", 0)
	if len(handled) != 3 || dups != 1 || handled[0] != "site/q/1" || handled[2] != "site/q/3" {
		t.Errorf("first consumer handled %v with %d duplicates; want site/q/1, site/q/2, site/q/3 and 1", handled, dups)
	}
	handled, dups = consume("second", -1)
	if len(handled) != 0 || dups != 4 || store.marks != 3 {
		t.Errorf("second consumer handled %v, %d duplicates, %d marks; want none, 4, 3", handled, dups, store.marks)
	}
}
