package nats

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

func TestConformance(t *testing.T) {
	t.Run("JetStream", func(t *testing.T) {
		sinktest.Run(t, sinktest.Suite{
			New:    func(t *testing.T) sinktest.Harness { return newJSHarness(t) },
			Dedups: true,
		})
	})
	t.Run("Core", func(t *testing.T) {
		sinktest.Run(t, sinktest.Suite{
			New:        func(t *testing.T) sinktest.Harness { return newCoreHarness(t) },
			AtMostOnce: true,
		})
	})
}

// jsHarness reads the stream back with a plain nats.go connection.
type jsHarness struct {
	ts  *testServer
	cfg Config
	nc  *nats.Conn
}

func newJSHarness(t *testing.T) *jsHarness {
	ts := startServer(t)
	return &jsHarness{ts: ts, cfg: testConfig(ts, true), nc: ts.connect(t)}
}

func (h *jsHarness) NewSink(t testing.TB) sink.Sink {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := New(ctx, h.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func (h *jsHarness) Stored(t testing.TB) []*mapping.Message {
	t.Helper()
	msgs, err := readStream(h.nc, h.cfg.Stream)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	return msgs
}

// Count reads the stream's message count, cheap enough to poll.
func (h *jsHarness) Count(t testing.TB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(h.nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	st, err := js.Stream(ctx, h.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return int(st.CachedInfo().State.Msgs)
}

func (h *jsHarness) StopBroker(t testing.TB) { h.ts.stop() }

func (h *jsHarness) StartBroker(t testing.TB) {
	h.ts.start()
	waitConnected(t, h.nc)
}

// readStream returns every message of the stream, in stream order, read
// with an ordered consumer as any consumer would.
func readStream(nc *nats.Conn, name string) ([]*mapping.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	last := st.CachedInfo().State.LastSeq
	if st.CachedInfo().State.Msgs == 0 {
		return nil, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	var out []*mapping.Message
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, err
		}
		out = append(out, fromNATS(msg.Subject(), msg.Headers(), msg.Data()))
		meta, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		if meta.Sequence.Stream >= last {
			return out, nil
		}
	}
}

// coreHarness subscribes to the suite's subjects before any sink exists
// and keeps what it receives: core NATS stores nothing.
type coreHarness struct {
	ts  *testServer
	cfg Config
	nc  *nats.Conn
	ch  chan *nats.Msg

	mu       sync.Mutex
	received []*mapping.Message
}

func newCoreHarness(t *testing.T) *coreHarness {
	ts := startServer(t)
	h := &coreHarness{ts: ts, cfg: testConfig(ts, false), nc: ts.connect(t), ch: make(chan *nats.Msg, 1<<16)}
	if _, err := h.nc.ChanSubscribe(sinktest.Prefix+".>", h.ch); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	waitConnected(t, h.nc)
	return h
}

func (h *coreHarness) NewSink(t testing.TB) sink.Sink {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := New(ctx, h.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// Stored flushes the subscriber's connection first: the server sends the
// PONG after every message it routed to it before, and nats.go hands
// channel subscriptions their messages before it reads the PONG.
func (h *coreHarness) Stored(t testing.TB) []*mapping.Message {
	t.Helper()
	waitConnected(t, h.nc)
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		select {
		case m := <-h.ch:
			h.received = append(h.received, fromNATS(m.Subject, m.Header, m.Data))
		default:
			return append([]*mapping.Message(nil), h.received...)
		}
	}
}

// Count is what the subscription received so far, without a flush.
func (h *coreHarness) Count(t testing.TB) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.received) + len(h.ch)
}

func (h *coreHarness) StopBroker(t testing.TB) { h.ts.stop() }

func (h *coreHarness) StartBroker(t testing.TB) {
	h.ts.start()
	waitConnected(t, h.nc)
}
