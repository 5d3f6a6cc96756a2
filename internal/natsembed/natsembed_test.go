package natsembed

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStartPersists proves the embedded server has JetStream and keeps
// streams in the store dir across a restart, which is what lets the zero-setup
// default keep its exactly-once promise.
func TestStartPersists(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	start := func() (*Server, jetstream.JetStream, *nats.Conn) {
		t.Helper()
		s, err := Start(Config{Addr: "127.0.0.1:0", StoreDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return s, js, nc
	}

	s, js, nc := start()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.x", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	s, js, nc = start()
	defer func() { nc.Close(); _ = s.Shutdown(ctx) }()
	m, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := m.GetLastMsgForSubject(ctx, "t.x")
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != "hello" {
		t.Fatalf("after restart got %q, want hello", msg.Data)
	}
}

func TestStartRejectsBadAddr(t *testing.T) {
	if _, err := Start(Config{Addr: "nonsense", StoreDir: t.TempDir()}); err == nil {
		t.Fatal("want error for address without port")
	}
}

// TestStartAddrInUse: an address another process listens on fails Start
// with the listen error, without waiting ReadyTimeout (nats-server itself
// only logs it and never becomes ready).
func TestStartAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		s, err := Start(Config{Addr: ln.Addr().String(), StoreDir: t.TempDir(), ReadyTimeout: time.Minute})
		if err == nil {
			_ = s.Shutdown(context.Background())
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), ln.Addr().String()) {
			t.Errorf("Start on an address in use: %v, want address already in use naming %s", err, ln.Addr())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Start on an address in use waited for the server (ReadyTimeout is a minute)")
	}
}
