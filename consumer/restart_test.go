package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/consumer"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

// TestJetStreamServerRestart: the server stops under a running consumer
// and comes back with its data; the consumer carries on with what is
// published after, each message handled once.
func TestJetStreamServerRestart(t *testing.T) {
	n := testutil.StartNATS(t)
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
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
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZULIP", Subjects: []string{"zulip.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	publish := func(i int) {
		m := nats.NewMsg("zulip.presence")
		m.Header.Set(consumer.HeaderEventType, "presence")
		m.Header.Set(consumer.HeaderDedupKey, fmt.Sprintf("site/q/%d", i))
		m.Data = fmt.Appendf(nil, `{"type":"presence","id":%d,"user_id":10}`, i)
		// Retried while the client reconnects.
		testutil.WaitFor(t, waitLimit, "a publish", func() bool {
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			defer pcancel()
			_, err := js.PublishMsg(pctx, m)
			return err == nil
		})
	}

	var (
		mu      sync.Mutex
		handled = map[string]int{}
	)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- consumer.ConsumeJetStream(cctx, js, consumer.JetStreamConfig{Durable: "restart"}, func(_ context.Context, d *consumer.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			handled[d.Meta.DedupKey]++
			return nil
		}, consumer.Options{Logger: slog.New(slog.DiscardHandler), Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	}()
	publish(1)
	publish(2)
	testutil.WaitFor(t, waitLimit, "two messages handled", func() bool { return count() == 2 })
	n.Stop()
	n.Start()
	publish(3)
	publish(4)
	testutil.WaitFor(t, waitLimit, "four messages handled", func() bool { return count() == 4 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for k, v := range handled {
		if v != 1 {
			t.Errorf("%s handled %d times", k, v)
		}
	}
}
