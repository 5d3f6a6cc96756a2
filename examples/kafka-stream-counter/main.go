// Command kafka-stream-counter counts the Zulip messages zulip-bridge
// publishes to Kafka, per stream, and serves the counts as Prometheus
// metrics: a small service to copy when starting one of your own.
//
// It reads the topics zulip.message and zulip.bridge as a member of the
// consumer group stream-counter (run several: the partitions are shared
// out, and a key, one conversation, stays with one member in order) through
// the consumer package, which decodes each record, skips the ones it has
// already seen (Zulip-Dedup-Key) and commits each offset once the record is
// counted. Messages to a stream count in
// zulip_stream_messages_total{stream_id, stream}, direct messages in
// zulip_direct_messages_total, and the bridge's resync control events (a
// lost Zulip queue; its messages are backfilled and counted once) in
// zulip_bridge_resyncs_total; the counting, the metrics server and the
// signal handling are package examples/streamcounter, which
// examples/nats-stream-counter shares: copy that folder with this one. Run
// it beside `BRIDGE_SINK=kafka bridge run` and scrape
// http://127.0.0.1:9465/metrics:
//
//	KAFKA_BROKERS=127.0.0.1:9092 go run ./examples/kafka-stream-counter
//
// Environment: KAFKA_BROKERS (127.0.0.1:9092, comma-separated),
// COUNTER_GROUP (stream-counter), COUNTER_TOPICS
// (zulip.message,zulip.bridge), METRICS_ADDR (127.0.0.1:9465).
package main

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/zulip-bridge/zulip-bridge/consumer"
	"github.com/zulip-bridge/zulip-bridge/examples/streamcounter"
)

func main() { streamcounter.Main("kafka-stream-counter", run) }

// run serves the metrics and consumes until ctx is done. ready, if set, is
// told the metrics address once it listens.
func run(ctx context.Context, getenv func(string) string, log *slog.Logger, ready func(net.Addr)) error {
	c, env, err := streamcounter.Start(getenv, "127.0.0.1:9465", ready)
	if err != nil {
		return err
	}
	defer c.Close()

	rc := kafka.ReaderConfig{
		Brokers:     strings.Split(env("KAFKA_BROKERS", "127.0.0.1:9092"), ","),
		GroupID:     env("COUNTER_GROUP", "stream-counter"),
		GroupTopics: strings.Split(env("COUNTER_TOPICS", "zulip.message,zulip.bridge"), ","),
		// A new group starts at the oldest record; a known one where it
		// committed last.
		StartOffset: kafka.FirstOffset,
		MaxWait:     500 * time.Millisecond,
	}
	log.Info("counting messages", "brokers", rc.Brokers, "group", rc.GroupID, "topics", rc.GroupTopics, "metrics", c.MetricsURL())
	return consumer.ConsumeKafka(ctx, rc, c.Handle, c.Options(log))
}
