package leader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"
)

// KVElector elects a leader with a key of a NATS JetStream key-value
// bucket whose TTL is the lease duration, written with compare-and-set on
// the key's revision.
type KVElector struct {
	cfg   Config
	js    jetstream.JetStream
	log   *slog.Logger
	clock clockwork.Clock

	unreadable bool // the last read of the key failed; campaign's goroutine only
}

// kvRecord is the value of the key. The write that acquires the key has
// Term 0 (its revision, the term, is known only once written); renewals
// carry the term.
type kvRecord struct {
	Holder string `json:"holder"`
	Term   uint64 `json:"term,omitempty"`
}

// NewNATSKV returns an elector on the key cfg names, through js. log may be
// nil.
func NewNATSKV(cfg Config, js jetstream.JetStream, log *slog.Logger) (*KVElector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Election != NATSKV {
		return nil, fmt.Errorf("leader: NewNATSKV with BRIDGE_LEADER_ELECTION=%s", cfg.Election)
	}
	return &KVElector{cfg: cfg, js: js, log: discard(log), clock: clockwork.NewRealClock()}, nil
}

// bucket opens the bucket, creating it with a TTL of LeaseDuration when
// missing. A bucket with another TTL is refused: its keys would outlive, or
// expire before, the lease the candidates agree on.
func (e *KVElector) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.RenewDeadline)
	defer cancel()
	kv, err := e.js.KeyValue(ctx, e.cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = e.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      e.cfg.Bucket,
			Description: "zulip-bridge leader election",
			History:     1,
			TTL:         e.cfg.LeaseDuration,
		})
		if errors.Is(err, jetstream.ErrBucketExists) { // another candidate was first
			kv, err = e.js.KeyValue(ctx, e.cfg.Bucket)
		}
	}
	if err == nil {
		err = e.checkTTL(ctx, kv)
	}
	if err != nil {
		return nil, fmt.Errorf("leader: NATS KV bucket %s: %w", e.cfg.Bucket, err)
	}
	return kv, nil
}

// checkTTL refuses a bucket whose TTL is not the lease duration.
func (e *KVElector) checkTTL(ctx context.Context, kv jetstream.KeyValue) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return err
	}
	if st.TTL() != e.cfg.LeaseDuration {
		return fmt.Errorf("a TTL of %v, not BRIDGE_LEADER_LEASE_DURATION=%v; delete the bucket or use the same duration", st.TTL(), e.cfg.LeaseDuration)
	}
	return nil
}

// Current implements Elector: the bucket, if it exists, must have the
// lease duration as its TTL, and the key's holder is read. A missing
// bucket or key is no leader yet (the first candidate creates them).
func (e *KVElector) Current(ctx context.Context) (Record, error) {
	r := Record{Where: "NATS KV bucket " + e.cfg.Bucket + " key " + e.cfg.LeaseName}
	kv, err := e.js.KeyValue(ctx, e.cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return r, nil
	}
	if err == nil {
		err = e.checkTTL(ctx, kv)
	}
	if err != nil {
		return r, fmt.Errorf("leader: NATS KV bucket %s: %w", e.cfg.Bucket, err)
	}
	entry, err := kv.Get(ctx, e.cfg.LeaseName)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("leader: %s: %w", r.Where, err)
	}
	var rec kvRecord
	if err := json.Unmarshal(entry.Value(), &rec); err != nil {
		return r, fmt.Errorf("leader: %s holds no leader record: %w", r.Where, err)
	}
	r.Holder, r.Renewed = rec.Holder, entry.Created()
	// The bucket's TTL removes a key not rewritten for the lease duration.
	r.Expired = e.clock.Since(r.Renewed) > e.cfg.LeaseDuration
	return r, nil
}

// Run implements Elector.
func (e *KVElector) Run(ctx context.Context, onLead func(context.Context, *Term), onLose func(*Term)) error {
	kv, err := e.bucket(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for ctx.Err() == nil {
		id := candidateID(e.cfg.Identity)
		term, rev := e.campaign(ctx, kv, id)
		if term == nil {
			return nil
		}
		renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
		renewed := make(chan uint64, 1)
		go func() { renewed <- e.renew(renewCtx, kv, term, rev) }()
		lead(ctx, e.log, term, onLead, onLose)
		stopRenew()
		rev = <-renewed
		e.release(ctx, kv, rev, term.Holder())
	}
	return nil
}

// campaign tries every RetryPeriod until it acquires the key, and returns
// the new term and the key's revision; nil once ctx is done. It takes the
// key when it is missing (never written, expired by the bucket's TTL, or
// deleted by the leader that released it), or when its revision has not
// changed for LeaseDuration since this candidate first saw it, by its
// monotonic clock. Either write is a compare-and-set: of two standbys, one
// wins.
func (e *KVElector) campaign(ctx context.Context, kv jetstream.KeyValue, id string) (*Term, uint64) {
	value, _ := json.Marshal(kvRecord{Holder: id})
	var seenRev uint64
	var seenAt time.Time
	for {
		if term, rev := e.try(ctx, kv, id, value, &seenRev, &seenAt); term != nil {
			return term, rev
		}
		select {
		case <-ctx.Done():
			return nil, 0
		case <-e.clock.After(e.cfg.RetryPeriod):
		}
	}
}

func (e *KVElector) try(ctx context.Context, kv jetstream.KeyValue, id string, value []byte, seenRev *uint64, seenAt *time.Time) (*Term, uint64) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.RetryPeriod)
	defer cancel()
	entry, err := kv.Get(ctx, e.cfg.LeaseName)
	if e.unreadable && (err == nil || errors.Is(err, jetstream.ErrKeyNotFound)) {
		e.log.Info("leader: the key is readable again", "key", e.cfg.LeaseName)
		e.unreadable = false
	}
	var start time.Time
	var rev uint64
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		start = e.clock.Now()
		rev, err = kv.Create(ctx, e.cfg.LeaseName, value)
	case err != nil:
		if !e.unreadable {
			// Once per outage: a standby that cannot read the key cannot take over.
			e.log.Warn("leader: cannot read the key; retrying every retry period", "key", e.cfg.LeaseName, "error", err)
			e.unreadable = true
		}
		return nil, 0
	case entry.Revision() != *seenRev:
		*seenRev, *seenAt = entry.Revision(), e.clock.Now()
		return nil, 0
	case e.clock.Since(*seenAt) < e.cfg.LeaseDuration:
		return nil, 0
	default:
		start = e.clock.Now()
		rev, err = kv.Update(ctx, e.cfg.LeaseName, value, *seenRev)
	}
	if err != nil {
		e.log.Debug("leader: acquire the key", "key", e.cfg.LeaseName, "error", err)
		return nil, 0
	}
	return newTerm(rev, id, e.clock, e.cfg.RenewDeadline, start), rev
}

// renew rewrites the key every RetryPeriod, each write a compare-and-set on
// the revision of the last, until ctx is done or the term ends, and
// returns the key's last revision written by this term. A write whose
// answer was lost leaves the key at a revision this replica did not see:
// the next write fails, and the key is read back; if it still holds this
// term, renewing carries on from there (without extending the term by the
// lost write, whose start is unknown).
func (e *KVElector) renew(ctx context.Context, kv jetstream.KeyValue, term *Term, rev uint64) uint64 {
	value, _ := json.Marshal(kvRecord{Holder: term.Holder(), Term: term.Number()})
	ended := make(chan struct{})
	term.whenEnded(func() { close(ended) })
	for {
		select {
		case <-ctx.Done():
			return rev
		case <-ended:
			return rev
		case <-e.clock.After(e.cfg.RetryPeriod):
		}
		start := e.clock.Now()
		wctx, cancel := context.WithDeadline(ctx, term.Deadline())
		next, err := kv.Update(wctx, e.cfg.LeaseName, value, rev)
		if err == nil {
			rev = next
			term.extend(start)
			cancel()
			continue
		}
		e.log.Debug("leader: renew the key", "key", e.cfg.LeaseName, "term", term.Number(), "error", err)
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound) {
			entry, gerr := kv.Get(wctx, e.cfg.LeaseName)
			var r kvRecord
			switch {
			case errors.Is(gerr, jetstream.ErrKeyNotFound):
				term.end("the key expired")
			case gerr != nil:
			case json.Unmarshal(entry.Value(), &r) == nil && r.Holder == term.Holder():
				rev = entry.Revision() // our own write, whose answer was lost
			default:
				term.end("another replica holds the key")
			}
		}
		cancel()
	}
}

// release deletes the key if it is still at rev, the revision this term
// last wrote, so that a standby takes over at its next try instead of
// after LeaseDuration. It is called once the term has ended. A renewal
// cancelled in flight may have been written all the same: then the key is
// one revision on, still holding holder, and that revision is deleted.
func (e *KVElector) release(ctx context.Context, kv jetstream.KeyValue, rev uint64, holder string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.RetryPeriod)
	defer cancel()
	err := kv.Delete(ctx, e.cfg.LeaseName, jetstream.LastRevision(rev))
	if err != nil {
		var r kvRecord
		if entry, gerr := kv.Get(ctx, e.cfg.LeaseName); gerr == nil && entry.Revision() != rev &&
			json.Unmarshal(entry.Value(), &r) == nil && r.Holder == holder {
			err = kv.Delete(ctx, e.cfg.LeaseName, jetstream.LastRevision(entry.Revision()))
		}
	}
	if err != nil {
		e.log.Debug("leader: release the key", "key", e.cfg.LeaseName, "error", err)
	}
}
