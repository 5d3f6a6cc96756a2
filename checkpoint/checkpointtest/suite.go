package checkpointtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
)

// Backend is one store implementation with fresh, empty storage.
type Backend struct {
	// Open returns a Store on the backend's storage. The suite closes every
	// store it opens, and opens a second one only after closing the first,
	// so a store that locks its storage (the file store) can be tested.
	Open func(t *testing.T) checkpoint.Store
	// WriteRaw stores data as the checkpoint, bypassing Store.Save, the way
	// a bug, a disk error or an operator could.
	WriteRaw func(t *testing.T, data []byte)
	// Where is text that an error about the stored data must contain so
	// that an operator can find it: the file path, or bucket and key.
	Where string
}

// Run runs every conformance test, calling newBackend once per subtest.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newBackend(t)) })
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newBackend(t)) })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, newBackend(t)) })
	t.Run("SaveAfterReopen", func(t *testing.T) { testSaveAfterReopen(t, newBackend(t)) })
	t.Run("Corrupt", func(t *testing.T) { testCorrupt(t, newBackend) })
	t.Run("InvalidSave", func(t *testing.T) { testInvalidSave(t, newBackend(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceledContext(t, newBackend(t)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, newBackend(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newBackend(t)) })
}

// Sample returns a distinct, valid checkpoint for each i, with every field
// set and UpdatedAt in a non-UTC zone, so a round trip that drops or
// mangles any field is caught.
func Sample(i int) checkpoint.Checkpoint {
	zone := time.FixedZone("UTC+2", 2*60*60)
	return checkpoint.Checkpoint{
		Site:         "https://chat.example.com",
		QueueID:      fmt.Sprintf("1700000000:%d", 100+i),
		LastEventID:  int64(10 * i),
		MaxMessageID: int64(5000 + 7*i),
		SinkPosition: json.RawMessage(fmt.Sprintf(`{"partitions":{"zulip.message":[%d,%d]}}`, i, 2*i)),
		UpdatedAt:    time.Date(2026, 3, 1, 12, 0, i, 123456789, zone),
	}
}

// Equal reports how got differs from want, or "" when Load returned what
// Save was given (Version aside, which Save sets).
func Equal(got, want checkpoint.Checkpoint) string {
	var diffs []string
	if got.Version != checkpoint.FormatVersion {
		diffs = append(diffs, fmt.Sprintf("version %d, want %d", got.Version, checkpoint.FormatVersion))
	}
	if got.Site != want.Site {
		diffs = append(diffs, fmt.Sprintf("site %q, want %q", got.Site, want.Site))
	}
	if got.QueueID != want.QueueID {
		diffs = append(diffs, fmt.Sprintf("queue_id %q, want %q", got.QueueID, want.QueueID))
	}
	if got.LastEventID != want.LastEventID {
		diffs = append(diffs, fmt.Sprintf("last_event_id %d, want %d", got.LastEventID, want.LastEventID))
	}
	if got.MaxMessageID != want.MaxMessageID {
		diffs = append(diffs, fmt.Sprintf("max_message_id %d, want %d", got.MaxMessageID, want.MaxMessageID))
	}
	if !bytes.Equal(got.SinkPosition, want.SinkPosition) {
		diffs = append(diffs, fmt.Sprintf("sink_position %s, want %s", got.SinkPosition, want.SinkPosition))
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		diffs = append(diffs, fmt.Sprintf("updated_at %v, want %v", got.UpdatedAt, want.UpdatedAt))
	}
	return strings.Join(diffs, "; ")
}

const opTimeout = 10 * time.Second

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

// open returns a store that is closed when the test ends unless the test
// closed it already (Close must be idempotent).
func open(t *testing.T, b Backend) checkpoint.Store {
	t.Helper()
	s := b.Open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustSave(t *testing.T, s checkpoint.Store, cp checkpoint.Checkpoint) {
	t.Helper()
	if err := s.Save(ctxFor(t), cp); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func mustLoad(t *testing.T, s checkpoint.Store, want checkpoint.Checkpoint) {
	t.Helper()
	got, found, err := s.Load(ctxFor(t))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !found {
		t.Fatal("Load: not found after Save")
	}
	if d := Equal(got, want); d != "" {
		t.Fatalf("Load: %s", d)
	}
}

func mustClose(t *testing.T, s checkpoint.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func testNotFound(t *testing.T, b Backend) {
	s := open(t, b)
	cp, found, err := s.Load(ctxFor(t))
	if err != nil || found {
		t.Fatalf("Load on empty storage = %+v, found=%v, err=%v; want not found, nil error", cp, found, err)
	}
	if err := s.Check(ctxFor(t)); err != nil {
		t.Fatalf("Check on empty storage: %v", err)
	}
	// Loading must not create anything that a later Load would take for a
	// checkpoint.
	if _, found, err := s.Load(ctxFor(t)); err != nil || found {
		t.Fatalf("second Load = found=%v, err=%v; want not found", found, err)
	}
}

func testRoundTrip(t *testing.T, b Backend) {
	s := open(t, b)
	want := Sample(1)
	mustSave(t, s, want)
	mustLoad(t, s, want)
	if err := s.Check(ctxFor(t)); err != nil {
		t.Fatalf("Check: %v", err)
	}

	noPos := Sample(2)
	noPos.SinkPosition = nil
	noPos.QueueID, noPos.LastEventID = "", -1
	mustSave(t, s, noPos)
	mustLoad(t, s, noPos)

	mustSave(t, s, want)
	mustClose(t, s)
	mustLoad(t, open(t, b), want)
}

func testOverwrite(t *testing.T, b Backend) {
	s := open(t, b)
	const n = 25
	for i := range n {
		mustSave(t, s, Sample(i))
	}
	mustLoad(t, s, Sample(n-1))
	mustClose(t, s)
	mustLoad(t, open(t, b), Sample(n-1))
}

func testSaveAfterReopen(t *testing.T, b Backend) {
	s := open(t, b)
	mustSave(t, s, Sample(1))
	mustClose(t, s)

	// A new store saves without loading first ...
	s = open(t, b)
	mustSave(t, s, Sample(2))
	mustLoad(t, s, Sample(2))
	mustClose(t, s)

	// ... or after loading, the bridge's usual order.
	s = open(t, b)
	mustLoad(t, s, Sample(2))
	mustSave(t, s, Sample(3))
	mustSave(t, s, Sample(4))
	mustClose(t, s)
	mustLoad(t, open(t, b), Sample(4))
}

func testCorrupt(t *testing.T, newBackend func(t *testing.T) Backend) {
	valid, err := checkpoint.Encode(Sample(1))
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	withField := func(key string, value any) []byte {
		var m map[string]any
		if err := json.Unmarshal(valid, &m); err != nil {
			t.Fatal(err)
		}
		if value == nil {
			delete(m, key)
		} else {
			m[key] = value
		}
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", []byte{}, checkpoint.ErrCorrupt},
		{"whitespace", []byte(" \n"), checkpoint.ErrCorrupt},
		{"garbage", []byte("\x00\x01not json at all"), checkpoint.ErrCorrupt},
		{"truncated", valid[:len(valid)/2], checkpoint.ErrCorrupt},
		{"trailing garbage", append(append([]byte{}, valid...), "}{"...), checkpoint.ErrCorrupt},
		{"null", []byte("null"), checkpoint.ErrCorrupt},
		{"array", []byte(`[1,2,3]`), checkpoint.ErrCorrupt},
		{"no version", withField("version", nil), checkpoint.ErrCorrupt},
		{"version zero", withField("version", 0), checkpoint.ErrCorrupt},
		{"version from the future", withField("version", checkpoint.FormatVersion+1), checkpoint.ErrUnsupportedVersion},
		{"version as string", withField("version", "1"), checkpoint.ErrCorrupt},
		{"no site", withField("site", nil), checkpoint.ErrCorrupt},
		{"event id below -1", withField("last_event_id", -7), checkpoint.ErrCorrupt},
		{"event id as string", withField("last_event_id", "12"), checkpoint.ErrCorrupt},
		{"event id without queue", withField("queue_id", ""), checkpoint.ErrCorrupt},
		{"bad time", withField("updated_at", "yesterday"), checkpoint.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t)
			b.WriteRaw(t, tt.data)
			s := open(t, b)
			cp, found, err := s.Load(ctxFor(t))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Load = %+v, found=%v, err=%v; want an error wrapping %v", cp, found, err, tt.want)
			}
			if found {
				t.Errorf("Load reported found=true with error %v", err)
			}
			if !strings.Contains(err.Error(), b.Where) {
				t.Errorf("Load error %q does not name %q", err, b.Where)
			}
			// Asking again must not have "repaired" anything.
			if _, _, err := s.Load(ctxFor(t)); !errors.Is(err, tt.want) {
				t.Errorf("second Load: err=%v; want %v again", err, tt.want)
			}
		})
	}
}

func testInvalidSave(t *testing.T, b Backend) {
	s := open(t, b)
	mustSave(t, s, Sample(1))
	bad := []checkpoint.Checkpoint{
		func() checkpoint.Checkpoint { c := Sample(2); c.Site = ""; return c }(),
		func() checkpoint.Checkpoint { c := Sample(2); c.LastEventID = -2; return c }(),
		func() checkpoint.Checkpoint { c := Sample(2); c.SinkPosition = json.RawMessage(`{"a":`); return c }(),
	}
	for _, cp := range bad {
		if err := s.Save(ctxFor(t), cp); !errors.Is(err, checkpoint.ErrInvalid) {
			t.Errorf("Save(%+v) = %v; want an error wrapping ErrInvalid", cp, err)
		}
	}
	mustLoad(t, s, Sample(1))
}

func testCanceledContext(t *testing.T, b Backend) {
	s := open(t, b)
	mustSave(t, s, Sample(1))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Save(ctx, Sample(2)); err == nil {
		t.Fatal("Save with a canceled context returned nil")
	}
	// Either checkpoint may be stored (the write may have happened before
	// the cancellation was seen), but it must be one of them, whole.
	got, found, err := s.Load(ctxFor(t))
	if err != nil || !found {
		t.Fatalf("Load after canceled Save: found=%v, err=%v", found, err)
	}
	if Equal(got, Sample(1)) != "" && Equal(got, Sample(2)) != "" {
		t.Fatalf("Load after canceled Save = %+v; want Sample(1) or Sample(2)", got)
	}
	// The store stays usable.
	mustSave(t, s, Sample(3))
	mustLoad(t, s, Sample(3))
}

func testClosed(t *testing.T, b Backend) {
	s := open(t, b)
	mustSave(t, s, Sample(1))
	mustClose(t, s)
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := s.Load(ctxFor(t)); !errors.Is(err, checkpoint.ErrClosed) {
		t.Errorf("Load after Close: %v; want ErrClosed", err)
	}
	if err := s.Save(ctxFor(t), Sample(2)); !errors.Is(err, checkpoint.ErrClosed) {
		t.Errorf("Save after Close: %v; want ErrClosed", err)
	}
	if err := s.Check(ctxFor(t)); !errors.Is(err, checkpoint.ErrClosed) {
		t.Errorf("Check after Close: %v; want ErrClosed", err)
	}
	mustLoad(t, open(t, b), Sample(1))
}

// testConcurrent saves from one goroutine, as the pipeline does, while
// others probe readiness and load; run with -race it also checks locking.
func testConcurrent(t *testing.T, b Backend) {
	s := open(t, b)
	mustSave(t, s, Sample(0))
	ctx := ctxFor(t)
	const saves = 40
	done := make(chan struct{})
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	// probe calls f until done is closed or f fails.
	probe := func(f func() error) {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := f(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	probe(func() error {
		if err := s.Check(ctx); err != nil {
			return fmt.Errorf("Check: %w", err)
		}
		return nil
	})
	probe(func() error {
		if _, found, err := s.Load(ctx); err != nil || !found {
			return fmt.Errorf("Load during saves: found=%v, err=%w", found, err)
		}
		return nil
	})
	for i := 1; i <= saves; i++ {
		if err := s.Save(ctx, Sample(i)); err != nil {
			errs <- fmt.Errorf("Save %d: %w", i, err)
			break
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mustLoad(t, s, Sample(saves))
}
