// Command nats-stream-counter counts the Zulip messages zulip-bridge
// publishes to NATS JetStream, per stream, and serves the counts as
// Prometheus metrics: a small service to copy when starting one of your
// own.
//
// It reads the stream ZULIP with a durable pull consumer (so a restart
// resumes where it stopped) through the consumer package, which decodes
// each event, skips the ones it has already seen (Zulip-Dedup-Key) and
// acknowledges each once handled. Messages to a stream count in
// zulip_stream_messages_total{stream_id, stream}, direct messages in
// zulip_direct_messages_total, and the bridge's resync control events (a
// lost Zulip queue; its messages are backfilled and counted once) in
// zulip_bridge_resyncs_total; the counting, the metrics server and the
// signal handling are package examples/streamcounter, which
// examples/kafka-stream-counter shares: copy that folder with this one. Run
// it beside `bridge run` and scrape http://127.0.0.1:9464/metrics:
//
//	go run ./examples/nats-stream-counter
//
// Environment: NATS_URL (nats://127.0.0.1:4222), NATS_STREAM (ZULIP),
// COUNTER_DURABLE (stream-counter), COUNTER_SUBJECTS
// (zulip.message.>,zulip.bridge.>), METRICS_ADDR (127.0.0.1:9464).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/consumer"
	"github.com/zulip-bridge/zulip-bridge/examples/streamcounter"
)

func main() { streamcounter.Main("nats-stream-counter", run) }

// run serves the metrics and consumes until ctx is done. ready, if set, is
// told the metrics address once it listens.
func run(ctx context.Context, getenv func(string) string, log *slog.Logger, ready func(net.Addr)) error {
	c, env, err := streamcounter.Start(getenv, "127.0.0.1:9464", ready)
	if err != nil {
		return err
	}
	defer c.Close()

	url := env("NATS_URL", nats.DefaultURL)
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("NATS_URL %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cfg := consumer.JetStreamConfig{
		Stream:         env("NATS_STREAM", "ZULIP"),
		Durable:        env("COUNTER_DURABLE", "stream-counter"),
		FilterSubjects: strings.Split(env("COUNTER_SUBJECTS", "zulip.message.>,zulip.bridge.>"), ","),
	}
	log.Info("counting messages", "nats", url, "stream", cfg.Stream, "durable", cfg.Durable, "subjects", cfg.FilterSubjects, "metrics", c.MetricsURL())
	err = consumer.ConsumeJetStream(ctx, js, cfg, c.Handle, c.Options(log))
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
