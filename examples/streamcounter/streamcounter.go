// Package streamcounter is the counter the stream-counter examples share
// (examples/nats-stream-counter and examples/kafka-stream-counter): it
// counts the Zulip messages the consumer package delivers, per stream, and
// serves the counts as Prometheus metrics. It also runs the process (Main:
// signals, logger, exit status), so that each example's main keeps only its
// broker's consumer wiring; copy this folder with the one you start from.
//
// Messages to a stream count in zulip_stream_messages_total{stream_id,
// stream}, direct messages in zulip_direct_messages_total, and the bridge's
// resync control events (a lost Zulip queue; its messages are backfilled
// and counted once) in zulip_bridge_resyncs_total.
package streamcounter

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
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zulip-bridge/zulip-bridge/consumer"
)

// Main runs run until SIGINT or SIGTERM, with the process's environment
// and a text logger on stderr; an error run returns is logged ("<name>
// stopped") and ends the process with status 1.
func Main(name string, run func(ctx context.Context, getenv func(string) string, log *slog.Logger, ready func(net.Addr)) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	err := run(ctx, os.Getenv, log, nil)
	stop()
	if err != nil {
		log.Error(name+" stopped", "error", err)
		os.Exit(1)
	}
}

// Env reads the service's environment: the value of key, or def where it
// is unset or empty.
type Env func(key, def string) string

// Counter is the service's metrics, and the HTTP server that serves them.
type Counter struct {
	reg     *prometheus.Registry
	stream  *prometheus.CounterVec
	direct  prometheus.Counter
	resyncs prometheus.Counter

	srv *http.Server
	url string
}

// Start makes the counters, every count at zero, and serves them over HTTP
// at METRICS_ADDR (metricsAddr where it is unset) until Close. ready, if
// set, is told the address once it listens. env reads getenv (os.Getenv in
// main, a map in tests), for the rest of the service's variables.
func Start(getenv func(string) string, metricsAddr string, ready func(net.Addr)) (c *Counter, env Env, err error) {
	env = func(key, def string) string { return cmp.Or(getenv(key), def) }
	c = &Counter{
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

	ln, err := net.Listen("tcp", env("METRICS_ADDR", metricsAddr))
	if err != nil {
		return nil, nil, fmt.Errorf("METRICS_ADDR: %w", err)
	}
	c.srv = &http.Server{Handler: promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	c.url = "http://" + ln.Addr().String() + "/metrics"
	go func() { _ = c.srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr())
	}
	return c, env, nil
}

// MetricsURL is the address of the metrics page, for the log.
func (c *Counter) MetricsURL() string { return c.url }

// Close stops serving the counts.
func (c *Counter) Close() { _ = c.srv.Close() }

// Handle is the consumer.Handler: it counts one event; anything but a
// message is acknowledged (committed) and ignored.
func (c *Counter) Handle(_ context.Context, d *consumer.Delivery) error {
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

// Options are the consumer.Options to consume with: logs to log, and each
// bridge.resync counted and logged as a warning.
func (c *Counter) Options(log *slog.Logger) consumer.Options {
	return consumer.Options{
		Logger: log,
		OnResync: func(_ context.Context, r *consumer.Resync, _ consumer.Metadata) error {
			c.resyncs.Inc()
			log.Warn("the bridge lost a Zulip queue; events other than messages in the gap are gone",
				"old_queue_id", r.OldQueueID, "messages_backfilled", r.MessagesBackfilled)
			return nil
		},
	}
}
