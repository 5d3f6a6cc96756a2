package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/zulip-bridge/zulip-bridge/mapping"
)

func msg(i int) *mapping.Message {
	return &mapping.Message{
		Subject: fmt.Sprintf("zulip.message.stream.s%d", i%3), Topic: "zulip.message", Key: []byte(fmt.Sprintf("k%d", i%3)),
		Headers:  []mapping.Header{{Key: "Zulip-Dedup-Key", Value: fmt.Sprintf("h/%d", i)}, {Key: "Zulip-Event-Type", Value: "message"}},
		Payload:  []byte(fmt.Sprintf(`{"id":%d,"type":"message"}`, i)),
		DedupKey: fmt.Sprintf("h/%d", i),
		Event:    mapping.EventInfo{ID: int64(i), Type: "message", MessageID: int64(100 + i), Timestamp: 1700000000},
	}
}

func msgs(from, to int) []*mapping.Message {
	var out []*mapping.Message
	for i := from; i <= to; i++ {
		out = append(out, msg(i))
	}
	return out
}

func open(t *testing.T, dir string, opts Options) *Spool {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestEntryRoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	for _, m := range []*mapping.Message{
		msg(1),
		{Subject: "s", Payload: []byte(`{}`), DedupKey: "d"},           // nil key, no headers
		{Subject: "s", Key: []byte{}, Payload: []byte{}, DedupKey: ""}, // empty, not nil, key
		{Subject: "s", Event: mapping.EventInfo{ID: -1, MessageID: -5}},
	} {
		got, gotAt, err := decodeEntry(encodeEntry(at, m))
		if err != nil {
			t.Fatal(err)
		}
		want := *m
		if want.Payload == nil {
			want.Payload = []byte{}
		}
		if want.Headers == nil {
			want.Headers = []mapping.Header{}
		}
		if !reflect.DeepEqual(*got, want) || !gotAt.Equal(at) {
			t.Errorf("round trip:\n got %#v %v\nwant %#v %v", *got, gotAt, want, at)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry(time.Unix(1, 0), msg(1)))
	f.Add([]byte{})
	f.Add(make([]byte, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, at, err := decodeEntry(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// What decodes re-encodes to what decodes the same (not always to
		// the same bytes: a varint may be written longer than needed).
		m2, at2, err := decodeEntry(encodeEntry(at, m))
		if err != nil || !reflect.DeepEqual(m, m2) || !at.Equal(at2) {
			t.Fatalf("re-encoded entry decodes to %#v %v (%v), want %#v %v", m2, at2, err, m, at)
		}
	})
}

func TestAppendReadForward(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, Options{Site: "https://chat.example.com"})
	if pos, _ := s.Position(ctx); string(pos) != `{"spool_seq":0}` {
		t.Fatalf("empty spool position %s", pos)
	}
	if err := s.Publish(ctx, msgs(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, msgs(6, 8)); err != nil {
		t.Fatal(err)
	}
	pos, _ := s.Position(ctx)
	if seq, ok := ParsePosition(pos); !ok || seq != 8 {
		t.Fatalf("position %s", pos)
	}
	es, err := s.Read(ctx, 0, 3, 1<<20)
	if err != nil || len(es) != 3 || es[0].Seq != 1 || es[2].Seq != 3 {
		t.Fatalf("read %v %v", es, err)
	}
	if !reflect.DeepEqual(es[1].Msg, func() *mapping.Message { m := msg(2); return m }()) {
		t.Errorf("entry 2 = %#v", es[1].Msg)
	}
	// maxBytes bounds a read, but never below one entry.
	if es, _ := s.Read(ctx, 3, 100, 1); len(es) != 1 || es[0].Seq != 4 {
		t.Fatalf("read with maxBytes 1: %v", es)
	}
	keys, err := s.PublishedSince(ctx, position(5))
	if err != nil || !reflect.DeepEqual(slices.Sorted(maps.Keys(keys)), []string{"h/6", "h/7", "h/8"}) {
		t.Fatalf("published since 5: %v %v", keys, err)
	}

	// Forwarded but not checkpointed: nothing dropped.
	if err := s.Forward(5, json.RawMessage(`{"stream_seq":42}`)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Pending != 3 || st.Forwarded != 5 || s.stored != 8 {
		t.Fatalf("stats %+v stored %d", st, s.stored)
	}
	// A batch goes once all of it is forwarded and checkpointed: 1..5
	// (the first batch), not 6..8 (only 6 of it forwarded).
	s.Checkpointed(position(3))
	if err := s.Forward(6, json.RawMessage(`{"stream_seq":43}`)); err != nil {
		t.Fatal(err)
	}
	if s.stored != 8 {
		t.Fatalf("stored %d after checkpoint at 3 (inside the first batch) and forward to 6", s.stored)
	}
	s.Checkpointed(position(7))
	if err := s.Forward(6, json.RawMessage(`{"stream_seq":43}`)); err != nil {
		t.Fatal(err)
	}
	if s.stored != 3 { // 1..5 dropped
		t.Fatalf("stored %d after checkpoint at 7 and forward to 6", s.stored)
	}
	// Reopened, it resumes where it was.
	s.Close(ctx)
	s = open(t, dir, Options{Site: "https://chat.example.com"})
	seq, sp := s.Forwarded()
	if seq != 6 || string(sp) != `{"stream_seq":43}` || s.stored != 3 || s.last != 8 {
		t.Fatalf("reopened: forwarded %d %s stored %d last %d", seq, sp, s.stored, s.last)
	}
	es, err = s.Read(ctx, 6, 100, 1<<20)
	if err != nil || len(es) != 2 || es[0].Seq != 7 {
		t.Fatalf("read after reopen %v %v", es, err)
	}
	if st := s.Stats(); st.Oldest.IsZero() || st.Pending != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Everything forwarded and checkpointed: the spool empties, and the
	// sequence goes on.
	s.Checkpointed(position(8))
	if err := s.Forward(8, nil); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Bytes != 0 || st.Pending != 0 || !st.Oldest.IsZero() {
		t.Fatalf("stats when empty %+v", st)
	}
	s.Close(ctx)
	s = open(t, dir, Options{})
	if err := s.Publish(ctx, msgs(9, 9)); err != nil {
		t.Fatal(err)
	}
	if pos, _ := s.Position(ctx); string(pos) != `{"spool_seq":9}` {
		t.Fatalf("position after reopen of an empty spool: %s", pos)
	}
}

func TestReadWaitsAndDropsWhileIdle(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), Options{})
	got := make(chan []Entry)
	go func() {
		es, err := s.Read(ctx, 0, 10, 1<<20)
		if err != nil {
			t.Error(err)
		}
		got <- es
	}()
	if err := s.Publish(ctx, msgs(1, 2)); err != nil {
		t.Fatal(err)
	}
	if es := <-got; len(es) != 2 {
		t.Fatalf("read woke with %d entries", len(es))
	}
	if err := s.Forward(2, nil); err != nil {
		t.Fatal(err)
	}
	// A checkpoint arriving after the forward lets an idle Read drop.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { _, err := s.Read(rctx, 2, 10, 1<<20); done <- err }()
	s.Checkpointed(position(2))
	for s.Stats().Bytes != 0 {
		select {
		case err := <-done:
			t.Fatalf("read returned %v", err)
		default:
		}
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if s.Stats().Bytes != 0 {
			<-ch
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v", err)
	}
}

func TestFullWaitsForRoom(t *testing.T) {
	ctx := context.Background()
	one := int64(len(encodeEntry(time.Time{}, msg(1))))
	s := open(t, t.TempDir(), Options{MaxBytes: 3 * one, Clock: clockwork.NewFakeClock()})
	// One batch always fits an empty spool, even over the limit.
	if err := s.Publish(ctx, msgs(1, 4)); err != nil {
		t.Fatal(err)
	}
	if s.Stats().Full {
		t.Fatal("full before a batch had to wait")
	}
	tctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	err := s.Publish(tctx, msgs(5, 5))
	cancel()
	if !errors.Is(err, ErrFull) {
		t.Fatalf("publish into a full spool: %v", err)
	}
	if !s.Stats().Full {
		t.Fatal("not full after a batch had to wait")
	}
	done := make(chan error)
	go func() { done <- s.Publish(ctx, msgs(5, 5)) }()
	s.Checkpointed(position(4))
	if err := s.Forward(4, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("publish after room was made: %v", err)
	}
	if s.Stats().Full {
		t.Fatal("still full after a batch fitted")
	}
	if es, err := s.Read(ctx, 4, 10, 1<<20); err != nil || len(es) != 1 || es[0].Msg.DedupKey != "h/5" {
		t.Fatalf("read %v %v", es, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{Site: "https://a.example.com"})
	if _, err := Open(dir, Options{Site: "https://a.example.com"}); !errors.Is(err, ErrLocked) {
		t.Errorf("second open: %v", err)
	}
	s.Close(context.Background())
	if _, err := Open(dir, Options{Site: "https://b.example.com"}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("open for another site: %v", err)
	}
}

func TestForeignPositionMeansEverything(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), Options{})
	if err := s.Publish(ctx, msgs(1, 2)); err != nil {
		t.Fatal(err)
	}
	for _, pos := range []json.RawMessage{nil, json.RawMessage(`{"stream_seq":7}`)} {
		keys, err := s.PublishedSince(ctx, pos)
		if err != nil || len(keys) != 2 {
			t.Errorf("PublishedSince(%s) = %v, %v", pos, keys, err)
		}
	}
}

// TestLimitFitsTheFilesystem: a limit beyond half the filesystem holding
// the spool is lowered to that half, and says so.
func TestLimitFitsTheFilesystem(t *testing.T) {
	dir := t.TempDir()
	fs := filesystemBytes(dir)
	if fs == 0 {
		t.Skip("the filesystem's size cannot be read on this platform")
	}
	s := open(t, dir, Options{MaxBytes: 1 << 62})
	if !s.Lowered() || s.Stats().Limit != fs/2 {
		t.Errorf("limit %d (lowered %v) on a filesystem of %d bytes, want %d", s.Stats().Limit, s.Lowered(), fs, fs/2)
	}
	s.Close(context.Background())
	s = open(t, dir, Options{MaxBytes: MinMaxBytes})
	if s.Lowered() || s.Stats().Limit != MinMaxBytes {
		t.Errorf("limit %d (lowered %v), want %d as configured", s.Stats().Limit, s.Lowered(), MinMaxBytes)
	}
}
