package testutil

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/internal/natsembed"
)

// SyncBuffer collects output written from several goroutines (a logger, a
// subprocess) while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail returns the last lines of the buffer, for a failure message.
func (b *SyncBuffer) Tail(lines int) string {
	all := strings.Split(b.String(), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// NATS is a nats-server with JetStream on loopback that a test can stop
// and start again on the same port with the data it held: a broker outage.
type NATS struct {
	t    testing.TB
	dir  string
	addr string
	srv  *natsembed.Server
}

// StartNATS starts a server on a free loopback port; it is stopped when
// the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{t: t, dir: t.TempDir(), addr: "127.0.0.1:0"}
	n.Start()
	n.addr = strings.TrimPrefix(n.srv.ClientURL(), "nats://") // restarts reuse the port
	t.Cleanup(n.Stop)
	return n
}

// URL is the client URL, the same across restarts.
func (n *NATS) URL() string { return "nats://" + n.addr }

// Start starts the server again after Stop.
func (n *NATS) Start() {
	n.t.Helper()
	srv, err := natsembed.Start(natsembed.Config{Addr: n.addr, StoreDir: n.dir})
	if err != nil {
		n.t.Fatal(err)
	}
	n.srv = srv
}

// Stop stops the server; clients see it go away.
func (n *NATS) Stop() {
	if n.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		n.t.Error(err)
	}
	n.srv = nil
}

// StreamMsg is a message as a consumer reads it back from a stream.
type StreamMsg struct {
	Seq     uint64
	Subject string
	Headers nats.Header
	Data    []byte
}

// ReadStream reads every message of the stream with a plain nats.go
// ordered consumer, as a downstream service would, oldest first.
func ReadStream(t testing.TB, url, stream string) []StreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := info.State.Msgs
	var out []StreamMsg
	if total == 0 {
		return out
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for uint64(len(out)) < total {
		// Asking for no more than is left: a fetch waits until it has its
		// count or its wait is over.
		batch, err := c.Fetch(int(min(1000, total-uint64(len(out)))), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, StreamMsg{Seq: md.Sequence.Stream, Subject: m.Subject(), Headers: m.Headers(), Data: append([]byte(nil), m.Data()...)})
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("stream %s: read %d of %d messages, then nothing", stream, len(out), total)
		}
	}
	return out
}

// WaitFor polls cond every 2ms until it holds, failing the test after
// timeout with what it waited for. It is the tests' one way to wait for
// something another goroutine or process does, instead of sleeping.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
