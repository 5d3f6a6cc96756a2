package nats

import (
	"context"
	"net"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// testServer is an embedded nats-server with JetStream on 127.0.0.1 that
// can be stopped and started again on the same port with the same store.
type testServer struct {
	t    testing.TB
	opts *server.Options
	srv  *server.Server
}

func startServer(t testing.TB, configure ...func(*server.Options)) *testServer {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	for _, f := range configure {
		f(opts)
	}
	ts := &testServer{t: t, opts: opts}
	ts.start()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) start() {
	ts.t.Helper()
	srv, err := server.NewServer(ts.opts.Clone())
	if err != nil {
		ts.t.Fatalf("nats-server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		ts.t.Fatal("nats-server not ready for connections")
	}
	ts.srv = srv
	// A restart must come back where the clients reconnect to.
	ts.opts.Port = srv.Addr().(*net.TCPAddr).Port
}

func (ts *testServer) stop() {
	if ts.srv == nil {
		return
	}
	ts.srv.Shutdown()
	ts.srv.WaitForShutdown()
	ts.srv = nil
}

// url is the client URL, nats://127.0.0.1:port.
func (ts *testServer) url() string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ts.opts.Port))
}

// connect opens a plain nats.go connection for a test's own reading,
// reconnecting quickly so that it follows the server through restarts.
func (ts *testServer) connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(20 * time.Millisecond), nats.ReconnectJitter(0, 0)}, opts...)
	nc, err := nats.Connect(ts.url(), opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitConnected waits until nc is connected and its subscriptions are
// registered with the server again.
func waitConnected(t testing.TB, nc *nats.Conn) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if nc.Status() == nats.CONNECTED {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := nc.FlushWithContext(ctx)
			cancel()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection not back after 30s: %v", nc.Status())
		}
		tick(10 * time.Millisecond)
	}
}

func tick(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	<-timer.C
}

// fromNATS turns a received message into what sinktest compares: headers
// sorted by key (NATS keeps them in a map), the dedup key from Nats-Msg-Id
// or, in core mode, the Zulip-Dedup-Key header.
func fromNATS(subject string, h nats.Header, data []byte) *mapping.Message {
	m := &mapping.Message{Subject: subject, Payload: slices.Clone(data)}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			m.Headers = append(m.Headers, mapping.Header{Key: k, Value: v})
		}
	}
	m.DedupKey = h.Get(nats.MsgIdHdr)
	if m.DedupKey == "" {
		m.DedupKey = h.Get(mapping.HeaderDedupKey)
	}
	return m
}

// testConfig is the default configuration pointed at ts.
func testConfig(ts *testServer, jetStream bool) Config {
	cfg := Config{Stream: "ZULIP"} // named: the tests read the stream back
	cfg.URL = ts.url()
	cfg.JetStream = new(jetStream)
	return cfg
}

func newSink(t testing.TB, cfg Config, opts ...Option) *JetStream {
	t.Helper()
	s := openSink(t, cfg, opts...)
	js, ok := s.(*JetStream)
	if !ok {
		t.Fatalf("New returned %T, want *JetStream", s)
	}
	return js
}

func openSink(t testing.TB, cfg Config, opts ...Option) sink.Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := New(ctx, cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}
