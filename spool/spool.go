package spool

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/zulip-bridge/zulip-bridge/internal/crashpoint"
	"github.com/zulip-bridge/zulip-bridge/mapping"
)

// FileName is the spool's file in its directory.
const FileName = "spool.db"

// formatVersion is the version of what the spool file holds; Open refuses
// another.
const formatVersion = "2"

var (
	// ErrFull means the spool holds MaxBytes: Publish waits for the
	// forwarder to make room and fails with it when its context ends first.
	ErrFull = errors.New("spool full")
	// ErrLocked means another process has the spool open.
	ErrLocked = errors.New("spool in use by another bridge")
	// ErrCorrupt means the spool file holds something this bridge did not
	// write: an operator decides (the bridge never starts over on its own).
	ErrCorrupt = errors.New("spool corrupt")
	// ErrClosed is returned by a Spool used after Close.
	ErrClosed = errors.New("spool closed")
)

var (
	bucketEntries = []byte("entries")
	bucketMeta    = []byte("meta")

	metaVersion   = []byte("version")
	metaSite      = []byte("site")
	metaLast      = []byte("last")          // last sequence number appended
	metaForwarded = []byte("forwarded")     // last sequence number the broker confirmed
	metaSinkPos   = []byte("sink_position") // broker position taken after it
)

// Options configure Open. The zero value means the documented defaults.
type Options struct {
	// MaxBytes bounds what the spool holds (entries appended and not yet
	// dropped). Zero means 1 GiB. One batch is always taken into an empty
	// spool, so that a batch larger than the limit cannot wedge the bridge.
	MaxBytes int64
	// Site is the Zulip site the spool belongs to (source.Site.String()):
	// a spool of another site is refused. Empty skips the check.
	Site string
	// Clock stamps entries with when they were appended (default: real).
	Clock clockwork.Clock
}

// DefaultMaxBytes is Options.MaxBytes when zero.
const DefaultMaxBytes int64 = 1 << 30

// Spool is a durable, ordered log of messages. Publish and the
// Recoverer methods are for one goroutine (the Zulip half), Read and
// Forwarded for another (the forwarder); Stats, Checkpointed and Close are
// safe from anywhere.
type Spool struct {
	db    *bolt.DB
	path  string
	limit int64
	clock clockwork.Clock

	mu        sync.Mutex
	closed    bool
	last      uint64          // last sequence number appended; 0 when none ever was
	forwarded uint64          // last sequence number forwarded
	sinkPos   json.RawMessage // broker position recorded with forwarded
	released  uint64          // the Zulip checkpoint covers up to here
	dropped   uint64          // entries up to here are deleted
	tried     uint64          // the last drop went up to here (a batch goes whole)
	bytes     int64           // bytes of the entries stored
	stored    int             // entries stored (forwarded ones not yet dropped included)
	full      bool            // a Publish is waiting for room
	lowered   bool            // limit is half the filesystem, below Options.MaxBytes
	// changed is closed and replaced when something a waiter waits for
	// happens: an append or a release (Read), a drop (Publish), Close.
	changed chan struct{}
}

// Open opens the spool in dir, creating the directory and the file if
// needed.
func Open(dir string, opts Options) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        time.Second,
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true, // rebuilt on open: cheaper commits
	})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s is locked", ErrLocked, path)
	case err != nil:
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	s := &Spool{
		db: db, path: path, limit: cmp.Or(opts.MaxBytes, DefaultMaxBytes),
		clock: opts.Clock, changed: make(chan struct{}),
	}
	// The spool file never shrinks and the checkpoint lives beside it: a
	// limit beyond half the filesystem (a small volume) would let a long
	// outage fill the disk and wedge the checkpoint. Limit reports it.
	if fs := filesystemBytes(dir); fs > 0 && s.limit > fs/2 {
		s.limit, s.lowered = max(fs/2, 1), true
	}
	if s.clock == nil {
		s.clock = clockwork.NewRealClock()
	}
	if err := db.Update(func(tx *bolt.Tx) error { return s.load(tx, opts.Site) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	return s, nil
}

// load creates the buckets of a new spool or reads the state of an
// existing one.
func (s *Spool) load(tx *bolt.Tx, site string) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	entries, err := tx.CreateBucketIfNotExists(bucketEntries)
	if err != nil {
		return err
	}
	switch v := meta.Get(metaVersion); {
	case v == nil:
		if err := meta.Put(metaVersion, []byte(formatVersion)); err != nil {
			return err
		}
	case string(v) != formatVersion:
		return fmt.Errorf("%w: format version %q (this bridge reads %s)", ErrCorrupt, v, formatVersion)
	}
	switch v := meta.Get(metaSite); {
	case site == "":
	case v == nil:
		if err := meta.Put(metaSite, []byte(site)); err != nil {
			return err
		}
	case string(v) != site:
		return fmt.Errorf("%w: it belongs to %s, not %s", ErrCorrupt, v, site)
	}
	if s.last, err = getSeq(meta, metaLast); err != nil {
		return err
	}
	if s.forwarded, err = getSeq(meta, metaForwarded); err != nil {
		return err
	}
	s.sinkPos = bytes.Clone(meta.Get(metaSinkPos))
	s.dropped = s.last
	first := true
	err = entries.ForEach(func(k, v []byte) error {
		seq, ok := parseKey(k)
		count, err := batchCount(v)
		if !ok || err != nil || seq+uint64(count)-1 > s.last {
			return fmt.Errorf("%w: batch at key %x", ErrCorrupt, k)
		}
		if first {
			s.dropped, first = seq-1, false
		}
		s.stored += count
		s.bytes += int64(len(v))
		return nil
	})
	if err != nil {
		return err
	}
	if s.forwarded > s.last {
		return fmt.Errorf("%w: forwarded %d beyond last entry %d", ErrCorrupt, s.forwarded, s.last)
	}
	if s.forwarded < s.dropped {
		return fmt.Errorf("%w: entries %d..%d dropped before they were forwarded", ErrCorrupt, s.forwarded+1, s.dropped)
	}
	return nil
}

// Lowered reports whether the limit is half the filesystem holding the
// spool rather than Options.MaxBytes, which would not fit beside the
// checkpoint.
func (s *Spool) Lowered() bool { return s.lowered }

// Path is the spool file.
func (s *Spool) Path() string { return s.path }

// Publish appends msgs in one transaction, durable when it returns nil.
// While the spool is full it waits for room; when ctx ends first it fails
// with ErrFull (or ErrClosed), having appended nothing.
func (s *Spool) Publish(ctx context.Context, msgs []*mapping.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	now := s.clock.Now()
	vals := make([][]byte, len(msgs))
	for i, m := range msgs {
		vals[i] = encodeEntry(now, m)
	}
	batch := encodeBatch(vals)
	size := int64(len(batch))
	first, err := s.waitRoom(ctx, size)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		b.FillPercent = 1 // keys only ever grow: pack the pages
		if err := b.Put(seqKey(first), batch); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaLast, seqKey(first+uint64(len(vals))-1))
	})
	if err != nil {
		return fmt.Errorf("spool append: %w", err)
	}
	crashpoint.Here(crashpoint.SpoolAppended)
	s.mu.Lock()
	s.last = first + uint64(len(vals)) - 1
	s.bytes += size
	s.stored += len(vals)
	s.notifyLocked()
	s.mu.Unlock()
	return nil
}

// waitRoom waits until size more bytes fit (or the spool is empty) and
// returns the sequence number of the first entry to append.
func (s *Spool) waitRoom(ctx context.Context, size int64) (uint64, error) {
	for {
		s.mu.Lock()
		closed, fits, next, used, changed := s.closed, s.stored == 0 || s.bytes+size <= s.limit, s.last+1, s.bytes, s.changed
		s.full = !fits && !closed
		s.mu.Unlock()
		switch {
		case closed:
			return 0, ErrClosed
		case fits:
			return next, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			// Still full until a Publish finds room: readiness and
			// metrics keep saying so between attempts.
			return 0, fmt.Errorf("%w (%d of %d bytes, waiting for the broker to take events): %w", ErrFull, used, s.limit, context.Cause(ctx))
		}
	}
}

// Position returns the last sequence number appended, as a checkpoint's
// sink position.
func (s *Spool) Position(context.Context) (json.RawMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	return position(s.last), nil
}

// Last returns the sequence number of the last entry appended.
func (s *Spool) Last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// PublishedSince returns the dedup keys of the entries appended after pos.
// A pos that is not a spool position (nil, or a broker's, from before the
// spool was turned on) means nothing is known: every entry's key.
func (s *Spool) PublishedSince(_ context.Context, pos json.RawMessage) (map[string]struct{}, error) {
	after, _ := ParsePosition(pos)
	keys := map[string]struct{}{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return scanFrom(tx, after+1, func(_ uint64, e []byte) (bool, error) {
			m, _, err := decodeEntry(e)
			if err != nil {
				return false, err
			}
			keys[m.DedupKey] = struct{}{}
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("spool read-back: %w", err)
	}
	return keys, nil
}

// Checkpointed tells the spool that a Zulip checkpoint naming pos is
// durable: entries up to it may be dropped once forwarded.
func (s *Spool) Checkpointed(pos json.RawMessage) {
	seq, ok := ParsePosition(pos)
	if !ok {
		return
	}
	s.mu.Lock()
	if seq > s.released {
		s.released = min(seq, s.last)
		s.notifyLocked()
	}
	s.mu.Unlock()
}

// Entry is one spooled message.
type Entry struct {
	Seq      uint64
	Appended time.Time
	Msg      *mapping.Message
}

// Forwarded returns the last sequence number forwarded and the broker
// position recorded with it (nil when none was).
func (s *Spool) Forwarded() (uint64, json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forwarded, s.sinkPos
}

// Read returns, in order, up to maxEntries entries appended after seq and about
// maxBytes of them (at least one), waiting until there is one. While it
// waits it drops what is forwarded and checkpointed. It fails only when
// ctx ends or the spool is closed.
func (s *Spool) Read(ctx context.Context, after uint64, maxEntries, maxBytes int) ([]Entry, error) {
	for {
		s.mu.Lock()
		closed, last, changed := s.closed, s.last, s.changed
		droppable := min(s.forwarded, s.released) > max(s.dropped, s.tried)
		s.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case last > after:
			return s.read(after, maxEntries, maxBytes)
		case droppable:
			if err := s.record(nil); err != nil {
				return nil, err
			}
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

func (s *Spool) read(after uint64, maxEntries, maxBytes int) ([]Entry, error) {
	var out []Entry
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		return scanFrom(tx, after+1, func(seq uint64, e []byte) (bool, error) {
			if len(out) >= maxEntries || (n >= maxBytes && len(out) > 0) {
				return false, nil
			}
			m, at, err := decodeEntry(e)
			if err != nil {
				return false, fmt.Errorf("entry %d: %w", seq, err)
			}
			out = append(out, Entry{Seq: seq, Appended: at, Msg: m})
			n += len(e)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("spool read: %w", err)
	}
	if len(out) == 0 || out[0].Seq != after+1 {
		return nil, fmt.Errorf("%w: entry %d is missing", ErrCorrupt, after+1)
	}
	return out, nil
}

// scanFrom calls fn with every entry from sequence number from on, in
// order, until fn returns false or an error. The batch holding from may
// start before it.
func scanFrom(tx *bolt.Tx, from uint64, fn func(seq uint64, entry []byte) (bool, error)) error {
	c := tx.Bucket(bucketEntries).Cursor()
	k, v := c.Seek(seqKey(from))
	if pk, pv := c.Prev(); pk != nil {
		// The batch before the one Seek found may hold from.
		if first, _ := parseKey(pk); first < from {
			if count, err := batchCount(pv); err == nil && first+uint64(count) > from {
				k, v = pk, pv
			} else {
				k, v = c.Next()
			}
		} else {
			k, v = c.Next()
		}
	} else {
		k, v = c.First()
	}
	for ; k != nil; k, v = c.Next() {
		first, ok := parseKey(k)
		if !ok {
			return fmt.Errorf("%w: batch key %x", ErrCorrupt, k)
		}
		more := true
		var ferr error
		err := eachEntry(v, func(i int, e []byte) bool {
			seq := first + uint64(i)
			if seq < from {
				return true
			}
			more, ferr = fn(seq, e)
			return more && ferr == nil
		})
		switch {
		case ferr != nil:
			return ferr
		case err != nil:
			return err
		case !more:
			return nil
		}
	}
	return nil
}

// Forward records durably that the broker confirmed every entry up to seq,
// with the broker position taken after it, and drops what is forwarded
// and checkpointed, in the same transaction.
func (s *Spool) Forward(seq uint64, sinkPos json.RawMessage) error {
	return s.record(&forwardMark{seq: seq, pos: sinkPos})
}

type forwardMark struct {
	seq uint64
	pos json.RawMessage
}

// record writes f (if not nil) and drops what may be dropped.
func (s *Spool) record(f *forwardMark) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	forwarded := s.forwarded
	if f != nil {
		forwarded = f.seq
	}
	to := min(forwarded, s.released)
	s.mu.Unlock()
	var freed int64
	var n int
	dropped := uint64(0)
	err := s.db.Update(func(tx *bolt.Tx) error {
		if f != nil {
			meta := tx.Bucket(bucketMeta)
			if err := meta.Put(metaForwarded, seqKey(f.seq)); err != nil {
				return err
			}
			var err error
			if len(f.pos) == 0 {
				err = meta.Delete(metaSinkPos)
			} else {
				err = meta.Put(metaSinkPos, f.pos)
			}
			if err != nil {
				return err
			}
		}
		b := tx.Bucket(bucketEntries)
		// Keys are collected first: deleting under a cursor moves it. A
		// batch goes once all of it may.
		var keys [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			first, _ := parseKey(k)
			count, err := batchCount(v)
			if err != nil {
				return err
			}
			if first+uint64(count)-1 > to {
				break
			}
			keys = append(keys, bytes.Clone(k))
			freed += int64(len(v))
			n += count
			dropped = first + uint64(count) - 1
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool forward: %w", err)
	}
	s.mu.Lock()
	if f != nil {
		s.forwarded, s.sinkPos = f.seq, bytes.Clone(f.pos)
	}
	s.dropped = max(s.dropped, dropped)
	s.tried = max(s.tried, to)
	s.bytes -= freed
	s.stored -= n
	if n > 0 {
		s.notifyLocked()
	}
	s.mu.Unlock()
	return nil
}

// Stats is what the spool holds, for metrics, probes and bridge check.
type Stats struct {
	// Pending is how many entries wait to be forwarded.
	Pending uint64
	// Bytes is what the entries stored take (forwarded ones not yet
	// dropped included), against Limit.
	Bytes, Limit int64
	// Oldest is when the oldest pending entry was appended; zero when none
	// is pending.
	Oldest time.Time
	// Forwarded is the last sequence number forwarded.
	Forwarded uint64
	// Full is true from when a batch did not fit until one fits again:
	// meanwhile nothing more is acknowledged to Zulip.
	Full bool
}

// Stats returns the spool's current figures.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	st := Stats{Pending: s.last - s.forwarded, Bytes: s.bytes, Limit: s.limit, Forwarded: s.forwarded, Full: s.full}
	closed := s.closed
	s.mu.Unlock()
	if st.Pending > 0 && !closed {
		_ = s.db.View(func(tx *bolt.Tx) error {
			return scanFrom(tx, st.Forwarded+1, func(_ uint64, e []byte) (bool, error) {
				if len(e) >= 8 {
					st.Oldest = time.Unix(0, int64(binary.BigEndian.Uint64(e)))
				}
				return false, nil
			})
		})
	}
	return st
}

// Close wakes every waiter and closes the file. What was appended stays.
func (s *Spool) Close(context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.notifyLocked()
	s.mu.Unlock()
	return s.db.Close()
}

func (s *Spool) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// position is the checkpoint form of seq.
func position(seq uint64) json.RawMessage {
	return json.RawMessage(`{"spool_seq":` + strconv.FormatUint(seq, 10) + `}`)
}

// ParsePosition returns the sequence number of a spool position; ok is
// false for anything else (nil, a broker's position).
func ParsePosition(pos json.RawMessage) (seq uint64, ok bool) {
	var p struct {
		Seq *uint64 `json:"spool_seq"`
	}
	if len(pos) == 0 || json.Unmarshal(pos, &p) != nil || p.Seq == nil {
		return 0, false
	}
	return *p.Seq, true
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func parseKey(k []byte) (uint64, bool) {
	if len(k) != 8 {
		return 0, false
	}
	seq := binary.BigEndian.Uint64(k)
	return seq, seq > 0
}

func getSeq(b *bolt.Bucket, key []byte) (uint64, error) {
	v := b.Get(key)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %s is %d bytes", ErrCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
