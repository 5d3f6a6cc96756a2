package checkpoint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/checkpoint/checkpointtest"
)

func fileBackend(t *testing.T) checkpointtest.Backend {
	dir := filepath.Join(t.TempDir(), "state")
	return checkpointtest.Backend{
		Open: func(t *testing.T) checkpoint.Store {
			s, err := checkpoint.OpenFile(dir)
			if err != nil {
				t.Fatalf("OpenFile: %v", err)
			}
			return s
		},
		WriteRaw: func(t *testing.T, data []byte) {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, checkpoint.FileName), data, 0o640); err != nil {
				t.Fatal(err)
			}
		},
		Where: filepath.Join(dir, checkpoint.FileName),
	}
}

func TestFileStoreConformance(t *testing.T) {
	checkpointtest.Run(t, fileBackend)
}

func openFile(t *testing.T, dir string) *checkpoint.FileStore {
	t.Helper()
	s, err := checkpoint.OpenFile(dir)
	if err != nil {
		t.Fatalf("OpenFile(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFileStoreLocksDirectory(t *testing.T) {
	dir := t.TempDir()
	first := openFile(t, dir)

	_, err := checkpoint.OpenFile(dir)
	if !errors.Is(err, checkpoint.ErrLocked) {
		t.Fatalf("second OpenFile: %v; want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory %s", err, dir)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := openFile(t, dir)
	if err := second.Save(t.Context(), checkpointtest.Sample(1)); err != nil {
		t.Fatalf("Save after the first store closed: %v", err)
	}
}

// TestFileStoreIgnoresLeftoverTemp plays a crash in the middle of a Save:
// the temporary file is there, half written or even whole, but the rename
// never happened, so the batch was never acknowledged and the checkpoint
// that counts is the previous one.
func TestFileStoreIgnoresLeftoverTemp(t *testing.T) {
	next, err := checkpoint.Encode(checkpointtest.Sample(2))
	if err != nil {
		t.Fatal(err)
	}
	for name, temp := range map[string][]byte{
		"partial": next[:len(next)/3],
		"whole":   next,
		"empty":   {},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openFile(t, dir)
			if err := s.Save(t.Context(), checkpointtest.Sample(1)); err != nil {
				t.Fatal(err)
			}
			s.Close()
			tempPath := filepath.Join(dir, checkpoint.FileName+".tmp")
			if err := os.WriteFile(tempPath, temp, 0o640); err != nil {
				t.Fatal(err)
			}

			s = openFile(t, dir)
			if _, err := os.Stat(tempPath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("leftover temporary file still there after OpenFile (stat: %v)", err)
			}
			got, found, err := s.Load(t.Context())
			if err != nil || !found {
				t.Fatalf("Load: found=%v, err=%v", found, err)
			}
			if d := checkpointtest.Equal(got, checkpointtest.Sample(1)); d != "" {
				t.Fatalf("Load after crash mid-Save: %s", d)
			}
			if err := s.Save(t.Context(), checkpointtest.Sample(3)); err != nil {
				t.Fatalf("Save after recovery: %v", err)
			}
		})
	}
}

// TestFileStoreReadersNeverSeeTornFile reads the checkpoint file directly,
// as a crash could find it at any instant, while saves write its slots in
// place: every read must hold a whole checkpoint, never an older one than
// the read before it.
func TestFileStoreReadersNeverSeeTornFile(t *testing.T) {
	dir := t.TempDir()
	s := openFile(t, dir)
	if err := s.Save(t.Context(), checkpointtest.Sample(0)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		reads := 0
		last := int64(-1)
		for {
			select {
			case <-done:
				if reads == 0 {
					result <- errors.New("reader never ran")
					return
				}
				result <- nil
				return
			default:
			}
			data, err := os.ReadFile(s.Path())
			if err != nil {
				result <- err
				return
			}
			cp, err := checkpoint.DecodeFile(data)
			if err != nil {
				result <- err
				return
			}
			if cp.LastEventID < last {
				result <- fmt.Errorf("read last_event_id %d after %d", cp.LastEventID, last)
				return
			}
			last = cp.LastEventID
			reads++
		}
	}()
	for i := 1; i <= 100; i++ {
		if err := s.Save(t.Context(), checkpointtest.Sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-result; err != nil {
		t.Fatalf("reader: %v", err)
	}
}

func TestFileStoreUnreadable(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be: the read fails, and that is
	// an error naming the path, never "not found".
	if err := os.Mkdir(filepath.Join(dir, checkpoint.FileName), 0o750); err != nil {
		t.Fatal(err)
	}
	s := openFile(t, dir)
	_, found, err := s.Load(t.Context())
	if err == nil || found {
		t.Fatalf("Load = found=%v, err=%v; want an error", found, err)
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, checkpoint.FileName)) {
		t.Errorf("error %q does not name the file", err)
	}
	if err := s.Save(t.Context(), checkpointtest.Sample(1)); err == nil {
		t.Error("Save over a directory returned nil")
	}
}

func TestFileStoreCheckFailsWhenDirectoryGone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := openFile(t, dir)
	if err := s.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err := s.Check(t.Context())
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Check after the directory was removed = %v; want an error naming %s", err, dir)
	}
	if err := s.Save(t.Context(), checkpointtest.Sample(1)); err == nil {
		t.Fatal("Save into a removed directory returned nil")
	}
}

// TestFileStoreFileIsReadable: the checkpoint file is JSON lines that any
// JSON tool reads, the checkpoint in force under the highest seq, and
// DecodeFile reads it.
func TestFileStoreFileIsReadable(t *testing.T) {
	dir := t.TempDir()
	s := openFile(t, dir)
	for i := 1; i <= 3; i++ {
		if err := s.Save(t.Context(), checkpointtest.Sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, checkpoint.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(data), "\n"); lines != 2 || !strings.HasSuffix(string(data), "\n") {
		t.Errorf("checkpoint file has %d lines; want 2", lines)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var seqs []uint64
	for {
		var slot struct {
			Seq        uint64                `json:"seq"`
			Checkpoint checkpoint.Checkpoint `json:"checkpoint"`
		}
		if err := dec.Decode(&slot); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("checkpoint file is not JSON values: %v", err)
		}
		seqs = append(seqs, slot.Seq)
		if slot.Seq == 3 && slot.Checkpoint.QueueID != "1700000000:103" {
			t.Errorf("slot of seq 3 holds %+v", slot.Checkpoint)
		}
	}
	if !slices.Equal(seqs, []uint64{3, 2}) {
		t.Errorf("slots hold seqs %v; want [3 2]", seqs)
	}
	cp, err := checkpoint.DecodeFile(data)
	if err != nil || cp.QueueID != "1700000000:103" {
		t.Errorf("DecodeFile = %+v, %v", cp, err)
	}
}

func BenchmarkFileStoreSave(b *testing.B) {
	s, err := checkpoint.OpenFile(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	cp := checkpointtest.Sample(1)
	b.ReportAllocs()
	for b.Loop() {
		cp.LastEventID++
		if err := s.Save(ctx, cp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileSyncBaseline is the least a durable write of the same bytes
// can cost on this disk: overwrite one open file and sync it, which is
// what Save does after the first (it writes a whole slot, 4 KiB).
func BenchmarkFileSyncBaseline(b *testing.B) {
	data, err := checkpoint.Encode(checkpointtest.Sample(1))
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(b.TempDir(), "baseline"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for b.Loop() {
		if _, err := f.WriteAt(data, 0); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	cp := checkpointtest.Sample(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := checkpoint.Encode(cp); err != nil {
			b.Fatal(err)
		}
	}
}
