package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func sample(i int) Checkpoint {
	return Checkpoint{
		Site:         "https://chat.example.com",
		QueueID:      "1700000000:1",
		LastEventID:  int64(i),
		MaxMessageID: int64(1000 + i),
		UpdatedAt:    time.Date(2026, 3, 1, 0, 0, i, 0, time.UTC),
	}
}

var errCrash = errors.New("injected crash")

// recordOps wraps the real file operations: it records each step with the
// file it touched (and a write's offset), and fails the step named failAt
// without doing it, except a write, which it tears: its first 100 bytes
// are written.
func recordOps(steps *[]string, failAt string) fileOps {
	step := func(name, file string) error {
		*steps = append(*steps, name+" "+file)
		if name == failAt {
			return errCrash
		}
		return nil
	}
	return fileOps{
		write: func(f *os.File, b []byte, off int64) error {
			if err := step("write", fmt.Sprintf("%s@%d", filepath.Base(f.Name()), off)); err != nil {
				_ = osFileOps.write(f, b[:min(100, len(b))], off)
				return err
			}
			return osFileOps.write(f, b, off)
		},
		syncFile: func(f *os.File) error {
			if err := step("syncFile", filepath.Base(f.Name())); err != nil {
				return err
			}
			return osFileOps.syncFile(f)
		},
		rename: func(oldpath, newpath string) error {
			if err := step("rename", filepath.Base(oldpath)+"->"+filepath.Base(newpath)); err != nil {
				return err
			}
			return osFileOps.rename(oldpath, newpath)
		},
		syncDir: func(d *os.File) error {
			if err := step("syncDir", d.Name()); err != nil {
				return err
			}
			return osFileOps.syncDir(d)
		},
	}
}

func openStore(t *testing.T, dir string) *FileStore {
	t.Helper()
	s, err := OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustLoadID(t *testing.T, s *FileStore, want int64) {
	t.Helper()
	got, found, err := s.Load(t.Context())
	if err != nil || !found || got.LastEventID != want {
		t.Fatalf("Load = %+v, found=%v, err=%v; want last_event_id %d", got, found, err, want)
	}
}

// TestFileSaveOrder pins the sequences that make Save crash safe. The
// first Save creates the file: the data reaches the disk in a temporary
// file before the rename publishes it, and the directory is synced after
// the rename so that the rename survives power loss. Every later Save
// writes the slot not in force, in turn, and syncs the file.
func TestFileSaveOrder(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	var steps []string
	s.ops = recordOps(&steps, "")
	for i := 1; i <= 4; i++ {
		if err := s.Save(t.Context(), sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"write " + tempFileName + "@0",
		"syncFile " + tempFileName,
		"rename " + tempFileName + "->" + FileName,
		"syncDir " + dir,
		"write " + FileName + "@4096", "syncFile " + FileName,
		"write " + FileName + "@0", "syncFile " + FileName,
		"write " + FileName + "@4096", "syncFile " + FileName,
	}
	if !slices.Equal(steps, want) {
		t.Errorf("Save steps =\n%q\nwant\n%q", steps, want)
	}
	mustLoadID(t, s, 4)
	// A new store goes on with the slot not in force.
	s.Close()
	s = openStore(t, dir)
	steps = nil
	s.ops = recordOps(&steps, "")
	if err := s.Save(t.Context(), sample(5)); err != nil {
		t.Fatal(err)
	}
	if want := []string{"write " + FileName + "@0", "syncFile " + FileName}; !slices.Equal(steps, want) {
		t.Errorf("Save steps after reopening = %q; want %q", steps, want)
	}
	mustLoadID(t, s, 5)
}

// TestFileSaveFailsAtEachStep fails each step of both kinds of Save in
// turn (a failed write tears the slot: half of it is written). Save must
// return the error (so the batch is not acknowledged), the store must hold
// a whole checkpoint, the previous one unless the new one was published
// (renamed, or written and only its sync failed), and so must a store
// opened afresh, as after a crash. The next Save must work, creating a new
// file after an in-place write failed.
func TestFileSaveFailsAtEachStep(t *testing.T) {
	tests := []struct {
		name    string
		saves   int // before the failing one: 0 creates the file, 1 writes in place
		failAt  string
		wantNew bool
	}{
		{"create/write", 0, "write", false},
		{"create/syncFile", 0, "syncFile", false},
		{"create/rename", 0, "rename", false},
		{"create/syncDir", 0, "syncDir", true},
		{"in place/write", 1, "write", false},
		{"in place/syncFile", 1, "syncFile", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// A file of the layout of earlier releases: the next Save
			// creates the slotted file.
			legacy, err := Encode(sample(1))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, FileName), append(legacy, '\n'), 0o640); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, dir)
			for i := range tt.saves {
				if err := s.Save(t.Context(), sample(2+i)); err != nil {
					t.Fatal(err)
				}
			}
			prev := int64(1 + tt.saves)
			var steps []string
			s.ops = recordOps(&steps, tt.failAt)
			if err := s.Save(t.Context(), sample(10)); !errors.Is(err, errCrash) {
				t.Fatalf("Save with %s failing = %v (steps %q); want the injected error", tt.failAt, err, steps)
			}
			if _, err := os.Stat(filepath.Join(dir, tempFileName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary file left after a failed Save (stat: %v)", err)
			}
			want := prev
			if tt.wantNew {
				want = 10
			}
			mustLoadID(t, s, want)
			s.Close()
			s = openStore(t, dir)
			mustLoadID(t, s, want)
			steps = nil
			s.ops = recordOps(&steps, "")
			if err := s.Save(t.Context(), sample(11)); err != nil {
				t.Fatalf("Save after a failed one: %v", err)
			}
			mustLoadID(t, s, 11)
		})
	}
}

// TestFileSlotTornAtEveryByte plays a crash at every point of an in-place
// write: the slot being written holds the new line up to that byte and the
// old one after it. The checkpoint in force before the write is what loads,
// until the whole slot is written.
func TestFileSlotTornAtEveryByte(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	for i := 1; i <= 2; i++ { // seq 1 in slot 0, seq 2 in slot 1
		if err := s.Save(t.Context(), sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	path := filepath.Join(dir, FileName)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	size := len(before) / 2
	data, err := Encode(sample(3))
	if err != nil {
		t.Fatal(err)
	}
	next := pad(appendSlot(nil, 3, data), 0, size) // what seq 3 writes over slot 0
	for n := 0; n <= size; n++ {
		torn := slices.Clone(before)
		copy(torn, next[:n])
		cp, err := DecodeFile(torn)
		want := int64(2)
		if n == size || bytes.Equal(torn[:size], next) {
			want = 3
		}
		if err != nil || cp.LastEventID != want {
			t.Fatalf("slot 0 written up to byte %d of %d: DecodeFile = %+v, %v; want last_event_id %d", n, size, cp, err, want)
		}
	}
}

// TestFileSlotsGrow: a checkpoint larger than a slot (a sink position of
// many partitions) makes the next Save create a file of larger slots; the
// smaller checkpoints after it are written in place again.
func TestFileSlotsGrow(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	big := sample(2)
	offsets := make([]int, 2000)
	for i := range offsets {
		offsets[i] = 1_000_000 + i
	}
	pos, err := json.Marshal(map[string]any{"partitions": map[string][]int{"zulip.message": offsets}})
	if err != nil {
		t.Fatal(err)
	}
	big.SinkPosition = pos
	var steps []string
	s.ops = recordOps(&steps, "")
	for i, cp := range []Checkpoint{sample(1), big, sample(3), sample(4)} {
		if err := s.Save(t.Context(), cp); err != nil {
			t.Fatalf("Save %d: %v", i, err)
		}
		got, found, err := s.Load(t.Context())
		if err != nil || !found || got.LastEventID != cp.LastEventID || !bytes.Equal(got.SinkPosition, cp.SinkPosition) {
			t.Fatalf("Load after Save %d = %+v, %v, %v", i, got, found, err)
		}
	}
	info, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size()%(2*slotAlign) != 0 || info.Size() < 2*int64(len(pos)) {
		t.Errorf("file of %d bytes; want two slots of a multiple of %d bytes, each larger than the %d-byte position", info.Size(), slotAlign, len(pos))
	}
	if renames := strings.Count(strings.Join(steps, "\n"), "rename "); renames != 2 {
		t.Errorf("%d renames in %q; want 2 (create, grow)", renames, steps)
	}
}

// TestFileReplacedWhileOpen: a checkpoint file replaced behind the store's
// back (renamed over it while the bridge runs) is replaced by the next
// Save, never left in force while the store writes the unlinked file.
func TestFileReplacedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	for i := 1; i <= 2; i++ {
		if err := s.Save(t.Context(), sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	other, err := Encode(sample(7))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "edited")
	if err := os.WriteFile(tmp, other, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(t.Context(), sample(3)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	mustLoadID(t, openStore(t, dir), 3)
}

func TestFileStoreErrorsNamePath(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	var steps []string
	s.ops = recordOps(&steps, "syncFile")
	err := s.Save(t.Context(), sample(1))
	if want := fmt.Sprintf("save checkpoint %s: sync temporary file: %v", filepath.Join(dir, FileName), errCrash); err == nil || err.Error() != want {
		t.Errorf("Save error = %v; want %q", err, want)
	}
	s.ops = osFileOps
	if err := s.Save(t.Context(), sample(2)); err != nil {
		t.Fatal(err)
	}
	s.ops = recordOps(&steps, "syncFile")
	err = s.Save(t.Context(), sample(3))
	if want := fmt.Sprintf("save checkpoint %s: sync: %v", filepath.Join(dir, FileName), errCrash); err == nil || err.Error() != want {
		t.Errorf("in-place Save error = %v; want %q", err, want)
	}
}
