package consumer

import (
	"context"
	"sync"
)

// IdempotencyStore remembers which dedup keys were handled, durably, for a
// service whose handler must not see an event twice even across restarts
// (a crash after the handler succeeded and before the broker got the
// acknowledgement redelivers the event to the next process).
//
// Seen is asked before the handler runs; Mark after it succeeded and before
// the acknowledgement. A store that records the key in the same transaction
// as the handler's own effects (a unique key in the service's database)
// makes the handling exactly once; Mark can then be a no-op.
type IdempotencyStore interface {
	Seen(ctx context.Context, key string) (bool, error)
	Mark(ctx context.Context, key string) error
}

// DefaultWindowSize is how many dedup keys Options.WindowSize keeps when
// zero.
const DefaultWindowSize = 100_000

// Window is a bounded in-memory set of the dedup keys last marked: the
// oldest key is forgotten when a new one comes in at capacity. It catches
// redeliveries within one process (an acknowledgement lost, a rebalance);
// it implements IdempotencyStore. Safe for concurrent use.
type Window struct {
	mu   sync.Mutex
	keys map[string]struct{}
	ring []string
	next int
}

// NewWindow returns a window of size keys (at least 1).
func NewWindow(size int) *Window {
	size = max(size, 1)
	return &Window{keys: make(map[string]struct{}, size), ring: make([]string, 0, size)}
}

// Seen reports whether key is among the last keys marked.
func (w *Window) Seen(_ context.Context, key string) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.keys[key]
	return ok, nil
}

// Mark adds key, forgetting the oldest key when full.
func (w *Window) Mark(_ context.Context, key string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.keys[key]; ok {
		return nil
	}
	if len(w.ring) < cap(w.ring) {
		w.ring = append(w.ring, key)
	} else {
		delete(w.keys, w.ring[w.next])
		w.ring[w.next] = key
		w.next = (w.next + 1) % len(w.ring)
	}
	w.keys[key] = struct{}{}
	return nil
}

// Len is how many keys the window holds.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.keys)
}
