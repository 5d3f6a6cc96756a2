// Command kafka-stream-counter counts the Zulip messages zulip-bridge
// publishes to Kafka, per stream, and serves the counts as Prometheus
// metrics: a small service to copy when starting one of your own.
//
// It reads the topics zulip.message and zulip.bridge as a member of the
// consumer group stream-counter (run several: the partitions are shared
// out, and a key, one conversation, stays with one member in order)
// through the consumer package, which decodes each record, skips the ones
// it has already seen (Zulip-Dedup-Key) and commits each offset once the
// record is counted. Messages to a stream count in
// zulip_stream_messages_total{stream_id, stream}, direct messages in
// zulip_direct_messages_total, and the bridge's resync control events (a
// lost Zulip queue; its messages are backfilled and counted once) in
// zulip_bridge_resyncs_total. Run it beside `BRIDGE_SINK=kafka bridge run`
// and scrape http://127.0.0.1:9465/metrics:
//
//	KAFKA_BROKERS=127.0.0.1:9092 go run ./examples/kafka-stream-counter
//
// Environment: KAFKA_BROKERS (127.0.0.1:9092, comma-separated),
// COUNTER_GROUP (stream-counter), COUNTER_TOPICS
// (zulip.message,zulip.bridge), METRICS_ADDR (127.0.0.1:9465).
package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"

	"github.com/zulip-bridge/zulip-bridge/consumer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Getenv, log, nil); err != nil {
		log.Error("kafka-stream-counter stopped", "error", err)
		os.Exit(1)
	}
}

// counters are the service's metrics.
type counters struct {
	reg     *prometheus.Registry
	stream  *prometheus.CounterVec
	direct  prometheus.Counter
	resyncs prometheus.Counter
}

func newCounters() *counters {
	c := &counters{
		reg: prometheus.NewRegistry(),
		stream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zulip_stream_messages_total", Help: "Zulip messages sent to a stream, by stream.",
		}, []string{"stream_id", "stream"}),
		direct: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zulip_direct_messages_total", Help: "Zulip direct messages.",
		}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zulip_bridge_resyncs_total", Help: "Lost Zulip queues the bridge replaced (bridge.resync control events).",
		}),
	}
	c.reg.MustRegister(c.stream, c.direct, c.resyncs)
	return c
}

// handle counts one event; anything but a message is committed and
// ignored.
func (c *counters) handle(_ context.Context, d *consumer.Delivery) error {
	m, ok := d.Event.(*consumer.MessageEvent)
	if !ok {
		return nil
	}
	switch {
	case m.Message.IsStream():
		c.stream.WithLabelValues(strconv.FormatInt(m.Message.StreamID, 10), m.Message.StreamName()).Inc()
	case m.Message.IsDirect():
		c.direct.Inc()
	}
	return nil
}

// run serves the metrics and consumes until ctx is done. ready, if set, is
// told the metrics address once it listens.
func run(ctx context.Context, getenv func(string) string, log *slog.Logger, ready func(net.Addr)) error {
	env := func(key, def string) string { return cmp.Or(getenv(key), def) }
	c := newCounters()

	ln, err := net.Listen("tcp", env("METRICS_ADDR", "127.0.0.1:9465"))
	if err != nil {
		return fmt.Errorf("METRICS_ADDR: %w", err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if ready != nil {
		ready(ln.Addr())
	}

	rc := kafka.ReaderConfig{
		Brokers:     strings.Split(env("KAFKA_BROKERS", "127.0.0.1:9092"), ","),
		GroupID:     env("COUNTER_GROUP", "stream-counter"),
		GroupTopics: strings.Split(env("COUNTER_TOPICS", "zulip.message,zulip.bridge"), ","),
		// A new group starts at the oldest record; a known one where it
		// committed last.
		StartOffset: kafka.FirstOffset,
		MaxWait:     500 * time.Millisecond,
	}
	log.Info("counting messages", "brokers", rc.Brokers, "group", rc.GroupID, "topics", rc.GroupTopics, "metrics", "http://"+ln.Addr().String()+"/metrics")
	return consumer.ConsumeKafka(ctx, rc, c.handle, consumer.Options{
		Logger: log,
		OnResync: func(_ context.Context, r *consumer.Resync, _ consumer.Metadata) error {
			c.resyncs.Inc()
			log.Warn("the bridge lost a Zulip queue; events other than messages in the gap are gone",
				"old_queue_id", r.OldQueueID, "messages_backfilled", r.MessagesBackfilled)
			return nil
		},
	})
}
