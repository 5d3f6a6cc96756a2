package kafka_test

import (
	"testing"

	"github.com/zulip-bridge/zulip-bridge/sink"
)

// TestMaxMessageBytes: the limit the sink reports leaves room under
// BRIDGE_KAFKA_BATCH_BYTES for the record framing and trace headers, and
// is what Publish accepts.
func TestMaxMessageBytes(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c)
	cfg.BatchBytes = 64 << 10
	var s sink.Sink = newSink(t, cfg)
	l, ok := s.(sink.Limiter)
	if !ok {
		t.Fatalf("%T is not a sink.Limiter", s)
	}
	if got := l.MaxMessageBytes(); got <= 0 || got >= int(cfg.BatchBytes) {
		t.Errorf("MaxMessageBytes %d, want a positive value below BatchBytes %d", got, cfg.BatchBytes)
	}
}
