package natskv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/checkpoint/checkpointtest"
	"github.com/zulip-bridge/zulip-bridge/source"
)

var site = mustSite("https://chat.example.com")

func mustSite(raw string) source.Site {
	s, err := source.ParseSite(raw)
	if err != nil {
		panic(err)
	}
	return s
}

// startServer runs a JetStream server in process on a free loopback port
// and returns it with a client; both stop when the test ends.
func startServer(t testing.TB) (*server.Server, jetstream.JetStream) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return srv, js
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, js jetstream.JetStream, cfg checkpoint.Config) *Store {
	t.Helper()
	s, err := Open(ctxFor(t), js, cfg, site)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	_, js := startServer(t)
	var n atomic.Int64
	checkpointtest.Run(t, func(t *testing.T) checkpointtest.Backend {
		cfg := checkpoint.Config{KVBucket: fmt.Sprintf("conformance-%d", n.Add(1))}
		key, err := cfg.KeyFor(site)
		if err != nil {
			t.Fatal(err)
		}
		return checkpointtest.Backend{
			Open: func(t *testing.T) checkpoint.Store {
				s, err := Open(ctxFor(t), js, cfg, site)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return s
			},
			WriteRaw: func(t *testing.T, data []byte) {
				kv, err := js.CreateKeyValue(ctxFor(t), jetstream.KeyValueConfig{Bucket: cfg.KVBucket})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := kv.Put(ctxFor(t), key, data); err != nil {
					t.Fatal(err)
				}
			},
			Where: fmt.Sprintf("bucket %s, key %s", cfg.KVBucket, key),
		}
	})
}

func TestSecondBridgeDetected(t *testing.T) {
	_, js := startServer(t)
	cfg := checkpoint.Config{}
	a, b := open(t, js, cfg), open(t, js, cfg)
	for _, s := range []*Store{a, b} {
		if _, found, err := s.Load(ctxFor(t)); err != nil || found {
			t.Fatalf("Load: found=%v, err=%v", found, err)
		}
	}
	if err := a.Save(ctxFor(t), checkpointtest.Sample(1)); err != nil {
		t.Fatalf("first bridge Save: %v", err)
	}
	err := b.Save(ctxFor(t), checkpointtest.Sample(2))
	if !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("second bridge Save = %v; want ErrConflict", err)
	}
	if !strings.Contains(err.Error(), "bucket "+checkpoint.DefaultKVBucket+", key chat.example.com/bridge") {
		t.Errorf("conflict error %q does not name bucket and key", err)
	}
	// The first bridge goes on; the second one's attempts keep failing.
	if err := a.Save(ctxFor(t), checkpointtest.Sample(3)); err != nil {
		t.Fatalf("first bridge Save after the conflict: %v", err)
	}
	if err := b.Save(ctxFor(t), checkpointtest.Sample(4)); !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("second bridge Save again = %v; want ErrConflict", err)
	}
	got, _, err := a.Load(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := checkpointtest.Equal(got, checkpointtest.Sample(3)); d != "" {
		t.Fatalf("stored checkpoint is not the first bridge's: %s", d)
	}

	// A bridge started while another runs: it loads a checkpoint, the
	// other moves on, and the newcomer's first Save is refused.
	c := open(t, js, cfg)
	if _, found, err := c.Load(ctxFor(t)); err != nil || !found {
		t.Fatalf("Load: found=%v, err=%v", found, err)
	}
	if err := a.Save(ctxFor(t), checkpointtest.Sample(5)); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctxFor(t), checkpointtest.Sample(6)); !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("Save by a bridge started later = %v; want ErrConflict", err)
	}
}

// TestSaveAfterUnknownOutcome plays a Save whose write reached the server
// but whose acknowledgement was lost: the key is one revision ahead of what
// the store knows, holding the store's own value. That is no conflict.
func TestSaveAfterUnknownOutcome(t *testing.T) {
	_, js := startServer(t)
	cfg := checkpoint.Config{}
	s := open(t, js, cfg)
	if _, _, err := s.Load(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctxFor(t), checkpoint.DefaultKVBucket)
	if err != nil {
		t.Fatal(err)
	}
	lost := func(cp checkpoint.Checkpoint) []byte {
		data, err := checkpoint.Encode(cp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctxFor(t), s.Key(), data); err != nil {
			t.Fatal(err)
		}
		return data
	}

	// The pipeline retries the same checkpoint.
	lost(checkpointtest.Sample(1))
	if err := s.Save(ctxFor(t), checkpointtest.Sample(1)); err != nil {
		t.Fatalf("retried Save of a stored checkpoint: %v", err)
	}
	if err := s.Save(ctxFor(t), checkpointtest.Sample(2)); err != nil {
		t.Fatalf("Save after the retry: %v", err)
	}

	// Or it moves on to the next checkpoint: the store remembers what it
	// failed to confirm.
	s.unconfirmed = lost(checkpointtest.Sample(3))
	if err := s.Save(ctxFor(t), checkpointtest.Sample(4)); err != nil {
		t.Fatalf("Save after an unconfirmed one: %v", err)
	}
	got, _, err := s.Load(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := checkpointtest.Equal(got, checkpointtest.Sample(4)); d != "" {
		t.Fatal(d)
	}

	// Anything else stored there is someone else's.
	lost(checkpointtest.Sample(5))
	if err := s.Save(ctxFor(t), checkpointtest.Sample(6)); !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("Save over a foreign value = %v; want ErrConflict", err)
	}
}

func TestDeletedKey(t *testing.T) {
	_, js := startServer(t)
	cfg := checkpoint.Config{}
	s := open(t, js, cfg)
	if err := s.Save(ctxFor(t), checkpointtest.Sample(1)); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctxFor(t), checkpoint.DefaultKVBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctxFor(t), s.Key()); err != nil {
		t.Fatal(err)
	}
	// Deleted behind the running store's back: someone else acted.
	if err := s.Save(ctxFor(t), checkpointtest.Sample(2)); !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("Save after the key was deleted = %v; want ErrConflict", err)
	}
	// Deleted on purpose before a start: a fresh start.
	fresh := open(t, js, cfg)
	if _, found, err := fresh.Load(ctxFor(t)); err != nil || found {
		t.Fatalf("Load of a deleted key: found=%v, err=%v; want not found", found, err)
	}
	if err := fresh.Save(ctxFor(t), checkpointtest.Sample(3)); err != nil {
		t.Fatalf("Save over a deleted key: %v", err)
	}
}

func TestOpenBucket(t *testing.T) {
	_, js := startServer(t)

	_, err := Open(ctxFor(t), js, checkpoint.Config{KVBucket: "absent", Create: new(false)}, site)
	if !errors.Is(err, jetstream.ErrBucketNotFound) || !strings.Contains(err.Error(), "absent") || !strings.Contains(err.Error(), "BRIDGE_CHECKPOINT_CREATE") {
		t.Errorf("Open without Create = %v; want ErrBucketNotFound naming the bucket and BRIDGE_CHECKPOINT_CREATE", err)
	}

	open(t, js, checkpoint.Config{KVBucket: "created"})
	kv, err := js.KeyValue(ctxFor(t), "created")
	if err != nil {
		t.Fatalf("bucket not created: %v", err)
	}
	status, err := kv.Status(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	info := status.(*jetstream.KeyValueBucketStatus).StreamInfo()
	if status.History() != history || info.Config.Storage != jetstream.FileStorage || info.Config.Replicas != 1 {
		t.Errorf("created bucket: history %d, storage %v, replicas %d; want %d, file, 1", status.History(), info.Config.Storage, info.Config.Replicas, history)
	}

	// An operator's bucket is used as it is, never reconfigured.
	if _, err := js.CreateKeyValue(ctxFor(t), jetstream.KeyValueConfig{Bucket: "operators", History: 2, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	s := open(t, js, checkpoint.Config{KVBucket: "operators"})
	if err := s.Save(ctxFor(t), checkpointtest.Sample(1)); err != nil {
		t.Fatal(err)
	}
	kv, err = js.KeyValue(ctxFor(t), "operators")
	if err != nil {
		t.Fatal(err)
	}
	if status, err = kv.Status(ctxFor(t)); err != nil || status.History() != 2 {
		t.Errorf("operator's bucket: history %d, err %v; want 2, unchanged", status.History(), err)
	}
}

func TestKeyFromConfig(t *testing.T) {
	_, js := startServer(t)
	kv, err := js.CreateKeyValue(ctxFor(t), jetstream.KeyValueConfig{Bucket: checkpoint.DefaultKVBucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cfg  checkpoint.Config
		want string
	}{
		{checkpoint.Config{Name: "kafka-bridge"}, "chat.example.com/kafka-bridge"},
		{checkpoint.Config{Key: "explicit.key"}, "explicit.key"},
	} {
		s := open(t, js, tt.cfg)
		if err := s.Save(ctxFor(t), checkpointtest.Sample(1)); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Get(ctxFor(t), tt.want); err != nil {
			t.Errorf("config %+v: key %q: %v", tt.cfg, tt.want, err)
		}
	}
	if _, err := Open(ctxFor(t), js, checkpoint.Config{}, source.Site{}); err == nil {
		t.Error("Open with a site without host returned no error")
	}
}

func TestServerDown(t *testing.T) {
	srv, js := startServer(t)
	s := open(t, js, checkpoint.Config{})
	if err := s.Save(ctxFor(t), checkpointtest.Sample(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctxFor(t)); err != nil {
		t.Fatalf("Check with the server up: %v", err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := s.Check(ctx); err == nil || !strings.Contains(err.Error(), checkpoint.DefaultKVBucket) {
		t.Errorf("Check with the server down = %v; want an error naming the bucket", err)
	}
	if err := s.Save(ctx, checkpointtest.Sample(2)); err == nil {
		t.Error("Save with the server down returned nil")
	}
}

func BenchmarkSave(b *testing.B) {
	_, js := startServer(b)
	s, err := Open(b.Context(), js, checkpoint.Config{}, site)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cp := checkpointtest.Sample(1)
	b.ReportAllocs()
	for b.Loop() {
		cp.LastEventID++
		if err := s.Save(b.Context(), cp); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLegacyKey: a checkpoint that an older release saved under the key it
// derived from a site spelled with its default port is resumed, and the
// next Save goes to the key of the one site value.
func TestLegacyKey(t *testing.T) {
	_, js := startServer(t)
	kv, err := js.CreateKeyValue(ctxFor(t), jetstream.KeyValueConfig{Bucket: checkpoint.DefaultKVBucket})
	if err != nil {
		t.Fatal(err)
	}
	old := checkpointtest.Sample(1)
	data, err := checkpoint.Encode(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctxFor(t), "chat.example.com_3a443/bridge", data); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctxFor(t), js, checkpoint.Config{}, mustSite("https://Chat.Example.com:443/"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Key() != "chat.example.com/bridge" {
		t.Errorf("Key = %q, want chat.example.com/bridge", s.Key())
	}
	got, found, err := s.Load(ctxFor(t))
	if err != nil || !found || got.QueueID != old.QueueID || got.LastEventID != old.LastEventID {
		t.Fatalf("Load = %+v, %v, %v; want the legacy checkpoint %+v", got, found, err, old)
	}
	next := checkpointtest.Sample(2)
	if err := s.Save(ctxFor(t), next); err != nil {
		t.Fatalf("Save after a legacy Load: %v", err)
	}
	entry, err := kv.Get(ctxFor(t), "chat.example.com/bridge")
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := checkpoint.Decode(entry.Value()); err != nil || cp.LastEventID != next.LastEventID {
		t.Errorf("new key holds %+v, %v; want %+v", cp, err, next)
	}
	// The current key wins over the legacy one from now on.
	again, err := Open(ctxFor(t), js, checkpoint.Config{}, mustSite("chat.example.com:443"))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if got, found, err := again.Load(ctxFor(t)); err != nil || !found || got.LastEventID != next.LastEventID {
		t.Errorf("Load after the move = %+v, %v, %v; want %+v", got, found, err, next)
	}
}

// TestOlderTermRefused: once a checkpoint of a later leadership term is
// stored, a store whose leader's term ended (it loaded before the new
// leader claimed) gets ErrStaleTerm, not a write, and the later term's
// checkpoint stays; a store that never loaded is refused the same way.
func TestOlderTermRefused(t *testing.T) {
	_, js := startServer(t)
	old, next, fresh := open(t, js, checkpoint.Config{}), open(t, js, checkpoint.Config{}), open(t, js, checkpoint.Config{})
	cp := checkpointtest.Sample(1)
	cp.Term = 3
	if err := old.Save(ctxFor(t), cp); err != nil {
		t.Fatalf("term 3 Save: %v", err)
	}
	if _, _, err := next.Load(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	claim := checkpointtest.Sample(1)
	claim.Term = 7
	if err := next.Save(ctxFor(t), claim); err != nil {
		t.Fatalf("term 7 claim: %v", err)
	}
	late := checkpointtest.Sample(2)
	late.Term = 3
	for name, s := range map[string]*Store{"old leader": old, "never loaded": fresh} {
		if err := s.Save(ctxFor(t), late); !errors.Is(err, checkpoint.ErrStaleTerm) {
			t.Errorf("%s: term 3 Save after term 7 = %v; want ErrStaleTerm", name, err)
		}
	}
	got, _, err := next.Load(ctxFor(t))
	if err != nil || got.Term != 7 || got.LastEventID != claim.LastEventID {
		t.Fatalf("stored = term %d, last event %d (err %v); want the term 7 claim", got.Term, got.LastEventID, err)
	}
}
