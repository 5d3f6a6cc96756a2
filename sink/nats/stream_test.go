package nats

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

func TestCreatesStreamAsConfigured(t *testing.T) {
	ts := startServer(t)
	cfg := testConfig(ts, true)
	cfg.Stream = "EVENTS"
	cfg.DuplicateWindow = 5 * time.Minute
	cfg.MaxAge = 48 * time.Hour
	cfg.MaxBytes = 64 << 20
	s := newSink(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := s.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := info.Config
	if got.Name != "EVENTS" || !slices.Equal(got.Subjects, []string{sinktest.Prefix + ".>"}) ||
		got.Storage != jetstream.FileStorage || got.Duplicates != 5*time.Minute || got.MaxAge != 48*time.Hour ||
		got.MaxBytes != 64<<20 || got.Replicas != 1 {
		t.Errorf("created stream %+v", got)
	}
}

func TestExistingStreamIsLeftAlone(t *testing.T) {
	ts := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(ts.connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "ZULIP", Subjects: []string{"zulip.>"}, Storage: jetstream.MemoryStorage, Duplicates: time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, testConfig(ts, true))
	info, err := s.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Storage != jetstream.MemoryStorage || info.Config.Duplicates != time.Hour {
		t.Errorf("the sink changed an existing stream: %+v", info.Config)
	}
}

func TestMissingStreamWithoutCreate(t *testing.T) {
	ts := startServer(t)
	cfg := testConfig(ts, true)
	cfg.CreateStream = new(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := New(ctx, cfg)
	if err == nil {
		_ = s.Close(ctx)
		t.Fatal("New succeeded without a stream and without BRIDGE_NATS_CREATE_STREAM")
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("New = %v, want it to wrap jetstream.ErrStreamNotFound", err)
	}
}

func TestNewNeedsAServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := Config{}
	if _, err := New(ctx, cfg); !errors.Is(err, ErrNoURL) {
		t.Errorf("New without a URL = %v, want ErrNoURL", err)
	}
	cfg.URL = "nats://127.0.0.1:4222"
	cfg.SubjectPrefix = "bad prefix"
	if _, err := New(ctx, cfg); err == nil {
		t.Error("New accepted a prefix with a space")
	}
	// An option that cannot apply its value fails New instead of
	// panicking later.
	cfg.SubjectPrefix = ""
	for _, opt := range []Option{WithLogger(nil), WithConnectOptions(nil)} {
		if _, err := New(ctx, cfg, opt); err == nil || !strings.Contains(err.Error(), "nil") {
			t.Errorf("New with a nil option value = %v, want an error", err)
		}
	}
}

// TestInProcessConnection: with no URL, the caller's embedded server is
// reached through nats.InProcessServer, without a socket.
func TestInProcessConnection(t *testing.T) {
	ts := startServer(t)
	cfg := Config{Stream: "ZULIP"}
	s := newSink(t, cfg, WithConnectOptions(nats.InProcessServer(ts.srv)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var g sinktest.Generator
	batch := g.Batch(20)
	if err := s.Publish(ctx, batch); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	checkExactlyOnceInOrder(t, ts.connect(t), cfg.Stream, batch)
}
