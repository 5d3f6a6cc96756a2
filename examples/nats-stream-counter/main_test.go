package main

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/examples/internal/countertest"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

// TestCounts runs the service against an embedded JetStream holding what
// the bridge publishes for a small conversation (a message stored twice
// under one dedup key among it), and reads its metrics; then stops it.
func TestCounts(t *testing.T) {
	n := testutil.StartNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZULIP", Subjects: []string{"zulip.>"}}); err != nil {
		t.Fatal(err)
	}
	var last uint64 // the stream sequence of the last message the service reads
	for i, p := range countertest.Messages(t) {
		m := nats.NewMsg(p.Subject)
		for _, h := range p.Headers {
			m.Header.Set(h.Key, h.Value)
		}
		m.Header.Set("Nats-Msg-Id", strconv.Itoa(i)) // a copy gets past JetStream's own dedup
		m.Data = p.Payload
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if p.Topic != "zulip.reaction" { // outside the service's subjects
			last = ack.Sequence
		}
	}

	env := map[string]string{"NATS_URL": n.URL(), "METRICS_ADDR": "127.0.0.1:0"}
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func(k string) string { return env[k] }, slog.New(slog.DiscardHandler), func(a net.Addr) { addr <- a.String() })
	}()
	var metrics string
	select {
	case metrics = <-addr:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	countertest.CheckWant(t, metrics, func() bool {
		c, err := js.Consumer(ctx, "ZULIP", "stream-counter")
		if err != nil {
			return false // not created yet
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream == last
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after stop: %v", err)
	}
}
