package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// Names of the file store's files in the state directory.
const (
	// FileName is the checkpoint itself, readable JSON.
	FileName = "checkpoint.json"
	// LockFileName is locked (flock) while a FileStore is open, so that two
	// bridges cannot share a state directory. It is never removed: removing
	// a lock file while another process waits on it would break the lock.
	LockFileName = "checkpoint.lock"

	tempFileName  = FileName + ".tmp"
	probeFileName = "checkpoint.probe"
)

// FileStore keeps the checkpoint in <dir>/checkpoint.json. Save writes a
// temporary file in the same directory, syncs it, renames it over the
// checkpoint and syncs the directory, so a crash at any moment leaves either
// the old or the new checkpoint, whole, and a nil return means the new one
// survives power loss.
type FileStore struct {
	dir  string
	path string
	temp string
	ops  fileOps

	mu     sync.Mutex
	lock   *os.File // holds the directory lock while open
	dirf   *os.File // the directory, kept open to sync renames cheaply
	buf    []byte   // reused by Save
	closed bool
}

// fileOps are the steps of Save that decide its crash safety. Tests replace
// them to record their order and to fail between any two of them.
type fileOps struct {
	write    func(f *os.File, b []byte) error
	syncFile func(f *os.File) error
	rename   func(oldpath, newpath string) error
	syncDir  func(d *os.File) error
}

// errLockHeld is what lockFile returns when another open file holds the lock.
var errLockHeld = errors.New("lock held")

var osFileOps = fileOps{
	write: func(f *os.File, b []byte) error {
		_, err := f.Write(b)
		return err
	},
	syncFile: (*os.File).Sync,
	rename:   os.Rename,
	syncDir: func(d *os.File) error {
		// Windows cannot sync a directory and makes renames durable on
		// its own; everywhere else the rename is durable only after this.
		if runtime.GOOS == "windows" {
			return nil
		}
		return d.Sync()
	},
}

// OpenFile opens the file store in dir, creating dir if needed. It fails
// with ErrLocked, naming dir, while another FileStore (in any process) has
// dir open. A temporary file left by a crash during Save is removed: it was
// never acknowledged, so it must not be used.
func OpenFile(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("open checkpoint store: empty state directory")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", dir, err)
	}
	s := &FileStore{
		dir:  dir,
		path: filepath.Join(dir, FileName),
		temp: filepath.Join(dir, tempFileName),
		ops:  osFileOps,
	}
	lock, err := lockFile(filepath.Join(dir, LockFileName))
	if errors.Is(err, errLockHeld) {
		return nil, fmt.Errorf("%w: state directory %s is locked by another process; give each bridge its own BRIDGE_STATE_DIR", ErrLocked, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("lock state directory %s: %w", dir, err)
	}
	s.lock = lock
	if s.dirf, err = os.Open(dir); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open state directory %s: %w", dir, err)
	}
	for _, name := range []string{s.temp, filepath.Join(dir, probeFileName)} {
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.Close()
			return nil, fmt.Errorf("remove leftover %s: %w", name, err)
		}
	}
	return s, nil
}

// Path returns the checkpoint file's path.
func (s *FileStore) Path() string { return s.path }

// Load implements Store. A missing file is "not found"; any other read
// error, or content that does not decode, is an error naming the file.
func (s *FileStore) Load(ctx context.Context) (Checkpoint, bool, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Checkpoint{}, false, ErrClosed
	}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("load checkpoint %s: %w", s.path, err)
	}
	cp, err := Decode(data)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("load checkpoint %s: %w", s.path, err)
	}
	return cp, true, nil
}

// Save implements Store.
func (s *FileStore) Save(ctx context.Context, cp Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := Encode(cp)
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", s.path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.buf = append(append(s.buf[:0], data...), '\n')
	if err := s.writeTemp(s.buf); err != nil {
		// Best effort: OpenFile removes it anyway, and it is never read.
		_ = os.Remove(s.temp)
		return fmt.Errorf("save checkpoint %s: %w", s.path, err)
	}
	if err := s.ops.rename(s.temp, s.path); err != nil {
		_ = os.Remove(s.temp)
		return fmt.Errorf("save checkpoint %s: rename: %w", s.path, err)
	}
	if err := s.ops.syncDir(s.dirf); err != nil {
		return fmt.Errorf("save checkpoint %s: sync directory: %w", s.path, err)
	}
	return nil
}

func (s *FileStore) writeTemp(data []byte) error {
	f, err := os.OpenFile(s.temp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	if err := s.ops.write(f, data); err != nil {
		f.Close()
		return fmt.Errorf("write temporary file: %w", err)
	}
	if err := s.ops.syncFile(f); err != nil {
		f.Close()
		return fmt.Errorf("sync temporary file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close temporary file: %w", err)
	}
	return nil
}

// Check implements Store: it creates, writes and removes a small file next
// to the checkpoint, which fails on a read-only or full file system.
func (s *FileStore) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	name := filepath.Join(s.dir, probeFileName)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("state directory %s not writable: %w", s.dir, err)
	}
	_, werr := f.Write([]byte{'\n'})
	cerr := f.Close()
	rerr := os.Remove(name)
	if err := errors.Join(werr, cerr, rerr); err != nil {
		return fmt.Errorf("state directory %s not writable: %w", s.dir, err)
	}
	return nil
}

// Close releases the directory lock. It is safe to call more than once.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.dirf != nil {
		errs = append(errs, s.dirf.Close())
	}
	errs = append(errs, s.lock.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close checkpoint store %s: %w", s.dir, err)
	}
	return nil
}
