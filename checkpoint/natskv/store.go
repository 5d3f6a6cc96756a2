package natskv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/source"
)

// history is how many revisions per key a bucket created here keeps, so an
// operator can see (and restore with the nats CLI) the checkpoints before
// a bad one. The store itself only ever reads the latest.
const history = 5

// Store is a checkpoint.Store in a JetStream key-value bucket.
type Store struct {
	kv     jetstream.KeyValue
	bucket string
	key    string
	// legacyKey is where an older release kept this site's checkpoint
	// (checkpoint.Config.LegacyKeyFor); "" when it is key itself.
	legacyKey string

	mu sync.Mutex
	// rev is the revision this store last read or wrote, 0 for "no value";
	// known says whether rev was ever learnt.
	rev   uint64
	known bool
	// unconfirmed is the value of the last Save that failed without a
	// definite answer: it may be stored, and finding it there is no
	// conflict.
	unconfirmed []byte
	closed      bool
}

var _ checkpoint.Store = (*Store)(nil)

// Open binds to the bucket cfg.Bucket() through js, creating it (file
// storage, cfg.Replicas replicas) when it is missing and cfg.CreateMissing;
// an existing bucket is used as it is. The key is cfg.KeyFor(site). js stays
// the caller's: Close does not close its connection.
func Open(ctx context.Context, js jetstream.JetStream, cfg checkpoint.Config, site source.Site) (*Store, error) {
	key, err := cfg.KeyFor(site)
	if err != nil {
		return nil, err
	}
	bucket := cfg.Bucket()
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		if !cfg.CreateMissing() {
			return nil, fmt.Errorf("checkpoint bucket %s: %w; create it or set BRIDGE_CHECKPOINT_CREATE=true", bucket, err)
		}
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      bucket,
			Description: "zulip-bridge checkpoints: how far each bridge has published its Zulip event queue",
			History:     history,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Created meanwhile, by another bridge or an operator.
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint bucket %s: %w", bucket, err)
	}
	return &Store{kv: kv, bucket: bucket, key: key, legacyKey: cfg.LegacyKeyFor(site)}, nil
}

// Key returns the key the checkpoint is stored under.
func (s *Store) Key() string { return s.key }

func (s *Store) where() string { return fmt.Sprintf("bucket %s, key %s", s.bucket, s.key) }

// Load implements checkpoint.Store. It also takes the stored revision as
// this store's own: the next Save expects to replace exactly that revision.
func (s *Store) Load(ctx context.Context) (checkpoint.Checkpoint, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return checkpoint.Checkpoint{}, false, checkpoint.ErrClosed
	}
	entry, err := s.kv.Get(ctx, s.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// Also a deleted key; Create in Save writes over its marker.
		s.rev, s.known, s.unconfirmed = 0, true, nil
		return s.loadLegacy(ctx)
	}
	if err != nil {
		return checkpoint.Checkpoint{}, false, fmt.Errorf("load checkpoint (%s): %w", s.where(), err)
	}
	s.rev, s.known, s.unconfirmed = entry.Revision(), true, nil
	cp, err := checkpoint.Decode(entry.Value())
	if err != nil {
		return checkpoint.Checkpoint{}, false, fmt.Errorf("load checkpoint (%s, revision %d): %w", s.where(), entry.Revision(), err)
	}
	return cp, true, nil
}

// loadLegacy returns the checkpoint an older release saved under the legacy
// key of the same site, if any. The next Save creates the current key, and
// the legacy one is left as it is (an older bridge may still be rolled
// back to).
func (s *Store) loadLegacy(ctx context.Context) (checkpoint.Checkpoint, bool, error) {
	if s.legacyKey == "" {
		return checkpoint.Checkpoint{}, false, nil
	}
	entry, err := s.kv.Get(ctx, s.legacyKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return checkpoint.Checkpoint{}, false, nil
	}
	if err != nil {
		return checkpoint.Checkpoint{}, false, fmt.Errorf("load checkpoint (bucket %s, legacy key %s): %w", s.bucket, s.legacyKey, err)
	}
	cp, err := checkpoint.Decode(entry.Value())
	if err != nil {
		return checkpoint.Checkpoint{}, false, fmt.Errorf("load checkpoint (bucket %s, legacy key %s, revision %d): %w", s.bucket, s.legacyKey, entry.Revision(), err)
	}
	return cp, true, nil
}

// Save implements checkpoint.Store. Called before any Load, it first reads
// the stored revision and replaces it. It fails with checkpoint.ErrConflict
// when the key changed since this store last read or wrote it.
func (s *Store) Save(ctx context.Context, cp checkpoint.Checkpoint) error {
	data, err := checkpoint.Encode(cp)
	if err != nil {
		return fmt.Errorf("save checkpoint (%s): %w", s.where(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return checkpoint.ErrClosed
	}
	if !s.known {
		rev, value, err := s.latest(ctx)
		if err != nil {
			return fmt.Errorf("save checkpoint (%s): %w", s.where(), err)
		}
		if err := s.laterTerm(value, cp.Term); err != nil {
			return err
		}
		s.rev, s.known = rev, true
	}
	err = s.write(ctx, data)
	if isConflict(err) {
		err = s.resolveConflict(ctx, data, cp.Term)
	}
	if err != nil {
		return err
	}
	s.unconfirmed = nil
	return nil
}

// write stores data if the key is still at s.rev. An error that is not a
// conflict leaves the outcome unknown, so data is remembered.
func (s *Store) write(ctx context.Context, data []byte) error {
	var (
		rev uint64
		err error
	)
	if s.rev == 0 {
		rev, err = s.kv.Create(ctx, s.key, data)
	} else {
		rev, err = s.kv.Update(ctx, s.key, data, s.rev)
	}
	if err != nil {
		if !isConflict(err) {
			s.unconfirmed = bytes.Clone(data)
			err = fmt.Errorf("save checkpoint (%s): %w", s.where(), err)
		}
		return err
	}
	s.rev = rev
	return nil
}

// resolveConflict tells our own earlier writes from someone else's. A Save
// that timed out may still have been stored; the retry (or the next Save)
// then finds the key one revision ahead, holding our own value.
func (s *Store) resolveConflict(ctx context.Context, data []byte, term uint64) error {
	rev, value, err := s.latest(ctx)
	if err != nil {
		return fmt.Errorf("save checkpoint (%s): after a revision conflict: %w", s.where(), err)
	}
	if err := s.laterTerm(value, term); err != nil {
		return err
	}
	switch {
	case rev != 0 && bytes.Equal(value, data):
		s.rev = rev
		return nil
	case rev != 0 && s.unconfirmed != nil && bytes.Equal(value, s.unconfirmed):
		s.rev = rev
		if err := s.write(ctx, data); !isConflict(err) {
			return err
		}
		rev, _, _ = s.latest(ctx)
	}
	return fmt.Errorf("save checkpoint (%s): %w: expected revision %d, found %d; is another bridge using this key? (BRIDGE_CHECKPOINT_NAME tells bridges apart)", s.where(), checkpoint.ErrConflict, s.rev, rev)
}

// laterTerm returns an error wrapping checkpoint.ErrStaleTerm when the
// stored value was written under a later leadership term than term: the
// compare-and-set that fences a leader whose term ended (docs/standby.md).
// A value that does not decode is left to the revision check.
func (s *Store) laterTerm(value []byte, term uint64) error {
	if value == nil {
		return nil
	}
	stored, err := checkpoint.Decode(value)
	if err != nil || stored.Term <= term {
		return nil
	}
	return fmt.Errorf("save checkpoint (%s): %w: stored term %d, this bridge's %d; another replica leads", s.where(), checkpoint.ErrStaleTerm, stored.Term, term)
}

// latest returns the key's current revision and value; revision 0 when it
// has none (never written, or deleted).
func (s *Store) latest(ctx context.Context) (uint64, []byte, error) {
	entry, err := s.kv.Get(ctx, s.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	return entry.Revision(), entry.Value(), nil
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// Check implements checkpoint.Store: the bucket answers.
func (s *Store) Check(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return checkpoint.ErrClosed
	}
	if _, err := s.kv.Status(ctx); err != nil {
		return fmt.Errorf("checkpoint bucket %s: %w", s.bucket, err)
	}
	return nil
}

// Close implements checkpoint.Store. The connection stays open.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
