package kafka_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Suite{
		New: newHarness,
		// Kafka keeps every record it is sent; the sink avoids duplicates
		// by reading back, which the suite's plain re-publish of a
		// confirmed batch does not trigger.
		Dedups: false,
	})
}

var (
	_ sinktest.Restarter = (*harness)(nil)
	_ sinktest.Counter   = (*harness)(nil)
)

// harness is a one-broker kfake cluster persisted to a directory, so that
// it can stop and come back on the same port with its data.
type harness struct {
	t    *testing.T
	dir  string
	port int

	mu      sync.Mutex
	cluster *kfake.Cluster
}

func newHarness(t *testing.T) sinktest.Harness {
	h := &harness{t: t, dir: t.TempDir()}
	h.start(t)
	_, port, err := net.SplitHostPort(h.cluster.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	h.port, _ = strconv.Atoi(port)
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.cluster != nil {
			h.cluster.Close()
		}
	})
	return h
}

func (h *harness) start(t testing.TB) {
	t.Helper()
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(testPartitions, sinktest.Topics()...),
		kfake.DataDir(h.dir),
	}
	if h.port != 0 {
		opts = append(opts, kfake.Ports(h.port))
	}
	var c *kfake.Cluster
	// The old listener's port can take a moment to be free again.
	testutil.WaitFor(t, 20*time.Second, "kfake to listen again", func() bool {
		var err error
		c, err = kfake.NewCluster(opts...)
		if err != nil {
			t.Logf("start kfake: %v", err)
		}
		return err == nil
	})
	h.mu.Lock()
	h.cluster = c
	h.mu.Unlock()
}

func (h *harness) addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(h.port))
}

func (h *harness) NewSink(t testing.TB) sink.Sink {
	s, err := kafkasink.New(context.Background(), kafkasink.Config{
		Brokers:      []string{h.addr()},
		WriteTimeout: 3 * time.Second,
		DialTimeout:  time.Second,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func (h *harness) Stored(t testing.TB) []*mapping.Message {
	h.mu.Lock()
	c := h.cluster
	h.mu.Unlock()
	var out []*mapping.Message
	for _, r := range consumeAll(t, c, kafka.DefaultDialer) {
		m := &mapping.Message{Topic: r.Topic, Key: r.Key, Payload: r.Value, DedupKey: r.header(mapping.HeaderDedupKey)}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, mapping.Header{Key: h.Key, Value: string(h.Value)})
		}
		out = append(out, m)
	}
	return out
}

// Count sums the end offsets of the suite's partitions (storedCount).
func (h *harness) Count(t testing.TB) int { return storedCount(t, h.addr()) }

func (h *harness) StopBroker(t testing.TB) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cluster.Close()
	h.cluster = nil
}

func (h *harness) StartBroker(t testing.TB) {
	h.start(t)
}
