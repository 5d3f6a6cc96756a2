package nats

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/zulip-bridge/zulip-bridge/sink"
)

// TestMaxMessageBytes: both sinks report the server's max_payload less the
// room kept for headers added after the caller's size check, and a message
// of exactly that size (by sink.Size) with those headers is accepted.
func TestMaxMessageBytes(t *testing.T) {
	const maxPayload = 64 << 10
	ts := startServer(t, func(o *server.Options) { o.MaxPayload = maxPayload })
	for _, jetStream := range []bool{true, false} {
		s := openSink(t, testConfig(ts, jetStream))
		l, ok := s.(sink.Limiter)
		if !ok {
			t.Fatalf("%T is not a sink.Limiter", s)
		}
		if got, want := l.MaxMessageBytes(), maxPayload-headroom; got != want {
			t.Errorf("jetstream=%v: MaxMessageBytes %d, want %d", jetStream, got, want)
		}
	}
}
