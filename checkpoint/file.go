package checkpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
)

// Names of the file store's files in the state directory.
const (
	// FileName is the checkpoint itself, readable JSON (DecodeFile).
	FileName = "checkpoint.json"
	// LockFileName is locked (flock) while a FileStore is open, so that two
	// bridges cannot share a state directory. It is never removed: removing
	// a lock file while another process waits on it would break the lock.
	LockFileName = "checkpoint.lock"

	tempFileName  = FileName + ".tmp"
	probeFileName = "checkpoint.probe"
)

// The checkpoint file holds two slots of the same size, a multiple of
// slotAlign so that writing one never touches the disk blocks of the other.
// Each slot is one line of JSON padded with spaces,
//
//	{"seq":42,"crc32c":"0a1b2c3d","checkpoint":{"version":1,...}}
//
// or only spaces (an empty slot), and ends with a newline. seq rises by one
// with every Save, and crc32c (Castagnoli, in hex) covers the seq's digits,
// a colon and the checkpoint's bytes, so that a slot torn by a crash in the
// middle of its write is told from a whole one. The checkpoint is the whole
// slot with the higher seq; Save overwrites the other slot in place and
// syncs the file, so a crash at any moment leaves the previous checkpoint
// whole in its slot. That is one write and one sync of an existing block
// per Save, instead of creating, syncing and renaming a file and syncing
// the directory (about a fifth of the time on the development machine's
// disk: BenchmarkFileStoreSave against BenchmarkFileSyncBaseline).
//
// The file is created, and recreated with larger slots when a checkpoint
// outgrows them, by writing a temporary file, syncing it, renaming it over
// the checkpoint and syncing the directory. A file of one checkpoint as
// Encode writes it, the layout of earlier releases, is read too; the first
// Save replaces it with the slotted layout.
const (
	slotAlign = 4096
	slotHead  = `{"seq":`
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FileStore keeps the checkpoint in <dir>/checkpoint.json, in two slots
// written in turn (see DecodeFile): a nil return from Save means the new
// checkpoint survives power loss, and a crash at any moment leaves either
// the old or the new checkpoint, whole.
type FileStore struct {
	dir  string
	path string
	temp string
	ops  fileOps

	mu     sync.Mutex
	lock   *os.File // holds the directory lock while open
	dirf   *os.File // the directory, kept open to sync renames cheaply
	closed bool
	// f is the slotted checkpoint file, open for writing in place; nil
	// until the file was read or written in that layout, and after a
	// write or sync failed (the next Save writes a new file).
	f        *os.File
	slotSize int
	seq      uint64 // of the checkpoint in force
	target   int    // the slot the next Save writes: not the one in force
	buf      []byte // reused by Save
}

// fileOps are the steps of Save that decide its crash safety. Tests replace
// them to record their order and to fail between any two of them.
type fileOps struct {
	write    func(f *os.File, b []byte, off int64) error
	syncFile func(f *os.File) error
	rename   func(oldpath, newpath string) error
	syncDir  func(d *os.File) error
}

// errLockHeld is what lockFile returns when another open file holds the lock.
var errLockHeld = errors.New("lock held")

var osFileOps = fileOps{
	write: func(f *os.File, b []byte, off int64) error {
		_, err := f.WriteAt(b, off)
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
	// Which slot the first Save may overwrite; what the file holds is
	// Load's to report.
	_, _, _ = s.read()
	return s, nil
}

// Path returns the checkpoint file's path.
func (s *FileStore) Path() string { return s.path }

// Load implements Store. A missing file is "not found"; any other read
// error, or content that does not decode (DecodeFile), is an error naming
// the file.
func (s *FileStore) Load(ctx context.Context) (Checkpoint, bool, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Checkpoint{}, false, ErrClosed
	}
	cp, found, err := s.read()
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("load checkpoint %s: %w", s.path, err)
	}
	return cp, found, nil
}

// read reads and decodes the file and, when it is in the slotted layout,
// keeps it open to write the slot not in force next.
func (s *FileStore) read() (Checkpoint, bool, error) {
	s.drop()
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, err
	}
	sl, err := decodeFile(data)
	if err != nil {
		return Checkpoint{}, false, err
	}
	if sl.slotted {
		if f, err := os.OpenFile(s.path, os.O_RDWR, 0); err == nil {
			s.f, s.slotSize, s.seq, s.target = f, len(data)/2, sl.seq, 1-sl.slot
		}
	}
	return sl.cp, true, nil
}

// drop forgets the open checkpoint file: the next Save writes a new one.
func (s *FileStore) drop() {
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
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
	seq := s.seq + 1
	s.buf = appendSlot(s.buf[:0], seq, data)
	if s.f == nil || len(s.buf) >= s.slotSize || !s.current() {
		return s.create(seq)
	}
	// The slot is written whole, padding included, so that nothing of
	// the checkpoint it held before is left behind its end.
	s.buf = pad(s.buf, 0, s.slotSize)
	if err := s.ops.write(s.f, s.buf, int64(s.target*s.slotSize)); err != nil {
		s.drop()
		return fmt.Errorf("save checkpoint %s: write: %w", s.path, err)
	}
	if err := s.ops.syncFile(s.f); err != nil {
		// What reached the disk is unknown after a failed sync: the next
		// Save starts a new file rather than trust this one.
		s.drop()
		return fmt.Errorf("save checkpoint %s: sync: %w", s.path, err)
	}
	s.seq, s.target = seq, 1-s.target
	return nil
}

// current reports whether the open file is still the checkpoint file:
// one replaced behind the store's back (by an operator, while the bridge
// runs) is replaced again, as a Save always did, not written unseen.
func (s *FileStore) current() bool {
	open, err := s.f.Stat()
	if err != nil {
		return false
	}
	named, err := os.Stat(s.path)
	return err == nil && os.SameFile(open, named)
}

// create writes a new checkpoint file whose first slot holds s.buf, the
// line of seq, and whose second is empty, with slots large enough for a
// checkpoint half as large again, and keeps it open for the next Save.
func (s *FileStore) create(seq uint64) error {
	s.drop()
	size := (len(s.buf) + len(s.buf)/2 + slotAlign) / slotAlign * slotAlign
	s.buf = pad(pad(s.buf, 0, size), size, size)
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
	// Saved. Without the file open, the next Save creates one again.
	if f, err := os.OpenFile(s.path, os.O_RDWR, 0); err == nil {
		s.f, s.slotSize, s.seq, s.target = f, size, seq, 1
	}
	return nil
}

func (s *FileStore) writeTemp(data []byte) error {
	f, err := os.OpenFile(s.temp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	if err := s.ops.write(f, data, 0); err != nil {
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

// appendSlot appends the slot line of the encoded checkpoint data with seq
// to b, without its padding.
func appendSlot(b []byte, seq uint64, data []byte) []byte {
	b = append(b, slotHead...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"crc32c":"`...)
	b = fmt.Appendf(b, "%08x", slotSum(seq, data))
	b = append(b, `","checkpoint":`...)
	b = append(b, data...)
	return append(b, '}')
}

func slotSum(seq uint64, data []byte) uint32 {
	var digits [24]byte
	sum := crc32.Update(0, castagnoli, append(strconv.AppendUint(digits[:0], seq, 10), ':'))
	return crc32.Update(sum, castagnoli, data)
}

// pad pads the slot that starts at b[start:] with spaces to size bytes,
// the last a newline.
func pad(b []byte, start, size int) []byte {
	for len(b) < start+size-1 {
		b = append(b, ' ')
	}
	return append(b, '\n')
}

// slots is what decodeFile found in a checkpoint file.
type slots struct {
	cp      Checkpoint
	slotted bool   // the file is in the slotted layout
	seq     uint64 // of the checkpoint in force (slotted)
	slot    int    // that holds it (slotted)
}

// DecodeFile parses the contents of a file store's checkpoint file: two
// slots, each one line of JSON (or spaces) padded to the same size, whose
// whole one with the higher seq holds the checkpoint, as in
//
//	{"seq":42,"crc32c":"0a1b2c3d","checkpoint":{"version":1,"site":...}}
//
// (`jq -s 'max_by(.seq).checkpoint' checkpoint.json` shows it), or one
// checkpoint as Encode writes it, as earlier releases stored it. Errors
// wrap ErrCorrupt or ErrUnsupportedVersion, as Decode's.
func DecodeFile(data []byte) (Checkpoint, error) {
	sl, err := decodeFile(data)
	return sl.cp, err
}

func decodeFile(data []byte) (slots, error) {
	if !bytes.HasPrefix(data, []byte(slotHead)) {
		cp, err := Decode(data)
		return slots{cp: cp}, err
	}
	if len(data)%2 != 0 {
		return slots{}, fmt.Errorf("%w: %d bytes, not two slots of the same size", ErrCorrupt, len(data))
	}
	size := len(data) / 2
	best, found := slots{slotted: true}, false
	var raw json.RawMessage
	for i := range 2 {
		seq, cp, ok := slot(data[i*size : (i+1)*size])
		if ok && (!found || seq > best.seq) {
			best.seq, best.slot, raw, found = seq, i, cp, true
		}
	}
	if !found {
		return slots{}, fmt.Errorf("%w: neither slot holds a whole checkpoint", ErrCorrupt)
	}
	cp, err := Decode(raw)
	if err != nil {
		return slots{}, err
	}
	best.cp = cp
	return best, nil
}

// slot returns the seq and checkpoint bytes of a whole slot; ok is false
// for an empty or torn one.
func slot(b []byte) (seq uint64, cp json.RawMessage, ok bool) {
	b = bytes.TrimRight(b, " \n")
	if len(b) == 0 {
		return 0, nil, false
	}
	var v struct {
		Seq        *uint64         `json:"seq"`
		Sum        string          `json:"crc32c"`
		Checkpoint json.RawMessage `json:"checkpoint"`
	}
	if json.Unmarshal(b, &v) != nil || v.Seq == nil || v.Checkpoint == nil {
		return 0, nil, false
	}
	if v.Sum != fmt.Sprintf("%08x", slotSum(*v.Seq, v.Checkpoint)) {
		return 0, nil, false
	}
	return *v.Seq, v.Checkpoint, true
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
	s.drop()
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
