package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
// file it touched, and fails (without doing it) the step named failAt.
func recordOps(steps *[]string, failAt string) fileOps {
	step := func(name, file string) error {
		*steps = append(*steps, name+" "+file)
		if name == failAt {
			return errCrash
		}
		return nil
	}
	return fileOps{
		write: func(f *os.File, b []byte) error {
			if err := step("write", filepath.Base(f.Name())); err != nil {
				return err
			}
			return osFileOps.write(f, b)
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

// TestFileSaveOrder pins the sequence that makes Save crash safe: the data
// reaches the disk in the temporary file before the rename publishes it,
// and the directory is synced after the rename so the rename itself
// survives power loss.
func TestFileSaveOrder(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var steps []string
	s.ops = recordOps(&steps, "")
	if err := s.Save(t.Context(), sample(1)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"write " + tempFileName,
		"syncFile " + tempFileName,
		"rename " + tempFileName + "->" + FileName,
		"syncDir " + dir,
	}
	if !slices.Equal(steps, want) {
		t.Errorf("Save steps =\n%q\nwant\n%q", steps, want)
	}
}

// TestFileSaveFailsAtEachStep fails each step of Save in turn. Save must
// return the error (so the batch is not acknowledged), the store must hold
// a whole checkpoint, and only once the rename happened may that be the
// new one. The next Save must work.
func TestFileSaveFailsAtEachStep(t *testing.T) {
	tests := []struct {
		failAt  string
		wantNew bool // the rename happened before the failure
	}{
		{"write", false},
		{"syncFile", false},
		{"rename", false},
		{"syncDir", true},
	}
	for _, tt := range tests {
		t.Run(tt.failAt, func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Save(t.Context(), sample(1)); err != nil {
				t.Fatal(err)
			}
			var steps []string
			s.ops = recordOps(&steps, tt.failAt)
			if err := s.Save(t.Context(), sample(2)); !errors.Is(err, errCrash) {
				t.Fatalf("Save with %s failing = %v; want the injected error", tt.failAt, err)
			}
			if _, err := os.Stat(filepath.Join(dir, tempFileName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary file left after a failed Save (stat: %v)", err)
			}
			want := sample(1)
			if tt.wantNew {
				want = sample(2)
			}
			got, found, err := s.Load(t.Context())
			if err != nil || !found || got.LastEventID != want.LastEventID {
				t.Fatalf("Load after failed Save = %+v, found=%v, err=%v; want last_event_id %d", got, found, err, want.LastEventID)
			}
			s.ops = osFileOps
			if err := s.Save(t.Context(), sample(3)); err != nil {
				t.Fatalf("Save after a failed one: %v", err)
			}
		})
	}
}

func TestFileStoreErrorsNamePath(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var steps []string
	s.ops = recordOps(&steps, "syncFile")
	err = s.Save(t.Context(), sample(1))
	if want := fmt.Sprintf("save checkpoint %s: sync temporary file: %v", filepath.Join(dir, FileName), errCrash); err == nil || err.Error() != want {
		t.Errorf("Save error = %v; want %q", err, want)
	}
}
