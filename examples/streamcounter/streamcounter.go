// Package streamcounter is the counter the stream-counter examples share
// (examples/nats-stream-counter and examples/kafka-stream-counter): it
// counts the Zulip messages the consumer package delivers, per stream, and
// serves the counts as Prometheus metrics. Each example's main keeps only
// its broker's consumer wiring; copy this folder with the one you start
// from.
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
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zulip-bridge/zulip-bridge/consumer"
)

// Env reads the service's environment: the value of key, or def where it
// is unset or empty.
type Env func(key, def string) string

// NewEnv is the Env that reads getenv (os.Getenv in main, a map in tests).
func NewEnv(getenv func(string) string) Env {
	return func(key, def string) string { return cmp.Or(getenv(key), def) }
}

// Counter is the service's metrics.
type Counter struct {
	reg     *prometheus.Registry
	stream  *prometheus.CounterVec
	direct  prometheus.Counter
	resyncs prometheus.Counter
}

// New returns a Counter with every count at zero.
func New() *Counter {
	c := &Counter{
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

// Serve serves the counts over HTTP at METRICS_ADDR (def where it is
// unset) until stop is called. ready, if set, is told the address once it
// listens; url is the metrics page's, for the log.
func (c *Counter) Serve(env Env, def string, ready func(net.Addr)) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", env("METRICS_ADDR", def))
	if err != nil {
		return "", nil, fmt.Errorf("METRICS_ADDR: %w", err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr())
	}
	return "http://" + ln.Addr().String() + "/metrics", func() { _ = srv.Close() }, nil
}
