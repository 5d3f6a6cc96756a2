package main

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/zulip-bridge/zulip-bridge/examples/internal/countertest"
)

// TestCounts runs the service against a kfake cluster holding what the
// bridge publishes for a small conversation (a record stored twice among
// it), and reads its metrics; then stops it.
func TestCounts(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "zulip.message", "zulip.bridge", "zulip.reaction"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(c.ListenAddrs()...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll}
	var records []kafka.Message
	subscribed := 0 // records in the topics the service reads
	for _, p := range countertest.Messages(t) {
		r := kafka.Message{Topic: p.Topic, Key: p.Key, Value: p.Payload}
		for _, h := range p.Headers {
			r.Headers = append(r.Headers, kafka.Header{Key: h.Key, Value: []byte(h.Value)})
		}
		records = append(records, r)
		if p.Topic != "zulip.reaction" {
			subscribed++
		}
	}
	if err := w.WriteMessages(ctx, records...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{"KAFKA_BROKERS": strings.Join(c.ListenAddrs(), ","), "METRICS_ADDR": "127.0.0.1:0"}
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
	client := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...)}
	countertest.CheckWant(t, metrics, func() bool {
		resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: "stream-counter", Topics: map[string][]int{
			"zulip.message": {0, 1, 2}, "zulip.bridge": {0, 1, 2},
		}})
		if err != nil || resp.Error != nil {
			return false
		}
		committed := 0
		for _, parts := range resp.Topics {
			for _, p := range parts {
				committed += int(max(p.CommittedOffset, 0))
			}
		}
		return committed == subscribed
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after stop: %v", err)
	}
}
